"""Master key rotation: re-pseudonymize the warehouse under a new key without losing links.

Tokens and encodings cannot be translated from one key to another — that is
the point of keying them — so rotation goes back to the originals: every
archived file is decrypted with the old key, each of its rows gets its tokens
and encodings recomputed with the new key, and the staging row with the same
``_batch_id`` and ``_row_number`` is updated in place. The old -> new
``person_token`` pairs seen on the way rewrite ``core.person_link`` so every
agency id keeps its ``person_key``; the models are then rebuilt, all in one
transaction. Only after that commits is every archived original (quarantined
and duplicate deliveries included) re-encrypted under the new archive subkey
(each file replaced atomically; its header names the key id, so a run stopped
half-way is finished by running it again with the same two keys).

Sealing orders are remembered as HMACs of the sealed ids, which no archive holds
any more, so they cannot be recomputed: the old key's ``seal`` subkey is carried
forward instead, encrypted under the new key in the steward folder
(``leadhub.core.sealed.carry_seal_keys``, written before the warehouse moves), and
intake looks sealed record ids up under every generation. ``ops.sealed_records``
stays as it is. A person order's person token is keyed by the pseudonymization key,
so after rotation only the person's known records stay sealed, until the order is
entered again with ``leadhub seal --renew`` (docs/linkage.md, Key rotation).

Rotation refuses to start if any staging row cannot be traced to a replayable
archived file: a half-rotated warehouse would silently break links. Batches
retention expired hold no rows and no original, so they are skipped.

It takes minutes on a large archive: each stage writes one log line, and with
``progress`` (a terminal) tqdm shows the batches and files as they go.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from leadhub.core.archive import MAGIC as ARCHIVE_MAGIC, decrypt_to, encrypt_file
from leadhub.core.contracts import load_contracts
from leadhub.core.readers import read_chunks
from leadhub.core.errors import LeadHubError
from leadhub.core.files import transaction
from leadhub.core.redact import compact_warehouse
from leadhub.core.keys import MasterKey
from leadhub.core.sealed import carry_seal_keys, drop_old_keyring
from leadhub.core.settings import Settings
from leadhub.core.warehouse import connect, staging_columns
from transforms.pseudonymize import Pseudonymizer

PERSON = "person_token"
LINEAGE = ("_batch_id", "_row_number")

log = logging.getLogger(__name__)


def rotate_key(settings: Settings, old: MasterKey, new: MasterKey, progress: bool = False) -> dict[str, int]:
    """Re-pseudonymize staging and person links under ``new``; then re-encrypt the archive."""
    from transforms.model import run_models

    if old.key_id == new.key_id:
        raise LeadHubError("the new key is the current key; nothing to rotate")
    contracts = load_contracts()
    pseudo = Pseudonymizer(new)
    work = Path(tempfile.mkdtemp(prefix="leadhub-rotate-"))  # mkdtemp makes it 0700
    rows_done = 0
    archives: list[Path] = []
    try:
        with connect(settings.warehouse_path) as con:
            batches = con.execute(
                "SELECT b.batch_id, b.contract, l.archive_path FROM ops.batches b "
                "JOIN ops.file_ledger l ON l.file_id = b.file_id WHERE l.status IS DISTINCT FROM 'expired' "
                "ORDER BY b.loaded_at").fetchall()
            log.info("key rotation %s -> %s: replaying %d loaded batches from the archive",
                     old.key_id, new.key_id, len(batches))
            (sealed,) = con.execute("SELECT count(*) FROM ops.sealed_records").fetchone()
            generations = carry_seal_keys(settings, old, new)
            with transaction(con):
                token_map = []
                for batch_id, contract_name, archive in tqdm(batches, desc="re-pseudonymize", unit="batch",
                                                             disable=not progress):
                    contract = contracts[contract_name]
                    if not archive:
                        raise LeadHubError(f"batch {batch_id} has no archived original; cannot rotate")
                    plain = work / "original"
                    with open(plain, "wb") as out:
                        # An earlier run stopped while re-encrypting may have moved it to the new key.
                        path = settings.data_dir / archive
                        decrypt_to(path, out, new if _archive_key_id(path) == new.key_id else old)
                    keep = [n for n, _ in staging_columns(contract)
                            if n not in LINEAGE and n not in {c.name for c in contract.plain_columns}]
                    for numbers, values in read_chunks(plain, contract, display_name=Path(archive).name):
                        cols = pseudo.columns(contract, values)
                        frame = pd.DataFrame({"_row_number": numbers, **{k: cols[k] for k in keep}})
                        rows_done += _update_batch(con, contract.name, batch_id, frame, keep, token_map,
                                                   contract.agency)
                    plain.unlink()
                log.info("key rotation: %d staging rows re-pseudonymized; rewriting person links and "
                         "rebuilding the models", rows_done)
                _check_all_rotated(con, contracts, new.key_id)
                _rewrite_links(con, token_map)
                con.execute("UPDATE ops.batches SET key_id = ?", [new.key_id])
                run_models(con)
        compact_warehouse(settings.warehouse_path)  # the old key's tokens leave the file's freed blocks
        # Every archived original, not only those of loaded batches: quarantined, duplicate and
        # unfinished deliveries must stay readable (and re-processable) once the old key is gone.
        old_files = [p for p in sorted(settings.archive_dir.glob("*/*.enc"))
                     if p.is_file() and _archive_key_id(p) == old.key_id]
        log.info("key rotation: warehouse committed under %s; re-encrypting %d archived originals",
                 new.key_id, len(old_files))
        for path in tqdm(old_files, desc="re-encrypt archive", unit="file", disable=not progress):
            _reencrypt(path, old, new, work)
            archives.append(path)
        drop_old_keyring(settings, old)  # its keys are in the new key's file now
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("key rotation to %s done: %d rows in %d batches, %d archived originals",
             new.key_id, rows_done, len(batches), len(archives))
    return {"batches": len(batches), "rows": rows_done, "archive_files": len(set(archives)),
            "sealed_tokens": sealed, "seal_key_generations": generations}


def _archive_key_id(path: Path) -> str | None:
    """The key id an archive file's header names (None if it is no archive file)."""
    with open(path, "rb") as f:
        header = f.read(len(ARCHIVE_MAGIC) + 12)
    if len(header) != len(ARCHIVE_MAGIC) + 12 or not header.startswith(ARCHIVE_MAGIC):
        return None
    return header[len(ARCHIVE_MAGIC):].decode("ascii", "replace")


