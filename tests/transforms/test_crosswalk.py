"""The steward's crosswalk: built from the archive, encrypted, every lookup audited and chained."""

import json

import pytest

from leadhub.cli import main
from leadhub.core.errors import LeadHubError
from leadhub.core.warehouse import connect
from tests.transforms.test_link import booking, load, row
from leadhub.core import audit
from transforms import crosswalk
from transforms.link import link_people


@pytest.fixture
def linked(settings, master_key):
    load(settings, master_key, row("P77", "Quill", "Ada", "1975-01-01", "", 1),
         booking("J55", "Quill", "Ada", "01/01/1975", "", 1))
    with connect(settings.warehouse_path) as con:
        link_people(con)
        (person_key,) = {k for (k,) in con.execute("SELECT person_key FROM core.person_link").fetchall()}
    return person_key


def test_lookup_returns_the_agency_ids_and_is_audited(settings, master_key, linked, audit_entries):
    counts = crosswalk.build_crosswalk(settings, master_key)
    assert counts["person_keys"] == 1 and counts["files_replayed"] == 2
    blob = crosswalk.crosswalk_path(settings).read_bytes()
    assert b"P77" not in blob and b"J55" not in blob                 # encrypted at rest
    assert not str(crosswalk.crosswalk_path(settings)).startswith(str(settings.warehouse_path.parent))

    ids = crosswalk.lookup(settings, master_key, linked, "correction request 2024-17", who="steward-a")
    assert sorted(ids) == [("jail", "J55"), ("police", "P77")]
    entries = audit_entries()
    assert entries[-1]["who"] == "steward-a" and entries[-1]["reason"] == "correction request 2024-17"
    assert entries[-1]["person_key"] == linked and "P77" not in json.dumps(entries)
    assert audit.verify_audit(settings) == 1

    with pytest.raises(LeadHubError, match="reason"):                  # no reason, no lookup
        crosswalk.lookup(settings, master_key, linked, "  ")
    assert audit.verify_audit(settings) == 1


def test_cli_build_lookup_verify_and_an_edited_log_is_detected(settings, master_key, linked, capsys):
    assert main(["crosswalk", "build", "--reason", "case review"]) == 0
    for reason in ("first", "second", "third"):
        assert main(["crosswalk", "lookup", linked, "--reason", reason, "--who", "steward-b"]) == 0
    out = capsys.readouterr().out
    assert "police\tP77" in out and "jail\tJ55" in out
    assert main(["crosswalk", "verify"]) == 0

    log = audit.audit_path(settings)
    lines = log.read_text().splitlines()
    log.write_text("\n".join([lines[0], lines[2]]) + "\n")           # someone removes an entry
    with pytest.raises(LeadHubError, match="chain broken at line 2"):
        audit.verify_audit(settings)
    assert main(["crosswalk", "lookup", linked, "--reason", "fourth"]) == 2   # blocked until investigated


def test_an_audit_entry_longer_than_the_tail_window_keeps_the_chain(settings, master_key, linked, audit_entries):
    crosswalk.build_crosswalk(settings, master_key)
    long_reason = "court order 2024-CV-0917: " + "records for the named case; " * 400
    crosswalk.lookup(settings, master_key, linked, long_reason, who="steward-a")
    crosswalk.lookup(settings, master_key, linked, "follow-up", who="steward-a")
    assert audit.verify_audit(settings) == 2
    entries = audit_entries()
    assert entries[0]["reason"] == long_reason.strip() and entries[1]["reason"] == "follow-up"


def test_crosswalk_and_audit_log_end_up_owner_only_even_over_wider_leftovers(settings, master_key, linked):
    import os
    import stat

    steward = audit.steward_dir(settings)
    steward.mkdir(parents=True, exist_ok=True)
    leftover = crosswalk.crosswalk_path(settings).with_suffix(".tmp")
    leftover.write_bytes(b"")
    os.chmod(leftover, 0o644)
    audit.audit_path(settings).write_text("")
    os.chmod(audit.audit_path(settings), 0o644)

    crosswalk.build_crosswalk(settings, master_key)
    crosswalk.lookup(settings, master_key, linked, "correction request", who="steward-a")
    assert stat.S_IMODE(crosswalk.crosswalk_path(settings).stat().st_mode) == 0o600
    assert stat.S_IMODE(audit.audit_path(settings).stat().st_mode) == 0o600
    assert audit.verify_audit(settings) == 1


