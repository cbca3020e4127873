"""The steward's audit trail: who did what, when and why, tamper-evident.

``<data dir>/steward/audit.log`` holds JSON lines, each carrying the SHA-256 of
the previous line, so an edited or removed entry breaks the chain. Every steward
action writes its entry *before* it acts (an action whose entry cannot be
written does not happen): decrypt, decrypt-drop, crosswalk build and lookup,
linkage train and explain, reprocess (and --force), release, seal, retention and
rotate-key. Entries hold who, when, why and what in counts, keys, file ids and
file names, never a person's identifier. No reason, no action (``required_reason``).

An action whose outcome matters to the record (seal, crosswalk build, linkage
train) writes a pair (``started_and_done``): ``outcome: started`` before it acts,
then ``outcome: done`` with its counts once it has finished, or ``outcome:
failed`` with the error's type. So a failed action never leaves an entry
claiming it happened, and an interrupted one shows as started without an end.

Appends are serialized by an ``fcntl.flock`` on ``audit.lock`` beside the log,
so two stewards (or two processes) at once cannot both chain onto the same
previous entry and fork the chain.

A chain alone cannot show that its last entries were cut off, or that the whole
log was deleted. So every append also records the entry count and the last
entry's hash in ``<data dir>/state/audit.head``, kept apart from the log, and
``verify_audit`` checks the log against it. Where the head is kept is a trust
decision: a head in the same data directory catches accidents, a careless
restore and anybody who does not know about it, but not a steward who rewrites
both. Every new head is therefore also sent to the host's syslog (facility
authpriv, "leadhub-audit head entries=N hash=H"), which journald or rsyslog keep
root-owned and may forward off the host: a place the steward cannot rewrite.
Comparing the last such line with what ``leadhub audit verify`` prints closes
that gap. Where no syslog socket exists the line is dropped silently: in a
container, mount the host's ``/dev/log``.

Retention never touches the log (CJIS asks for at least a year of audit
records; the hub keeps all of them): archive retention deletes archived
originals only, and the log lives outside the archive.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import syslog
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Iterator

from leadhub.core.errors import LeadHubError
from leadhub.core.files import PRIVATE_FILE_MODE, append_durably, atomic_write_text, make_private_dir, open_private
from leadhub.core.settings import Settings

GENESIS = "0" * 64
log = logging.getLogger("leadhub.audit")


def steward_dir(settings: Settings) -> Path:
    return settings.data_dir / "steward"


def audit_path(settings: Settings) -> Path:
    return steward_dir(settings) / "audit.log"


def head_path(settings: Settings) -> Path:
    """The entry count and last hash, kept apart from the log so that truncation shows."""
    return settings.state_dir / "audit.head"


def utc_now_seconds() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _entry_hash(line: str) -> str:
    return hashlib.sha256(line.encode()).hexdigest()


@contextmanager
def _appending(settings: Settings) -> Iterator[None]:
    """Hold the exclusive append lock (released by the OS however the holder exits)."""
    path = audit_path(settings)
    make_private_dir(path.parent)
    fd = open_private(path.with_name("audit.lock"), os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _read_head(settings: Settings) -> dict | None:
    path = head_path(settings)
    if not path.exists():
        return None
    try:
        head = json.loads(path.read_text())
        return {"entries": int(head["entries"]), "hash": str(head["hash"])}
    except (ValueError, KeyError, TypeError):
        raise LeadHubError(f"{path} is not an audit head: it was edited") from None


def _write_head(settings: Settings, entries: int, last_hash: str) -> None:
    path = head_path(settings)
    make_private_dir(path.parent)
    atomic_write_text(path, json.dumps({"entries": entries, "hash": last_hash}) + "\n")
    message = f"leadhub-audit head entries={entries} hash={last_hash}"
    syslog.syslog(syslog.LOG_AUTHPRIV | syslog.LOG_INFO, message)  # counts and a hash: nothing identifying
    log.info(message)


def _chain(settings: Settings) -> tuple[int, str]:
    """(entries, last hash) of an unbroken chain; raises naming the first broken line."""
    path = audit_path(settings)
    prev = GENESIS
    n = 0
    for n, line in enumerate(path.read_text().splitlines() if path.exists() else [], start=1):
        try:
            record = json.loads(line)
        except ValueError:
            raise LeadHubError(f"audit log line {n} is not JSON: the log was edited") from None
        if not isinstance(record, dict) or record.get("prev") != prev:
            raise LeadHubError(f"audit log chain broken at line {n}: an entry was removed or changed")
        prev = _entry_hash(line)
    return n, prev


def _checked(settings: Settings) -> tuple[int, str]:
    """The chain, also checked against the head kept outside the log."""
    n, last = _chain(settings)
    head = _read_head(settings)
    if head is None:
        if n:
            raise LeadHubError(f"audit head {head_path(settings)} is missing for a log of {n} entries: "
                               "it was deleted (or the log predates it: 'leadhub audit adopt')")
        return n, last
    if n < head["entries"]:
        what = "deleted" if n == 0 else f"cut: {head['entries'] - n} last entries are missing"
        raise LeadHubError(f"audit log {audit_path(settings)} has {n} of the {head['entries']} entries "
                           f"its head records: it was {what}")
    if n == head["entries"] and last != head["hash"]:
        raise LeadHubError("audit log's last entry differs from the one its head records: it was replaced")
    if n > head["entries"] + 1:
        raise LeadHubError(f"audit log has {n - head['entries']} entries its head does not record: "
                           "entries were added outside the hub")
    if n == head["entries"] + 1 and _chain_hash_at(settings, head["entries"]) != head["hash"]:
        raise LeadHubError("audit log's entries differ from the ones its head records: it was replaced")
    # n == entries + 1 with the head's hash inside the chain: an append was interrupted between
    # writing its entry and its head; the next append writes the head again.
    return n, last


def _chain_hash_at(settings: Settings, entries: int) -> str:
    lines = audit_path(settings).read_text().splitlines()
    return _entry_hash(lines[entries - 1]) if entries else GENESIS


def required_reason(reason: str | None, action: str) -> str:
    """The steward's reason, stripped; refused (one line) when missing: the why is part of the record."""
    if not (reason or "").strip():
        raise LeadHubError(f"{action} needs --reason; it is written to the steward audit log")
    return reason.strip()