def _update_batch(con, table: str, batch_id: str, frame: pd.DataFrame, keep: list[str],
                  token_map: list, agency: str) -> int:
    con.register("rotated", frame)
    try:
        if PERSON in keep:
            token_map.extend((agency, o, n) for o, n in con.execute(
                f"SELECT DISTINCT s.{PERSON}, r.{PERSON} FROM staging.{table} s JOIN rotated r "
                f"ON s._row_number = r._row_number WHERE s._batch_id = ?", [batch_id]).fetchall())
        sets = ", ".join(f'"{c}" = r."{c}"' for c in keep)
        con.execute(f"UPDATE staging.{table} AS s SET {sets} FROM rotated r "
                    f"WHERE s._batch_id = ? AND s._row_number = r._row_number", [batch_id])
    finally:
        con.unregister("rotated")
    return len(frame)


def _check_all_rotated(con, contracts, key_id: str) -> None:
    for c in contracts.values():
        left = con.execute(f"SELECT count(*) FROM staging.{c.name} WHERE key_id IS DISTINCT FROM ?",
                           [key_id]).fetchall()[0][0]
        if left:
            raise LeadHubError(f"{left} row(s) of staging.{c.name} could not be traced to an archived "
                               "original; rotation stopped, nothing changed")


def _rewrite_links(con, token_map: list) -> None:
    """Old person tokens -> new ones in core.person_link; person keys stay as they are."""
    if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'core' "
                       "AND table_name = 'person_link'").fetchall()[0][0]:
        return
    mapping = pd.DataFrame(sorted(set(token_map)), columns=["agency", "old", "new"])
    if mapping.duplicated(["agency", "old"]).any():
        raise LeadHubError("one old person token maps to two new ones; rotation stopped, nothing changed")
    con.register("token_map", mapping)
    try:
        con.execute("CREATE TEMP TABLE rotated_links AS SELECT l.agency, coalesce(m.new, l.person_token) "
                    "AS person_token, l.person_key FROM core.person_link l LEFT JOIN token_map m "
                    "ON m.agency = l.agency AND m.old = l.person_token")
        con.execute("DELETE FROM core.person_link")
        con.execute("INSERT INTO core.person_link SELECT agency, person_token, person_key FROM rotated_links")
        con.execute("DROP TABLE rotated_links")
    finally:
        con.unregister("token_map")


def _reencrypt(path: Path, old: MasterKey, new: MasterKey, work: Path) -> None:
    plain = work / "reencrypt"
    with open(plain, "wb") as out:
        decrypt_to(path, out, old)
    encrypt_file(plain, path, new)  # writes a temporary file, fsyncs, renames over the old one
    plain.unlink()
