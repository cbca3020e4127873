"""Sealing orders on a small synthetic county: every store scanned, re-deliveries dropped, bad orders refused."""

import hashlib
import io
import json
import shutil

import duckdb
import pytest

from leadhub import pipeline
from leadhub.cli import main
from leadhub.core import audit
from leadhub.core.archive import MAGIC, decrypt_to
from leadhub.core.keys import MasterKey, create_key_file
from tests.conftest import hub_at
from tests.transforms.test_link import REF_HEADER, booking, drop, BOOK_HEADER
from transforms import crosswalk, seal
from transforms.pseudonymize import Pseudonymizer

ARREST_HEADER = ("arrest_id,charge_seq,person_id,last_name,first_name,dob,ssn,address,sex,race,ethnicity,"
                 "arrest_date,precinct,offense_code,severity\n")


def arrest(arrest_id, seq, person, last, first, dob, ssn="", on="2023-05-01"):
    return (f"{arrest_id},{seq},{person},{last},{first},{dob},{ssn},,M,WHITE,NON_HISPANIC,{on},NORTH,"
            "DRG01,felony\n")


def referral(referral_id, person, last, first, dob):
    return (f"{referral_id},{person},{last},{first},{dob},,M,WHITE,NON_HISPANIC,2023-06-01,"
            "social_contact,drug,NORTH,O1\n")


# Sealed: arrests ARR-101 (two charges, of Keep Ada) and ARR-103 (of Quill Bo); and police person
# P-3's whole history (arrest ARR-104 and referral REF-2, Zebulon Marsh, SSN 987-65-4329).
# Kept: ARR-102 (Keep Ada), REF-1 (Quill Bo), and the jail booking.
ARRESTS = (arrest("ARR-101", 1, "P-1", "Keep", "Ada", "1980-01-02")
           + arrest("ARR-101", 2, "P-1", "Keep", "Ada", "1980-01-02")
           + arrest("ARR-102", 1, "P-1", "Keep", "Ada", "1980-01-02", on="2023-07-01")
           + arrest("ARR-103", 1, "P-2", "Quill", "Bo", "1975-03-04")
           + arrest("ARR-104", 1, "P-3", "Marsh", "Zebulon", "1990-09-09", ssn="987-65-4329"))
REFERRALS = referral("REF-1", "P-2", "Quill", "Bo", "1975-03-04") + referral("REF-2", "P-3", "Marsh", "Zebulon",
                                                                               "1990-09-09")
# The jail quotes arrest numbers: B2 was booked on sealed ARR-101, B3 on kept ARR-102, B4 on
# ARR-104 of sealed person P-3 (the jail's own record of "Zeb Marsh" stays: another agency's).
JAIL = (booking("J-9", "Other", "Jay", "09/09/1991", "", 1)
        + "B2,1,J-8,Keep,Ada,01/02/1980,,,F,WHITE,05/01/2023 10:00,05/01/2023 18:00,ARR-101,DRG01,felony\n"
        + "B3,1,J-8,Keep,Ada,01/02/1980,,,F,WHITE,07/01/2023 10:00,07/01/2023 18:00,ARR-102,DRG01,felony\n"
        + "B4,1,J-7,Marsh,Zeb,09/09/1990,,,M,WHITE,05/01/2023 10:00,05/01/2023 18:00,ARR-104,DRG01,felony\n")
SEALED_IDS = ["ARR-101", "ARR-103", "ARR-104", "REF-2", "P-3", "Zebulon", "987-65-4329", "987654329"]


@pytest.fixture(scope="module")
def built_county(tmp_path_factory):
    """The county below taken in (one file quarantined), built, and its crosswalk built, once;
    each test works on a copy (``county``)."""
    with hub_at(tmp_path_factory.mktemp("county")) as (settings, master_key):
        _take_in_and_build(settings, master_key)
    return settings


@pytest.fixture
def county(built_county, settings):
    """A private copy of the built county in the test's data directory, with its key."""
    shutil.copytree(built_county.data_dir, settings.data_dir, symlinks=True, dirs_exist_ok=True)
    shutil.copy2(built_county.key_file, settings.key_file)
    return settings


@pytest.fixture
def master_key(county):
    """The county's key (the copy's: ``county`` replaced the test's fresh key with it)."""
    return MasterKey.load(county.key_file)