@contextmanager
def started_and_done(settings: Settings, **entry) -> Iterator[dict]:
    """Audit an action as a pair: ``started`` before the block, ``done`` with the counts the block
    puts in the yielded dict after it, or ``failed`` (the error's type, never its text) if it raises.

    ``entry`` holds who, action, reason and details, as for ``append_audit``.
    """
    append_audit(settings, **entry, outcome="started")
    counts: dict = {}
    try:
        yield counts
    except BaseException as e:
        try:
            append_audit(settings, **entry, outcome="failed", error=type(e).__name__)
        except Exception:  # the failure being reported is the one that matters; the log stays as it was
            log.warning("could not write the 'failed' audit entry of %s", entry.get("action"))
        raise
    append_audit(settings, **{**entry, **counts}, outcome="done")


def append_audit(settings: Settings, **entry) -> dict:
    """Append one hash-chained entry (fsynced, under the append lock) and return it.

    Callers pass ``who``, ``action`` and ``reason`` and details as counts, keys and file ids.
    Refuses (LeadHubError) when the log fails ``verify_audit``: nothing is chained onto a broken log.
    """
    path = audit_path(settings)
    with _appending(settings):
        n, last = _checked(settings)
        record = {"at": utc_now_seconds(), **entry, "prev": last}
        line = json.dumps(record, sort_keys=True)
        append_durably(path, line + "\n")
        _write_head(settings, n + 1, _entry_hash(line))
    return record


def verify_audit(settings: Settings) -> int:
    """Number of entries if the chain is intact and matches its head; raises naming what broke."""
    return verified_head(settings)[0]


def verified_head(settings: Settings) -> tuple[int, str]:
    """(entries, last hash) of a log that passes ``verify_audit``, to compare with the syslog's."""
    with _appending(settings):  # an append in progress is waited for, not reported as a mismatch
        return _checked(settings)


def adopt_head(settings: Settings) -> int:
    """Record the head of a log written before heads were kept (once, after an upgrade)."""
    with _appending(settings):
        if _read_head(settings) is not None:
            raise LeadHubError(f"{head_path(settings)} exists already; nothing to adopt")
        n, last = _chain(settings)
        _write_head(settings, n, last)
    return n


def entries_since(settings: Settings, since: date) -> list[dict]:
    """The entries written on or after ``since`` (UTC), oldest first, from a verified log."""
    verify_audit(settings)
    path = audit_path(settings)
    records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [r for r in records if r.get("at", "")[:10] >= since.isoformat()]
