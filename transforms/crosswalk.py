"""Re-identification crosswalk for the data steward: person_key -> agency person ids.

Analysts never need to know who a person_key is; a steward sometimes must (a
correction request, a consent withdrawal, a court order). The crosswalk makes
that possible without putting identifiers in the warehouse:

* It is built by replaying the encrypted archive (the originals, decrypted with
  the archive subkey into a private temporary directory and deleted right
  after), so intake needs no change and keeps no identifier anywhere.
* It holds only agency person ids (no names, birth dates or SSNs), grouped by
  person_key, encrypted with AES-256-GCM under the ``crosswalk`` subkey, in
  ``<data dir>/steward/`` — outside the warehouse and the analysts' snapshot.
* Every lookup first appends who, when, why and which key to
  ``steward/audit.log``: JSON lines, each carrying the SHA-256 of the previous
  line, so a deleted or edited entry breaks the chain (``verify_audit``).
  A lookup whose audit entry cannot be written does not happen.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tqdm import tqdm

from connectors.archive import decrypt_to
from connectors.contracts import load_contracts
from connectors.readers import read_chunks
from leadhub.errors import LeadHubError
from leadhub.keys import MasterKey
from leadhub.settings import Settings
from leadhub.warehouse import connect
from transforms.pseudonymize import Pseudonymizer

MAGIC = b"LHX1"
log = logging.getLogger(__name__)
GENESIS = "0" * 64


def steward_dir(settings: Settings) -> Path:
    return settings.data_dir / "steward"


def crosswalk_path(settings: Settings) -> Path:
    return steward_dir(settings) / "crosswalk.enc"


def audit_path(settings: Settings) -> Path:
    return steward_dir(settings) / "audit.log"


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def build_crosswalk(settings: Settings, key: MasterKey, progress: bool = False) -> dict[str, int]:
    """Replay the archive, map agency ids to person keys, write the encrypted crosswalk.

    One log line per stage; with ``progress`` (a terminal) tqdm shows the files as they are replayed.
    """
    contracts = load_contracts()
    pseudo = Pseudonymizer(key)
    with connect(settings.warehouse_path, read_only=True) as con:
        links = {(a, t): k for a, t, k in con.execute(
            "SELECT agency, person_token, person_key FROM core.person_link").fetchall()}
        files = con.execute(
            "SELECT agency, extract, archive_path FROM ops.file_ledger WHERE status IN ('accepted', 'superseded') "
            "AND archive_path IS NOT NULL ORDER BY received_at").fetchall()
        key_ids = {k for (k,) in con.execute("SELECT DISTINCT key_id FROM ops.batches").fetchall()}
    if key_ids and key_ids != {key.key_id}:
        # Another key's tokens match no link and its archive does not open: the crosswalk would be
        # rebuilt empty over the good one.
        raise LeadHubError(f"the warehouse is pseudonymized under key {', '.join(sorted(key_ids))}, not "
                           f"{key.key_id}; the crosswalk was left as it is")
    ids_of_key: dict[str, set] = defaultdict(set)
    replayed = skipped = 0
    work = Path(tempfile.mkdtemp(prefix="leadhub-crosswalk-"))
    os.chmod(work, 0o700)
    try:
        log.info("crosswalk: replaying %d archived files under key %s", len(files), key.key_id)
        for agency, extract, archive in tqdm(files, desc="crosswalk", unit="file", disable=not progress):
            contract = contracts.get(f"{agency}_{extract}")
            id_col = next((c.name for c in (contract.identifier_columns if contract else [])
                           if c.identifier == "agency_person_id"), None)
            if id_col is None:
                continue
            if not (settings.data_dir / archive).is_file():
                skipped += 1  # a superseded file's original removed by archive retention
                continue
            plain = work / "original"
            try:
                with open(plain, "wb") as out:
                    decrypt_to(settings.data_dir / archive, out, key)
                for _, cols in read_chunks(plain, contract, display_name=Path(archive).name):
                    for pid in cols[id_col]:
                        person_key = links.get((agency, pseudo.person_id_token(agency, pid)))
                        if person_key:
                            ids_of_key[person_key].add((agency, str(pid).strip()))
                replayed += 1
            except LeadHubError:
                skipped += 1  # e.g. an encrypted drop whose inner file needs the drop key
            finally:
                plain.unlink(missing_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    payload = json.dumps({"key_id": key.key_id, "built_at": _now(),
                          "people": {k: sorted(v) for k, v in sorted(ids_of_key.items())}}).encode()
    nonce = os.urandom(12)
    blob = MAGIC + nonce + AESGCM(key.subkey("crosswalk")).encrypt(nonce, payload, MAGIC)
    target = crosswalk_path(settings)
    _private_dir(target.parent)
    tmp = target.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # the mode of O_CREAT applies only to a new file, not to a leftover
    with os.fdopen(fd, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    log.info("crosswalk: %d person keys from %d files (%d skipped) written to %s",
             len(ids_of_key), replayed, skipped, target)
    return {"files_replayed": replayed, "files_skipped": skipped, "person_keys": len(ids_of_key)}


def _now() -> str:
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
    _private_dir(path.parent)
    record = {"at": _now(), **entry, "prev": _last_hash(path)}
    line = json.dumps(record, sort_keys=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)  # also an existing log (e.g. restored from a backup with a wider mode)
    with os.fdopen(fd, "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())
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


def lookup(settings: Settings, key: MasterKey, person_key: str, reason: str,
           who: str | None = None) -> list[tuple[str, str]]:
    """(agency, agency person id) of one person key; audited before anything is decrypted."""
    if not reason or not reason.strip():
        raise LeadHubError("a crosswalk lookup needs a --reason; it is written to the audit log")
    path = crosswalk_path(settings)
    if not path.exists():
        raise LeadHubError(f"no crosswalk at {path}; build it with 'leadhub crosswalk build'")
    verify_audit(settings)
    append_audit(settings, who=who or getpass.getuser(), person_key=person_key, reason=reason.strip(),
                 action="lookup")
    blob = path.read_bytes()
    if blob[:4] != MAGIC:
        raise LeadHubError(f"{path} is not a crosswalk file")
    try:
        payload = AESGCM(key.subkey("crosswalk")).decrypt(blob[4:16], blob[16:], MAGIC)
    except Exception:
        raise LeadHubError(f"{path} cannot be decrypted with this key (wrong key or tampered file)") from None
    return [tuple(x) for x in json.loads(payload)["people"].get(person_key, [])]