def _take_in_and_build(settings, master_key):
    drop(settings, "police", "police_arrests_20240101.csv", ARREST_HEADER + ARRESTS)
    drop(settings, "police", "police_referrals_20240101.csv", REF_HEADER + REFERRALS)
    # Quarantined (row 2's birth date is unreadable), with a sealed arrest on row 1.
    drop(settings, "police", "police_arrests_20240105.csv", ARREST_HEADER
         + arrest("ARR-103", 2, "P-2", "Quill", "Bo", "1975-03-04")
         + arrest("ARR-107", 1, "P-4", "Broken", "Row", "not-a-date"))
    drop(settings, "jail", "jail_bookings_20240101.csv", BOOK_HEADER + JAIL)
    for agency in ("police", "jail"):
        for o in pipeline.ingest_agency(settings, agency, master_key):
            assert o["status"] == ("quarantined" if o["file"].endswith("0105.csv") else "accepted"), o
    pipeline.build(settings)
    crosswalk.build_crosswalk(settings, master_key)


def every_text(settings, key) -> dict[str, bytes]:
    """Every file under the data directory as bytes: archives decrypted, DuckDB files as CSV of all tables."""
    out = {}
    for path in sorted(settings.data_dir.rglob("*")):
        if not path.is_file() or path.name.endswith(".wal"):
            continue
        data = path.read_bytes()
        if data.startswith(MAGIC):
            buf = io.BytesIO()
            decrypt_to(path, buf, key)
            data = buf.getvalue()
        elif path.suffix == ".duckdb":
            with duckdb.connect(str(path), read_only=True) as con:
                tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() "
                                     "WHERE database_name = current_database()").fetchall()
                data = b"\n".join(str(con.execute(f'SELECT * FROM "{s}"."{t}"').fetchall()).encode()
                                  for s, t in tables)
        out[str(path.relative_to(settings.data_dir))] = data
    return out


def staging_counts(settings):
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return (con.execute("SELECT count(*) FROM staging.police_arrests").fetchone()[0],
                con.execute("SELECT count(*) FROM staging.police_referrals").fetchone()[0],
                con.execute("SELECT count(*) FROM ops.sealed_records").fetchone()[0])


def test_sealed_arrests_and_a_persons_history_are_in_no_store(county, master_key, tmp_path):
    settings = county
    pipeline.report(settings)
    report_before = {p.name: p.read_bytes() for p in (settings.reports_dir / "latest").glob("*.csv")}
    before = every_text(settings, master_key)
    assert any(b"ARR-101" in v for v in before.values())        # the scan can find them before
    assert any(b"Zebulon" in v for v in before.values())
    token = Pseudonymizer(master_key).person_id_token("police", "P-3")
    assert any(token.encode() in v for v in before.values())

    assert main(["seal", "--order", "CV-2024-001", "--agency", "police", "--record", "ARR-101",
                 "--record", "ARR-103", "--reason", "court order"]) == 0
    order_file = tmp_path / "order.csv"
    order_file.write_text("person_id\nP-3\n")
    counts = seal.seal(settings, master_key, seal.read_order_file(order_file, "EXP-7", "police"),
                       "clean slate", who="steward")
    # ARR-104 and REF-2, one file each; and the jail's bookings, where B4 quotes ARR-104
    assert counts["rows"] == 2 and counts["files_rewritten"] == 3

    report_after = {p.name: p.read_bytes() for p in (settings.reports_dir / "latest").glob("*.csv")}
    # The report was written again from the sealed snapshot: the sealed arrests (May 2023) no longer
    # open the arrests' event period; ARR-102 (July 2023) is all that is left of it.
    assert b"police_arrests,2023-05,2023-07," in report_before["batch_lineage.csv"]
    assert b"police_arrests,2023-07,2023-07," in report_after["batch_lineage.csv"]
    after = every_text(settings, master_key)
    for name, data in after.items():
        for ident in SEALED_IDS + [token]:
            assert ident.encode() not in data, (name, ident)
    # What no order named is still everywhere it was: arrest ARR-102, referral REF-1, jail's booking.
    for kept in (b"ARR-102", b"REF-1", b"J-9", b"ARR-107"):
        assert any(kept in v for k, v in after.items() if k.startswith("archive")), kept
    # The jail's bookings all stay; the one booked on the sealed arrest no longer quotes its number.
    (jail,) = [v for k, v in after.items() if k.startswith("archive/jail/")]
    assert jail == (BOOK_HEADER + JAIL.replace(",ARR-101,", ",,").replace(",ARR-104,", ",,")).encode()
    (quarantined,) = [v for k, v in after.items() if k.startswith("quarantine") and k.endswith("0105.csv")]
    assert quarantined == (ARREST_HEADER + arrest("ARR-107", 1, "P-4", "Broken", "Row", "not-a-date")).encode()
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        assert con.execute("SELECT arrest_id, charge_seq FROM staging.police_arrests").fetchall() == [("ARR-102", 1)]
        assert con.execute("SELECT booking_id, arrest_id FROM staging.jail_bookings ORDER BY 1").fetchall() == [
            ("B1", None), ("B2", None), ("B3", "ARR-102"), ("B4", None)]
        assert con.execute("SELECT sum(redacted_rows) FROM ops.file_ledger").fetchone()[0] == 6  # 3 + 1 (the quarantined file's archived copy) + 1 + 1
        # 2 record tokens for the first order; for the second, 1 person token and the record tokens of
        # that person's records ARR-104 and REF-2 (they stay sealed across a key rotation): 2 + 3
        assert con.execute("SELECT count(*), count(DISTINCT order_token) FROM ops.sealed_records").fetchone() == (5, 2)
    assert seal.verify(settings, master_key, seal.read_order_file(order_file, "EXP-7", "police"),
                       who="steward") == {}
    assert main(["seal", "verify", "CV-2024-001", "--agency", "police", "--record", "ARR-101",
                 "--record", "ARR-103"]) == 0
    audit_text = audit.audit_path(settings).read_bytes()
    assert b"CV-2024-001" in audit_text and b"EXP-7" in audit_text and b"ARR-101" not in audit_text


