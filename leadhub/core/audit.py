"""The steward's audit log: who looked at or released what, when and why.

``<data dir>/steward/audit.log`` holds JSON lines, each carrying the SHA-256 of
the previous line, so a deleted or edited entry breaks the chain
(``verify_audit``). Crosswalk lookups, linkage explanations and quarantine
releases write their entry first: an action whose entry cannot be written does
not happen.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

from leadhub.core.errors import LeadHubError
from leadhub.core.files import append_durably, make_private_dir
from leadhub.core.settings import Settings

GENESIS = "0" * 64


def steward_dir(settings: Settings) -> Path:
    return settings.data_dir / "steward"


def audit_path(settings: Settings) -> Path:
    return steward_dir(settings) / "audit.log"


def utc_now_seconds() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _entry_hash(line: str) -> str:
    return hashlib.sha256(line.encode()).hexdigest()


def _last_hash(path: Path) -> str:
    if not path.exists() or not path.stat().st_size:
        return GENESIS
    size = path.stat().st_size
    window = 4096
    with open(path, "rb") as f:
        while True:  # widen the tail until it holds the whole last line (a long reason can exceed any window)
            f.seek(max(0, size - window))
            tail = f.read().rstrip(b"\n")
            if b"\n" in tail or window >= size:
                break
            window *= 2
    return _entry_hash(tail.rsplit(b"\n", 1)[-1].decode())


def append_audit(settings: Settings, **entry) -> dict:
    """Append one hash-chained entry (O_APPEND, fsynced) and return it."""
    path = audit_path(settings)
    make_private_dir(path.parent)
    record = {"at": utc_now_seconds(), **entry, "prev": _last_hash(path)}
    append_durably(path, json.dumps(record, sort_keys=True) + "\n")
    return record


def verify_audit(settings: Settings) -> int:
    """Number of entries if the chain is intact; raises naming the first broken line otherwise."""
    path = audit_path(settings)
    prev = GENESIS
    n = 0
    for n, line in enumerate(path.read_text().splitlines() if path.exists() else [], start=1):
        try:
            record = json.loads(line)
        except ValueError:
            raise LeadHubError(f"audit log line {n} is not JSON: the log was edited") from None
        if record.get("prev") != prev:
            raise LeadHubError(f"audit log chain broken at line {n}: an entry was removed or changed")
        prev = _entry_hash(line)
    return n