def test_building_with_another_key_keeps_the_existing_crosswalk(settings, master_key, linked, tmp_path):
    from leadhub.core.keys import MasterKey, create_key_file

    crosswalk.build_crosswalk(settings, master_key)
    before = crosswalk.crosswalk_path(settings).read_bytes()
    other = MasterKey.load(create_key_file(tmp_path / "other" / "master.key"))
    with pytest.raises(LeadHubError, match="left as it is"):
        crosswalk.build_crosswalk(settings, other)
    assert crosswalk.crosswalk_path(settings).read_bytes() == before
    assert sorted(crosswalk.lookup(settings, master_key, linked, "check", who="s")) == [
        ("jail", "J55"), ("police", "P77")]


def test_crosswalk_build_and_linkage_train_are_audited_as_pairs(settings, master_key, linked, capsys,
                                                                 audit_entries):
    assert main(["crosswalk", "build"]) == 2                          # no reason, no build, no entry
    assert main(["linkage", "train", "--reason", " "]) == 2
    assert "needs --reason" in capsys.readouterr().err
    assert audit_entries() == [] and not crosswalk.crosswalk_path(settings).exists()

    assert main(["crosswalk", "build", "--reason", "case review", "--who", "steward-b"]) == 0
    started, done = audit_entries()
    assert (started["action"], started["outcome"], done["outcome"]) == ("crosswalk-build", "started", "done")
    assert started["who"] == done["who"] == "steward-b" and started["key"] == master_key.key_id
    # Counts, never ids: 2 archived files replayed (police, jail) into 1 person key.
    assert (done["files_replayed"], done["person_keys"]) == (2, 1) and "P77" not in json.dumps(done)

    # Two identity rows are too few to train on: the model stays, the pair says the training failed.
    assert main(["linkage", "train", "--reason", "yearly re-estimate"]) == 2
    started, failed = audit_entries()[2:]
    assert (started["action"], started["outcome"]) == ("linkage-train", "started")
    assert (failed["outcome"], failed["error"]) == ("failed", "LeadHubError") and "records" not in failed
    assert audit.verify_audit(settings) == 4


def test_ids_are_re_identified_only_under_an_agreement_permitting_operations(settings, master_key, linked,
                                                                          tmp_path, monkeypatch):
    from leadhub.core import agreements

    folder = tmp_path / "agreements"
    folder.mkdir()
    for path in agreements.AGREEMENTS_DIR.glob("*.yaml"):
        (folder / path.name).write_text(path.read_text())
    monkeypatch.setattr(agreements, "AGREEMENTS_DIR", folder)

    def sign(agency, purposes):
        path = folder / f"{agency}.yaml"
        lines = [f"purposes: [{purposes}]" if line.startswith("purposes:") else line
                 for line in path.read_text().splitlines()]
        path.write_text("\n".join(lines) + "\n")

    sign("jail", "evaluation")                                        # the jail's data is not for case work
    counts = crosswalk.build_crosswalk(settings, master_key)
    assert (counts["files_replayed"], counts["agencies_left_out"]) == (1, 1)
    assert crosswalk.lookup(settings, master_key, linked, "case review", who="s") == [("police", "P77")]
    assert b"J55" not in crosswalk.crosswalk_plaintext(settings, master_key)

    # Built while both permit it, then the police agreement is amended: withheld on the lookup's day.
    sign("jail", "evaluation, operations")
    crosswalk.build_crosswalk(settings, master_key)
    sign("police", "evaluation")
    assert crosswalk.lookup(settings, master_key, linked, "case review", who="s") == [("jail", "J55")]