def test_verify_finds_a_record_still_held(county, master_key):
    order = seal.SealOrder("CV-1", "police", records=("ARR-102",))
    findings = seal.verify(county, master_key, order, who="steward")
    assert any(p.startswith("warehouse:staging.police_arrests") for p in findings)
    assert any(p.startswith("archive:") for p in findings)
    assert main(["seal", "verify", "CV-1", "--agency", "police", "--record", "ARR-102"]) == 1
    # A person still held: their token in staging and in the links, their id in the archived
    # originals and in the crosswalk (decrypted in memory); the quarantined file never named them.
    findings = seal.verify(county, master_key, seal.SealOrder("CV-1", "police", persons=("P-3",)), who="s")
    for place in ("warehouse:staging.police_arrests.person_token", "warehouse:core.person_link.person_token",
                  "crosswalk"):
        assert place in findings, (place, findings)
    assert sum(p.startswith("archive:archive/police/") for p in findings) == 2   # arrests and referrals
    assert not any(p.startswith("file:quarantine") for p in findings)

    # A workbook's cells are compressed inside its zip: the scan unpacks it before searching.
    from openpyxl import Workbook
    wb = Workbook()
    wb.active.append(["arrest_id", "person_id"])
    wb.active.append(["ARR-102", "P-1"])
    wb.save(county.quarantine_dir / "police" / "20240109T000000000000-abc__police_arrests_20240109.xlsx")
    assert b"ARR-102" not in (county.quarantine_dir / "police").joinpath(
        "20240109T000000000000-abc__police_arrests_20240109.xlsx").read_bytes()
    findings = seal.verify(county, master_key, seal.SealOrder("CV-1", "police", records=("ARR-102",)), who="s")
    assert findings["file:quarantine/police/20240109T000000000000-abc__police_arrests_20240109.xlsx"] == 1


