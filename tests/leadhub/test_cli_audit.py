"""Every steward command writes its audit entry before it acts, and `leadhub audit` reads the trail."""

import json

import pytest

from leadhub import cli
from leadhub.core import audit
from leadhub.core.archive import encrypt_file


# (argv after the command's own arguments are filled in, the action and details its entry must carry).
# The data directory is empty, so most actions find nothing to act on: what counts is that the
# entry is on the log whatever the action then does.
STEWARD_COMMANDS = {
    "decrypt": (["decrypt", "{archived}", "{tmp}/out.csv"], "decrypt", {"file": "x.enc"}),
    "decrypt-drop": (["decrypt-drop", "{tmp}/drop.lhx", "{tmp}/drop.csv"], "decrypt-drop", {"file": "drop.lhx"}),
    "reprocess": (["reprocess", "0123456789abcdef"], "reprocess", {"file_id": "0123456789abcdef"}),
    "reprocess --force": (["reprocess", "0123456789abcdef", "--force"], "reload", {"file_id": "0123456789abcdef"}),
    "retention": (["retention", "--days", "30"], "retention", {"days": 30}),
    "rotate-key": (["rotate-key", "--new-key-file", "{tmp}/new.key", "--create"], "rotate-key", {}),
    # Audited as a pair: 'started', then here 'failed' (no warehouse to build from or train on).
    "crosswalk build": (["crosswalk", "build"], "crosswalk-build", {"outcome": "started"}),
    "linkage train": (["linkage", "train"], "linkage-train", {"outcome": "started"}),
}


@pytest.mark.parametrize("name", STEWARD_COMMANDS)
def test_each_steward_command_writes_an_audit_entry(settings, master_key, tmp_path, name, audit_entries):
    argv, action, details = STEWARD_COMMANDS[name]
    archived = tmp_path / "x.enc"
    src = tmp_path / "police_20240101.csv"
    src.write_bytes(b"person_id,last_name\nP1,QUILL\n")
    encrypt_file(src, archived, master_key)
    argv = [a.format(tmp=tmp_path, archived=archived) for a in argv]
    cli.main([*argv, "--reason", "court order 17", "--who", "steward-c"])
    entry, *ended = audit_entries()
    assert entry["action"] == action and entry["who"] == "steward-c" and entry["reason"] == "court order 17"
    assert {k: entry[k] for k in details} == details
    assert "QUILL" not in json.dumps(entry) and "P1" not in json.dumps(entry)
    # A pair's second entry ends the same action; every other command writes one entry.
    assert [(e["action"], e["outcome"]) for e in ended] == ([(action, "failed")] if "outcome" in details else [])
    assert audit.verify_audit(settings) == 1 + len(ended)


@pytest.mark.parametrize("name", STEWARD_COMMANDS)
def test_each_steward_command_refuses_without_a_reason_and_writes_nothing(settings, master_key, tmp_path,
                                                                          name, capsys, audit_entries):
    argv = [a.format(tmp=tmp_path, archived=tmp_path / "x.enc") for a in STEWARD_COMMANDS[name][0]]
    assert cli.main([*argv, "--reason", "  "]) == 2
    assert "needs --reason" in capsys.readouterr().err
    assert audit_entries() == [] and not (tmp_path / "new.key").exists()


def test_a_dry_run_of_retention_writes_no_entry(settings, audit_entries):
    assert cli.main(["retention", "--days", "30", "--dry-run"]) == 0
    assert audit_entries() == []


def test_a_broken_log_stops_the_steward_command_before_it_acts(settings, master_key, tmp_path):
    src = tmp_path / "f.csv"
    src.write_bytes(b"a\n1\n")
    encrypt_file(src, tmp_path / "x.enc", master_key)
    assert cli.main(["decrypt", str(tmp_path / "x.enc"), str(tmp_path / "a.csv"), "--reason", "r"]) == 0
    audit.audit_path(settings).write_text("")                    # the log is emptied
    assert cli.main(["decrypt", str(tmp_path / "x.enc"), str(tmp_path / "b.csv"), "--reason", "r"]) == 2
    assert not (tmp_path / "b.csv").exists()                     # nothing decrypted


def test_audit_verify_and_show_since(settings, master_key, tmp_path, capsys):
    src = tmp_path / "f.csv"
    src.write_bytes(b"a\n1\n")
    encrypt_file(src, tmp_path / "x.enc", master_key)
    cli.main(["decrypt", str(tmp_path / "x.enc"), str(tmp_path / "a.csv"), "--reason", "audit of 2024"])
    assert cli.main(["audit", "verify"]) == 0
    assert "intact: 1 entries" in capsys.readouterr().out
    assert cli.main(["audit", "show", "--since", "2000-01-01"]) == 0
    out = capsys.readouterr().out
    assert "decrypt" in out and "file=x.enc" in out and "reason: audit of 2024" in out
    assert cli.main(["audit", "show", "--since", "2999-01-01"]) == 0
    assert capsys.readouterr().out == ""                         # nothing written on or after that day
    assert cli.main(["audit", "show", "--since", "last week"]) == 2

    lines = audit.audit_path(settings).read_text().splitlines()
    audit.audit_path(settings).write_text("")                    # truncated to nothing
    assert cli.main(["audit", "verify"]) == 2
    assert "0 of the 1 entries" in capsys.readouterr().err
    audit.audit_path(settings).write_text(lines[0] + "\n")
    assert cli.main(["audit", "verify"]) == 0

