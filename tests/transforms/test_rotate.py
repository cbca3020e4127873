"""Key rotation on a real warehouse loaded through real intake: links survive, tokens change."""

import io

import duckdb
import pytest

from leadhub.core.archive import decrypt_to
from leadhub.pipeline import ingest_agency
from leadhub.core.errors import LeadHubError
from leadhub.core.keys import MasterKey, create_key_file
from leadhub.core.warehouse import connect
from tests.transforms.test_link import BOOK_HEADER, booking, drop, load, row
from transforms.link import link_people
from transforms.rotate import rotate_key

ROWS = ("SELECT 'police' AS agency, _row_number, _batch_id, person_token FROM staging.police_referrals "
        "UNION ALL SELECT 'jail', _row_number, _batch_id, person_token FROM staging.jail_bookings "
        "UNION ALL SELECT 'treatment', _row_number, _batch_id, person_token FROM staging.treatment_clients")


def person_of_row(path):
    """(agency, batch, row) -> person_key, and the set of tokens in use."""
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(f"SELECT r.agency, r._batch_id, r._row_number, l.person_key, r.person_token "
                           f"FROM ({ROWS}) r LEFT JOIN core.person_link l "
                           f"ON l.agency = r.agency AND l.person_token = r.person_token").fetchall()
        key_ids = {k for (k,) in con.execute("SELECT DISTINCT key_id FROM staging.police_referrals "
                                             "UNION SELECT DISTINCT key_id FROM staging.jail_bookings").fetchall()}
    return {(a, b, r): k for a, b, r, k, _ in rows}, {t for *_, t in rows}, key_ids


def test_rotation_keeps_every_link_and_replaces_every_token(settings, master_key, tmp_path):
    load(settings, master_key,
         row("P1", "Quill", "Ada", "1975-01-01", "123-45-6780", 1) + row("P2", "Okafor", "Ben", "1970-05-05", "", 2),
         booking("J1", "Quil", "Ada", "01/01/1975", "", 1) + booking("J2", "Okafor", "Benjamin", "05/05/1970", "", 2),
         clients="C1,Quill,Ada,1975-01-01,,,,F,active,2022-01-01\n")
    with connect(settings.warehouse_path) as con:
        link_people(con)
    before, tokens_before, _ = person_of_row(settings.warehouse_path)
    assert len(set(before.values())) == 2

    new = MasterKey.load(create_key_file(tmp_path / "new" / "master.key"))
    counts = rotate_key(settings, master_key, new)
    assert counts["archive_files"] == 3

    after, tokens_after, key_ids = person_of_row(settings.warehouse_path)
    assert after == before                                  # every row keeps its person key
    assert not tokens_before & tokens_after                 # and no old token survives,
    data = settings.warehouse_path.read_bytes()             # not even in the file's freed blocks
    assert not [t for t in tokens_before if t.encode() in data]
    assert key_ids == {new.key_id}
    archive = next(settings.archive_dir.rglob("*.enc"))
    decrypt_to(archive, io.BytesIO(), new)                  # the archive now opens with the new key
    with pytest.raises(LeadHubError):
        decrypt_to(archive, io.BytesIO(), master_key)

    # The next build and the next delivery work under the new key, and keys stay put.
    with connect(settings.warehouse_path) as con:
        link_people(con)
    assert person_of_row(settings.warehouse_path)[0] == before
    drop(settings, "jail", "jail_bookings_20240102.csv", BOOK_HEADER + booking("J9", "Okafor", "Ben",
                                                                               "05/05/1970", "", 3))
    assert ingest_agency(settings, "jail", new)[0]["status"] == "accepted"
    with connect(settings.warehouse_path) as con:
        link_people(con)
    final, _, _ = person_of_row(settings.warehouse_path)
    assert {k for (a, _, r), k in final.items() if a == "jail" and r == 1 and k not in before.values()} == set()
    assert len(set(final.values())) == 2                    # the new booking joined Ben's cluster


def test_rotating_to_the_same_key_is_refused(settings, master_key):
    with pytest.raises(LeadHubError, match="nothing to rotate"):
        rotate_key(settings, master_key, master_key)