def test_a_redelivered_sealed_record_is_dropped_and_counted(county, master_key):
    seal.seal(county, master_key, seal.SealOrder("CV-2", "police", records=("ARR-101",), persons=("P-3",)),
              "court order", who="steward")
    # A corrected re-send: ARR-101 charge 1 and P-3's arrest again, and one new arrest ARR-105.
    drop(county, "police", "police_arrests_20240102.csv", ARREST_HEADER
         + arrest("ARR-101", 1, "P-1", "Keep", "Ada", "1980-01-02")
         + arrest("ARR-106", 1, "P-3", "Marsh", "Zebulon", "1990-09-09")
         + arrest("ARR-105", 1, "P-2", "Quill", "Bo", "1975-03-04"))
    (outcome,) = pipeline.ingest_agency(county, "police", master_key)
    assert outcome["status"] == "accepted"
    with duckdb.connect(str(county.warehouse_path), read_only=True) as con:
        ids = sorted(r for (r,) in con.execute("SELECT arrest_id FROM staging.police_arrests").fetchall())
        assert ids == ["ARR-102", "ARR-103", "ARR-105"]          # 2 sealed rows dropped, 1 loaded
        assert con.execute("SELECT row_count, sealed_dropped FROM ops.file_ledger "
                           "WHERE file_name = 'police_arrests_20240102.csv'").fetchone() == (3, 2)
        # The archived original lost the 2 sealed rows too (the ledger says so), and ARR-105, row 3
        # as delivered, is row 1 of the rewritten original: 3 - 2 rows cut before it.
        assert con.execute("SELECT redacted_rows FROM ops.file_ledger "
                           "WHERE file_name = 'police_arrests_20240102.csv'").fetchone() == (2,)
        assert con.execute("SELECT _row_number FROM staging.police_arrests WHERE arrest_id = 'ARR-105'"
                           ).fetchone() == (1,)
    (archived,) = county.archive_dir.glob("police/*police_arrests_20240102.csv.enc")
    assert decrypted(archived, master_key) == (ARREST_HEADER + arrest("ARR-105", 1, "P-2", "Quill", "Bo",
                                                                      "1975-03-04")).encode()
    # So the order verifies right after the re-delivery, with no need to run it again.
    order = seal.SealOrder("CV-2", "police", records=("ARR-101",), persons=("P-3",))
    assert seal.verify(county, master_key, order, who="s") == {}


def test_a_redelivered_quote_of_a_sealed_record_is_blanked_in_staging_and_archive(county, master_key):
    seal.seal(county, master_key, seal.SealOrder("CV-6", "police", records=("ARR-101",)), "court order",
              who="steward")
    # The jail sends its bookings again with one more: B2 still quotes the sealed arrest ARR-101.
    bookings = JAIL + "B5,1,J-8,Keep,Ada,01/02/1980,,,F,WHITE,08/01/2023 10:00,,,DRG01,felony\n"
    drop(county, "jail", "jail_bookings_20240102.csv", BOOK_HEADER + bookings)
    (outcome,) = pipeline.ingest_agency(county, "jail", master_key)
    assert outcome["status"] == "accepted", outcome
    with duckdb.connect(str(county.warehouse_path), read_only=True) as con:
        batch = con.execute("SELECT batch_id FROM ops.file_ledger WHERE file_name = 'jail_bookings_20240102.csv'"
                            ).fetchone()[0]
        assert con.execute("SELECT booking_id, arrest_id FROM staging.jail_bookings WHERE _batch_id = ? ORDER BY 1",
                           [batch]).fetchall() == [("B1", None), ("B2", None), ("B3", "ARR-102"), ("B4", "ARR-104"),
                                                   ("B5", None)]
    (archived,) = county.archive_dir.glob("jail/*jail_bookings_20240102.csv.enc")
    assert decrypted(archived, master_key) == (BOOK_HEADER + bookings.replace(",ARR-101,", ",,")).encode()
    assert seal.verify(county, master_key, seal.SealOrder("CV-6", "police", records=("ARR-101",)), who="s") == {}


def decrypted(path, key) -> bytes:
    buf = io.BytesIO()
    decrypt_to(path, buf, key)
    return buf.getvalue()


def archive_hashes(settings):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in settings.archive_dir.rglob("*") if p.is_file()}


