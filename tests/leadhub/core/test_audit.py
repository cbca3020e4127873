"""The steward audit trail: chained, serialized, and checked against a head kept outside the log."""

import json
import subprocess
import sys
from datetime import date

import pytest

from leadhub.core import audit
from leadhub.core.errors import LeadHubError


def lines(settings) -> list[str]:
    return audit.audit_path(settings).read_text().splitlines()


def write(settings, n: int) -> None:
    for i in range(n):
        audit.append_audit(settings, who="steward-a", action="lookup", reason=f"case {i}", person_key=f"pk{i}")


# Each child appends its entries one by one, with no pause, racing the other child.
APPENDER = """
import sys
from leadhub.core.settings import Settings
from leadhub.core.audit import append_audit
s = Settings.from_env()
for i in range(int(sys.argv[2])):
    append_audit(s, who=sys.argv[1], action="lookup", reason="race", n=i)
"""


def test_two_processes_appending_at_once_keep_one_chain(settings, audit_entries):
    # 2 processes x 150 entries = 300 entries, each chained onto exactly one predecessor.
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, who, "150"]) for who in ("p1", "p2")]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    assert audit.verify_audit(settings) == 300
    records = audit_entries()
    assert len({r["prev"] for r in records}) == 300              # no two entries share a parent: no fork
    for who in ("p1", "p2"):                                     # each process's entries all there, in order
        assert [r["n"] for r in records if r["who"] == who] == list(range(150))
    assert json.loads(audit.head_path(settings).read_text())["entries"] == 300


def test_cutting_the_last_entries_is_detected(settings):
    write(settings, 5)
    log = audit.audit_path(settings)
    log.write_text("\n".join(lines(settings)[:3]) + "\n")       # the chain of the first 3 is intact
    with pytest.raises(LeadHubError, match="3 of the 5 entries.*2 last entries are missing"):
        audit.verify_audit(settings)
    with pytest.raises(LeadHubError, match="cut"):               # and nothing is chained onto it
        audit.append_audit(settings, who="x", action="lookup", reason="r")
    assert len(lines(settings)) == 3


def test_deleting_the_log_is_detected(settings):
    write(settings, 2)
    audit.audit_path(settings).unlink()
    with pytest.raises(LeadHubError, match="0 of the 2 entries.*deleted"):
        audit.verify_audit(settings)


def test_deleting_the_head_is_detected_and_an_old_log_can_be_adopted(settings):
    write(settings, 2)
    audit.head_path(settings).unlink()
    with pytest.raises(LeadHubError, match="head .* is missing for a log of 2 entries"):
        audit.verify_audit(settings)
    assert audit.adopt_head(settings) == 2
    assert audit.verify_audit(settings) == 2
    with pytest.raises(LeadHubError, match="exists already"):
        audit.adopt_head(settings)


def test_a_tampered_entry_breaks_the_chain_at_its_successor(settings):
    write(settings, 4)
    text = lines(settings)
    text[1] = text[1].replace("case 1", "case 9")               # entry 2 edited: entry 3's prev no longer matches
    audit.audit_path(settings).write_text("\n".join(text) + "\n")
    with pytest.raises(LeadHubError, match="chain broken at line 3"):
        audit.verify_audit(settings)


def test_a_rewritten_last_entry_is_detected_by_the_head(settings):
    write(settings, 3)
    text = lines(settings)
    text[2] = text[2].replace("case 2", "case 7")               # the last entry has no successor to break
    audit.audit_path(settings).write_text("\n".join(text) + "\n")
    with pytest.raises(LeadHubError, match="replaced"):
        audit.verify_audit(settings)


def test_an_append_interrupted_before_its_head_is_accepted_and_repaired(settings):
    write(settings, 2)
    head = audit.head_path(settings).read_text()
    write(settings, 1)
    audit.head_path(settings).write_text(head)                   # as if the process died after the entry
    assert audit.verify_audit(settings) == 3
    write(settings, 1)
    assert json.loads(audit.head_path(settings).read_text())["entries"] == 4


def test_show_since_lists_entries_from_that_day(settings, audit_entries):
    write(settings, 2)
    records = audit_entries()
    records[0]["at"] = "2025-01-31T23:59:59+00:00"               # re-chain by hand: an older entry
    prev = audit.GENESIS
    rebuilt = []
    for r in records:
        r["prev"] = prev
        rebuilt.append(json.dumps(r, sort_keys=True))
        prev = audit._entry_hash(rebuilt[-1])
    audit.audit_path(settings).write_text("\n".join(rebuilt) + "\n")
    audit.head_path(settings).unlink()
    audit.adopt_head(settings)
    # 2025-02-01 excludes the entry of 2025-01-31 and keeps today's (case 1).
    assert [r["reason"] for r in audit.entries_since(settings, date(2025, 2, 1))] == ["case 1"]
    assert len(audit.entries_since(settings, date(2025, 1, 31))) == 2


def test_every_new_head_goes_to_syslog_with_counts_and_hash_only(settings, monkeypatch):
    import syslog

    sent = []
    monkeypatch.setattr(audit.syslog, "syslog", lambda priority, message: sent.append((priority, message)))
    write(settings, 2)
    entries, last = audit.verified_head(settings)
    assert entries == 2 and sent[-1] == (syslog.LOG_AUTHPRIV | syslog.LOG_INFO,
                                         f"leadhub-audit head entries=2 hash={last}")
    assert len(sent) == 2 and not any("pk" in m or "case" in m for _, m in sent)   # no key, no reason