def test_cli_rotates_and_the_old_key_no_longer_opens_the_archive(settings, master_key, tmp_path, capsys):
    from leadhub.cli import main

    load(settings, master_key, row("P1", "Quill", "Ada", "1975-01-01", "", 1),
         booking("J1", "Quill", "Ada", "01/01/1975", "", 1))
    with connect(settings.warehouse_path) as con:
        link_people(con)
    before = person_of_row(settings.warehouse_path)[0]
    new_path = tmp_path / "new" / "master.key"
    assert main(["rotate-key", "--new-key-file", str(new_path), "--create", "--reason", "yearly"]) == 0
    assert "LEADHUB_KEY_FILE" in capsys.readouterr().out
    assert person_of_row(settings.warehouse_path)[0] == before
    with pytest.raises(LeadHubError):
        decrypt_to(next(settings.archive_dir.rglob("*.enc")), io.BytesIO(), master_key)


def _archive_files(settings):
    return sorted(settings.archive_dir.glob("*/*.enc"))


def test_rotation_re_encrypts_archives_of_quarantined_files_too(settings, master_key, tmp_path):
    load(settings, master_key, row("P1", "Quill", "Ada", "1975-01-01", "", 1),
         booking("J1", "Quill", "Ada", "01/01/1975", "", 1))
    drop(settings, "police", "police_referrals_20240102.csv", "not,the,contract,header\n1,2,3,4\n")
    assert ingest_agency(settings, "police", master_key)[0]["status"] == "quarantined"
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        quarantined = con.execute("SELECT archive_path FROM ops.file_ledger "
                                  "WHERE status = 'quarantined'").fetchall()
    assert quarantined and quarantined[0][0]
    with connect(settings.warehouse_path) as con:
        link_people(con)
    new = MasterKey.load(create_key_file(tmp_path / "new" / "master.key"))
    rotate_key(settings, master_key, new)
    # Once the old key is destroyed, the quarantined original must still be re-processable.
    kept = io.BytesIO()
    decrypt_to(settings.data_dir / quarantined[0][0], kept, new)
    assert kept.getvalue().startswith(b"not,the,contract,header")
    for path in _archive_files(settings):
        decrypt_to(path, io.BytesIO(), new)


def test_rotation_stopped_while_re_encrypting_is_finished_by_running_it_again(settings, master_key,
                                                                             tmp_path, monkeypatch):
    import transforms.rotate as rotate

    load(settings, master_key,
         row("P1", "Quill", "Ada", "1975-01-01", "", 1) + row("P2", "Okafor", "Ben", "1970-05-05", "", 2),
         booking("J1", "Quil", "Ada", "01/01/1975", "", 1))
    with connect(settings.warehouse_path) as con:
        link_people(con)
    before, _, _ = person_of_row(settings.warehouse_path)
    new = MasterKey.load(create_key_file(tmp_path / "new" / "master.key"))

    real, done = rotate._reencrypt, []

    def killed_after_first(path, old, new_key, work):
        if done:
            raise KeyboardInterrupt("killed")
        real(path, old, new_key, work)
        done.append(path)

    monkeypatch.setattr(rotate, "_reencrypt", killed_after_first)
    with pytest.raises(KeyboardInterrupt):
        rotate_key(settings, master_key, new)
    monkeypatch.setattr(rotate, "_reencrypt", real)

    rotate_key(settings, master_key, new)                   # the same two keys finish the job
    after, _, key_ids = person_of_row(settings.warehouse_path)
    assert after == before
    assert key_ids == {new.key_id}
    for path in _archive_files(settings):
        decrypt_to(path, io.BytesIO(), new)


def test_a_delivery_taken_under_the_old_key_after_rotation_stops_linkage_until_rotated(settings, master_key,
                                                                                      tmp_path):
    load(settings, master_key, row("P1", "Quill", "Ada", "1975-01-01", "", 1),
         booking("J1", "Quill", "Ada", "01/01/1975", "", 1))
    with connect(settings.warehouse_path) as con:
        link_people(con)
    new = MasterKey.load(create_key_file(tmp_path / "new" / "master.key"))
    rotate_key(settings, master_key, new)
    # The feed ran before the steward switched LEADHUB_KEY_FILE: one batch under the old key.
    drop(settings, "jail", "jail_bookings_20240102.csv", BOOK_HEADER + booking("J1", "Quill", "Ada",
                                                                               "01/01/1975", "", 2))
    assert ingest_agency(settings, "jail", master_key)[0]["status"] == "accepted"
    with connect(settings.warehouse_path) as con:
        with pytest.raises(LeadHubError, match="under 2 keys"):
            link_people(con)

    rotate_key(settings, master_key, new)                   # the same two keys bring it under the new one
    with connect(settings.warehouse_path) as con:
        link_people(con)
    people, _, key_ids = person_of_row(settings.warehouse_path)
    assert key_ids == {new.key_id}
    assert len(set(people.values())) == 1 and None not in people.values()
    assert len(people) == 3                                  # P1, J1 and J1's second booking