@pytest.mark.parametrize("argv, message", [
    (["--agency", "sheriff", "--record", "ARR-101"], "unknown agency 'sheriff'"),
    (["--agency", "police", "--record", "ARR-101", "--record", "ARR-999"], "record #2 of the order"),
    (["--agency", "police", "--person", "P-404"], "person #1 of the order"),
    (["--agency", "police", "--file", "{bad}"], "row 1: rule 'order_header'"),
    (["--agency", "police", "--file", "{ragged}"], "row 3: rule 'ragged_row'"),
    (["--agency", "police", "--file", "{ragged}", "--record", "ARR-101"], "not both"),
    (["--agency", "police"], "names no record and no person"),
])
def test_a_bad_order_changes_nothing(county, master_key, tmp_path, capsys, argv, message):
    (tmp_path / "bad.csv").write_text("arrest\nARR-101\n")
    (tmp_path / "ragged.csv").write_text("record_id\nARR-101\nARR-103,x\n")
    argv = [a.format(bad=tmp_path / "bad.csv", ragged=tmp_path / "ragged.csv") for a in argv]
    before = (staging_counts(county), archive_hashes(county))
    assert main(["seal", "--order", "CV-9", *argv, "--reason", "court order"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert "ARR-101" not in err and "P-404" not in err
    assert (staging_counts(county), archive_hashes(county)) == before
    assert not list(county.archive_dir.rglob("*.sealed"))


def test_an_order_cut_short_after_its_commit_is_finished_by_running_it_again(county, master_key, monkeypatch):
    order = seal.SealOrder("CV-3", "police", records=("ARR-101",))

    def killed(tmp, path):
        raise KeyboardInterrupt  # the process dies after the commit, before any archive swap

    monkeypatch.setattr(seal, "replace_durably", killed)
    with pytest.raises(KeyboardInterrupt):
        seal.seal(county, master_key, order, "court order", who="steward")
    findings = seal.verify(county, master_key, order, who="steward")
    assert findings and all(p.startswith(("archive:", "file:quarantine")) for p in findings)  # warehouse done
    monkeypatch.undo()
    counts = seal.seal(county, master_key, order, "court order, finished", who="steward")
    # no staging row left to remove; the rewrites left by the first run are swapped in: the arrests
    # file and the jail's bookings (B2 quotes ARR-101)
    assert (counts["rows"], counts["files_rewritten"], counts["quarantined_rewritten"]) == (0, 2, 0)
    assert seal.verify(county, master_key, order, who="steward") == {}
    with duckdb.connect(str(county.warehouse_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM ops.sealed_records").fetchone()[0] == 1   # not twice
        # ARR-101 was rows 1 and 2 of 5: the others moved up by two, once, as in the rewritten original
        # (moved again they would read 1, 1, 1).
        assert con.execute("SELECT arrest_id, _row_number FROM staging.police_arrests ORDER BY 2").fetchall() == [
            ("ARR-102", 1), ("ARR-103", 2), ("ARR-104", 3)]


def test_rotation_after_a_seal_replays_the_rewritten_originals_row_for_row(county, master_key, tmp_path):
    from leadhub.core.keys import MasterKey, create_key_file
    from transforms.rotate import rotate_key

    # ARR-101's two charges were rows 1 and 2 of the arrests file: ARR-102 (row 3) becomes row 1,
    # ARR-103 row 2 (then sealed too), so rotation must find P-1's row at its new number.
    seal.seal(county, master_key, seal.SealOrder("CV-4", "police", records=("ARR-101", "ARR-103")),
              "court order", who="steward")
    new = MasterKey.load(create_key_file(tmp_path / "new" / "master.key"))
    rotate_key(county, master_key, new)
    with duckdb.connect(str(county.warehouse_path), read_only=True) as con:
        rows = con.execute("SELECT arrest_id, _row_number, person_token FROM staging.police_arrests "
                           "ORDER BY arrest_id").fetchall()
    assert rows == [("ARR-102", 1, Pseudonymizer(new).person_id_token("police", "P-1")),
                    ("ARR-104", 2, Pseudonymizer(new).person_id_token("police", "P-3"))]


def test_rotation_carries_the_orders_so_a_redelivered_sealed_record_is_dropped(county, master_key, tmp_path):
    from leadhub.core.keys import MasterKey, create_key_file
    from leadhub.core.sealed import keyring_path
    from transforms.rotate import rotate_key

    seal.seal(county, master_key, seal.SealOrder("CV-5", "police", records=("ARR-101",)), "order", who="s")
    seal.seal(county, master_key, seal.SealOrder("EXP-8", "police", persons=("P-3",)), "clean slate", who="s")
    with duckdb.connect(str(county.warehouse_path), read_only=True) as con:
        tokens_before = sorted(con.execute("SELECT * FROM ops.sealed_records").fetchall())
    new = MasterKey.load(create_key_file(tmp_path / "new" / "master.key"))
    counts = rotate_key(county, master_key, new)
    crosswalk.build_crosswalk(county, new)  # as 'leadhub rotate-key' does
    assert counts["seal_key_generations"] == 1
    county.key_file.write_bytes((tmp_path / "new" / "master.key").read_bytes())
    # The old key's seal subkey lives, wrapped under the new key, in the steward folder; the
    # warehouse's tokens are untouched and hold no key.
    assert keyring_path(county, new).exists() and not keyring_path(county, master_key).exists()
    assert master_key.subkey("seal") not in keyring_path(county, new).read_bytes()
    with duckdb.connect(str(county.warehouse_path), read_only=True) as con:
        assert sorted(con.execute("SELECT * FROM ops.sealed_records").fetchall()) == tokens_before

    # Re-sent: sealed ARR-101, P-3's sealed arrest ARR-104 (remembered as a record of the person
    # order), and ARR-106, a record of P-3 the hub never had, and ARR-105 of nobody sealed.
    drop(county, "police", "police_arrests_20240102.csv", ARREST_HEADER
         + arrest("ARR-101", 1, "P-1", "Keep", "Ada", "1980-01-02")
         + arrest("ARR-104", 1, "P-3", "Marsh", "Zebulon", "1990-09-09")
         + arrest("ARR-106", 1, "P-3", "Marsh", "Zebulon", "1990-09-09")
         + arrest("ARR-105", 1, "P-2", "Quill", "Bo", "1975-03-04"))
    (outcome,) = pipeline.ingest_agency(county, "police", new)
    assert outcome["status"] == "accepted", outcome

    def loaded(file_name):
        with duckdb.connect(str(county.warehouse_path), read_only=True) as con:
            return (sorted(r for (r,) in con.execute(
                "SELECT arrest_id FROM staging.police_arrests s JOIN ops.file_ledger l ON l.batch_id = s._batch_id "
                "WHERE l.file_name = ?", [file_name]).fetchall()),
                con.execute("SELECT sealed_dropped FROM ops.file_ledger WHERE file_name = ?", [file_name]).fetchone())

    # The person token is keyed by the pseudonymization key: P-3's new record passes until the
    # person order is entered again under the new key.
    assert loaded("police_arrests_20240102.csv") == (["ARR-105", "ARR-106"], (2,))
    assert seal.verify(county, new, seal.SealOrder("CV-5", "police", records=("ARR-101",)), who="s") == {}
    assert main(["seal", "--order", "EXP-8", "--agency", "police", "--person", "P-3", "--renew",
                 "--reason", "order, after key rotation"]) == 0
    drop(county, "police", "police_arrests_20240103.csv", ARREST_HEADER
         + arrest("ARR-106", 1, "P-3", "Marsh", "Zebulon", "1990-09-09")
         + arrest("ARR-105", 1, "P-2", "Quill", "Bo", "1975-03-04"))
    (outcome,) = pipeline.ingest_agency(county, "police", new)
    assert loaded("police_arrests_20240103.csv") == (["ARR-105"], (1,))


def test_a_failed_seal_leaves_no_entry_claiming_success(county, master_key, monkeypatch, audit_entries):
    import transforms.model

    def broken(con):
        raise RuntimeError("disk full")  # the rebuild fails inside the seal's transaction

    monkeypatch.setattr(transforms.model, "run_models", broken)
    order = seal.SealOrder("CV-7", "police", records=("ARR-101",))
    with pytest.raises(RuntimeError):
        seal.seal(county, master_key, order, "court order", who="steward")
    started, failed = audit_entries()
    assert (started["action"], started["outcome"], started["order"]) == ("seal", "started", "CV-7")
    assert (failed["outcome"], failed["error"]) == ("failed", "RuntimeError") and "rows" not in failed
    assert staging_counts(county)[2] == 0 and not list(county.archive_dir.rglob("*.sealed"))  # nothing sealed

    monkeypatch.undo()
    seal.seal(county, master_key, order, "court order", who="steward")
    started, done = audit_entries()[2:]
    # ARR-101's two charge rows; the arrests file and the jail's bookings (B2 quotes it) rewritten.
    assert (started["outcome"], done["outcome"], done["rows"], done["files"]) == ("started", "done", 2, 2)
    assert "ARR-101" not in json.dumps(audit_entries())


def test_an_encrypted_drop_redelivering_a_sealed_record_is_archived_redacted(county, master_key, tmp_path):
    from connectors import dropcrypt

    seal.seal(county, master_key, seal.SealOrder("CV-8", "police", records=("ARR-101",)), "court order",
              who="steward")
    _, public = dropcrypt.generate_hub_keypair(dropcrypt.default_key_path(county.key_file))
    plain = tmp_path / "police_arrests_20240102.csv"
    plain.write_text(ARREST_HEADER + arrest("ARR-101", 1, "P-1", "Keep", "Ada", "1980-01-02")
                     + arrest("ARR-105", 1, "P-2", "Quill", "Bo", "1975-03-04"))
    dropcrypt.encrypt_for_hub(plain, county.inbox("police") / "police_arrests_20240102.csv.lhx",
                              dropcrypt.load_public_key(public))
    (outcome,) = pipeline.ingest_agency(county, "police", master_key)
    assert outcome["status"] == "accepted", outcome
    # The archive held the agency's encrypted drop; it now holds the drop's plaintext without the
    # sealed row (the hub cannot encrypt to the agency's drop format), under the archive key.
    (archived,) = county.archive_dir.glob("police/*police_arrests_20240102.csv.lhx.enc")
    assert decrypted(archived, master_key) == (ARREST_HEADER + arrest("ARR-105", 1, "P-2", "Quill", "Bo",
                                                                      "1975-03-04")).encode()
    assert seal.verify(county, master_key, seal.SealOrder("CV-8", "police", records=("ARR-101",)), who="s") == {}


def test_the_justice_counts_files_waiting_to_be_sent_are_written_again_without_the_sealed(county, master_key):
    settings = county
    pipeline.justice_counts(settings)
    arrests = settings.data_dir / "steward" / "justice_counts" / "law_enforcement" / "arrests.csv"

    def total() -> int:
        rows = arrests.read_text().splitlines()
        assert rows[0] == "year,month,value"
        return sum(int(r.split(",")[2]) for r in rows[1:])

    assert total() == 4  # ARR-101 (two charges, one arrest), ARR-102, ARR-103, ARR-104
    assert main(["seal", "--order", "CV-2024-002", "--agency", "police", "--record", "ARR-101",
                 "--record", "ARR-103", "--reason", "court order"]) == 0
    assert total() == 2  # ARR-102 and ARR-104 are left


def test_the_warehouse_file_keeps_no_bytes_of_the_sealed_rows(county, master_key):
    """DuckDB deletes a row by marking it and frees a replaced table's blocks without overwriting
    them, so a sealed id stayed readable in the warehouse file itself (``strings lead.duckdb``)
    though no query could find it. The seal rewrites the file: only live rows are left in it."""
    settings = county
    raw = settings.warehouse_path.read_bytes()
    # The scan can find them before: these small tables keep their strings uncompressed.
    assert b"REF-2" in raw and b"ARR-103" in raw
    assert main(["seal", "--order", "CV-2024-003", "--agency", "police", "--record", "ARR-103",
                 "--person", "P-3", "--reason", "court order"]) == 0
    raw = settings.warehouse_path.read_bytes()
    for sealed_id in (b"ARR-103", b"ARR-104", b"REF-2"):
        assert sealed_id not in raw, sealed_id
    assert b"REF-1" in raw and b"ARR-102" in raw                  # what the order did not name stays
    assert not settings.warehouse_path.with_name("lead.duckdb.wal").exists()
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        assert con.execute("SELECT arrest_id FROM staging.police_arrests ORDER BY 1").fetchall() == [
            ("ARR-101",), ("ARR-101",), ("ARR-102",)]


def test_an_order_file_may_end_in_blank_lines_but_not_hold_one_inside(tmp_path):
    trailing = tmp_path / "trailing.csv"
    trailing.write_text("record_id\nARR-101\nARR-103\n\n\n")
    assert seal.read_order_file(trailing, "CV-9", "police").records == ("ARR-101", "ARR-103")
    inside = tmp_path / "inside.csv"
    inside.write_text("record_id\nARR-101\n\nARR-103\n")
    with pytest.raises(Exception, match="row 3: rule 'ragged_row'"):
        seal.read_order_file(inside, "CV-9", "police")
