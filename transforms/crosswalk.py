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
* Every lookup first appends who, when, why and which key to the steward's
  hash-chained audit log (leadhub/core/audit.py). A lookup whose audit entry
  cannot be written does not happen.
* Re-identifying a person for the program's case work is the ``operations``
  purpose of the data-sharing agreements: the crosswalk holds the ids of an
  agency only while its agreement is in force and permits ``operations``, and a
  lookup checks that again on its own day (``operational_agencies``).
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tqdm import tqdm

from leadhub.core.agreements import load_agreements
from leadhub.core.archive import decrypt_to
from leadhub.core.contracts import load_contracts
from leadhub.core.readers import read_chunks
from leadhub.core.errors import LeadHubError
from leadhub.core.files import atomic_write, make_private_dir
from leadhub.core.keys import MasterKey
from leadhub.core.settings import Settings
from leadhub.core.warehouse import connect, utcnow
from leadhub.core.audit import append_audit, required_reason, steward_dir, utc_now_seconds, verify_audit
from transforms.pseudonymize import Pseudonymizer

MAGIC = b"LHX1"
log = logging.getLogger(__name__)


def crosswalk_path(settings: Settings) -> Path:
    return steward_dir(settings) / "crosswalk.enc"


def operational_agencies(agencies) -> set[str]:
    """Those of ``agencies`` whose agreement is in force today and permits ``operations``."""
    today, agreements = utcnow().date(), load_agreements()
    return {a for a in agencies if a in agreements and agreements[a].in_force(today)
            and agreements[a].permits("operations")}


def build_crosswalk(settings: Settings, key: MasterKey, progress: bool = False) -> dict[str, int]:
    """Replay the archive, map agency ids to person keys, write the encrypted crosswalk.

    Only agencies whose agreement permits ``operations`` today are replayed; the others are
    counted in ``agencies_left_out``. One log line per stage; with ``progress`` (a terminal)
    tqdm shows the files as they are replayed.
    """
    if not settings.warehouse_path.is_file():
        raise LeadHubError(f"no warehouse at {settings.warehouse_path}; run ingest and build first")
    contracts = load_contracts()
    pseudo = Pseudonymizer(key)
    with connect(settings.warehouse_path, read_only=True) as con:
        links = {(a, t): k for a, t, k in con.execute(
            "SELECT agency, person_token, person_key FROM core.person_link").fetchall()}
        files = con.execute(
            "SELECT agency, extract, archive_path FROM ops.file_ledger WHERE status IN ('accepted', 'superseded') "
            "AND archive_path IS NOT NULL ORDER BY received_at").fetchall()
        key_ids = {k for (k,) in con.execute("SELECT DISTINCT key_id FROM ops.batches").fetchall()}
    held = {agency for agency, _, _ in files}
    allowed = operational_agencies(held)
    files = [f for f in files if f[0] in allowed]
    if key_ids and key_ids != {key.key_id}:
        # Another key's tokens match no link and its archive does not open: the crosswalk would be
        # rebuilt empty over the good one.
        raise LeadHubError(f"the warehouse is pseudonymized under key {', '.join(sorted(key_ids))}, not "
                           f"{key.key_id}; the crosswalk was left as it is")
    ids_of_key: dict[str, set] = defaultdict(set)
    replayed = skipped = 0
    work = Path(tempfile.mkdtemp(prefix="leadhub-crosswalk-"))  # mkdtemp makes it 0700
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
    payload = json.dumps({"key_id": key.key_id, "built_at": utc_now_seconds(),
                          "people": {k: sorted(v) for k, v in sorted(ids_of_key.items())}}).encode()
    nonce = os.urandom(12)
    blob = MAGIC + nonce + AESGCM(key.subkey("crosswalk")).encrypt(nonce, payload, MAGIC)
    target = crosswalk_path(settings)
    make_private_dir(target.parent)
    with atomic_write(target, tmp=target.with_suffix(".tmp")) as f:
        f.write(blob)
    log.info("crosswalk: %d person keys from %d files (%d skipped) written to %s",
             len(ids_of_key), replayed, skipped, target)
    return {"files_replayed": replayed, "files_skipped": skipped, "person_keys": len(ids_of_key),
            "agencies_left_out": len(held - allowed)}


def crosswalk_plaintext(settings: Settings, key: MasterKey) -> bytes:
    """The crosswalk decrypted in memory; LeadHubError if it is missing, not a crosswalk, or
    does not open with ``key``. The one reader of the file's layout (MAGIC, nonce, AES-GCM)."""
    path = crosswalk_path(settings)
    if not path.exists():
        raise LeadHubError(f"no crosswalk at {path}; build it with 'leadhub crosswalk build'")
    blob = path.read_bytes()
    if blob[:4] != MAGIC:
        raise LeadHubError(f"{path} is not a crosswalk file")
    try:
        return AESGCM(key.subkey("crosswalk")).decrypt(blob[4:16], blob[16:], MAGIC)
    except Exception:
        raise LeadHubError(f"{path} cannot be decrypted with this key (wrong key or tampered file)") from None


def lookup(settings: Settings, key: MasterKey, person_key: str, reason: str,
           who: str | None = None) -> list[tuple[str, str]]:
    """(agency, agency person id) of one person key; audited before anything is decrypted.

    Ids of an agency whose agreement no longer permits ``operations`` on the lookup's day are
    withheld, even though the crosswalk was built while it did."""
    reason = required_reason(reason, "a crosswalk lookup")
    path = crosswalk_path(settings)
    if not path.exists():
        raise LeadHubError(f"no crosswalk at {path}; build it with 'leadhub crosswalk build'")
    verify_audit(settings)
    append_audit(settings, who=who or getpass.getuser(), person_key=person_key, reason=reason, action="lookup")
    ids = [tuple(x) for x in json.loads(crosswalk_plaintext(settings, key))["people"].get(person_key, [])]
    allowed = operational_agencies({agency for agency, _ in ids})
    return [(agency, pid) for agency, pid in ids if agency in allowed]
