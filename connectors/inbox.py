"""Secure drop folders: take complete files from an agency inbox, safely.

For each file, in this order, so that nothing is ever lost or half-loaded:
  1. refuse what is unsafe to open (symlinks, non-regular files, odd names,
     empty or oversized files) — moved to quarantine, recorded;
  2. hash it; an identical re-send is recorded as a duplicate, not loaded;
  3. archive it encrypted and record it in the ledger (both durable);
  4. parse by its contract, pseudonymize, validate with Great Expectations;
  5. load staging rows, the batch, validation results and the ledger status
     in ONE warehouse transaction;
  6. only then remove the plaintext from the inbox (or move it to quarantine).
A crash between steps leaves the file in the inbox; the next run resumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import stat
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa

from connectors.archive import encrypt_file
from connectors.contracts import Contract, contract_for_file
from connectors.readers import read_chunks
from leadhub.errors import RejectedFile
from leadhub.keys import MasterKey
from leadhub.settings import Settings
from leadhub.warehouse import connect, staging_columns
from transforms.pseudonymize import Pseudonymizer

log = logging.getLogger(__name__)

IN_PROGRESS_SUFFIXES = (".part", ".tmp", ".partial", ".filepart", ".crdownload")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
STABLE_SECONDS = 0.5
ARROW_TYPES = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "INTEGER": pa.int32(),
               "DATE": pa.date32(), "TIMESTAMP": pa.timestamp("us"), "DOUBLE": pa.float64()}


@dataclass
class FileOutcome:
    """What happened to one file: safe for logs and XComs (no identifiers)."""
    file: str
    extract: str | None
    status: str           # accepted | duplicate | quarantined | waiting
    batch_id: str | None = None
    rows: int | None = None
    reason: str | None = None
    warnings: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _sha256(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def is_in_progress(name: str) -> bool:
    """Agency clerks write under a temporary name and rename when done."""
    return name.startswith(".") or name.lower().endswith(IN_PROGRESS_SUFFIXES)


def is_stable(path: Path, wait: float = STABLE_SECONDS) -> bool:
    """A file still growing (a copy without the temporary-name convention) is left for later."""
    first = path.lstat()
    if time.time() - first.st_mtime > max(wait, 2.0):
        return True
    time.sleep(wait)
    second = path.lstat()
    return (first.st_size, first.st_mtime_ns) == (second.st_size, second.st_mtime_ns)


def _to_arrow(contract: Contract, rows: list[int], cols: dict[str, list]) -> pa.Table:
    arrays, fields = [], []
    for name, sql_type in staging_columns(contract):
        if name == "_batch_id":
            continue
        values = rows if name == "_row_number" else cols[name]
        arrays.append(pa.array(values, type=ARROW_TYPES[sql_type]))
        fields.append(pa.field(name, ARROW_TYPES[sql_type]))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


class Intake:
    """One intake run over one agency inbox, holding the warehouse writer."""

    def __init__(self, settings: Settings, key: MasterKey, con: duckdb.DuckDBPyConnection):
        self.settings, self.key, self.con = settings, key, con
        self.pseudonymizer = Pseudonymizer(key)

    # --- ledger -----------------------------------------------------------
    def _ledger_insert(self, file_id: str, received: datetime, agency: str, extract: str | None,
                       name: str, size: int, sha: str, status: str, reason: str | None = None,
                       archive: str | None = None) -> None:
        self.con.execute(
            "INSERT INTO ops.file_ledger (file_id, received_at, agency, extract, file_name, size_bytes, "
            "sha256, status, reason, archive_path, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [file_id, received, agency, extract, name, size, sha, status, reason, archive, _now()])

    def _ledger_update(self, file_id: str, **fields) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.con.execute(f"UPDATE ops.file_ledger SET {sets}, updated_at = ? WHERE file_id = ?",
                         [*fields.values(), _now(), file_id])

    # --- moving files -----------------------------------------------------
    def _quarantine(self, agency: str, path: Path, file_id: str, err: RejectedFile | str) -> None:
        """Move the file aside with a reason file. Callers record the ledger row first."""
        reason = str(err)
        qdir = self.settings.quarantine_dir / agency
        qdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = qdir / f"{file_id}__{path.name}"
        os.replace(path, target)  # moves a symlink itself, never what it points to
        info = {"file": path.name, "file_id": file_id, "reason": reason, "quarantined_at": _now().isoformat()}
        if isinstance(err, RejectedFile):
            info.update(rule=err.rule, row=err.row, detail=err.detail)
        (qdir / f"{file_id}__{path.name}.reason.json").write_text(json.dumps(info, indent=2) + "\n")
        log.warning("quarantined %s/%s: %s", agency, path.name, reason)

    # --- one file ---------------------------------------------------------
    def take(self, agency: str, path: Path) -> FileOutcome:
        name = path.name
        received = _now()
        st = path.lstat()
        pseudo_id = f"{received:%Y%m%dT%H%M%S%f}-unread"

        def refuse(rule: str, detail: str, extract: str | None = None,
                   sha: str = "", size: int = st.st_size, file_id: str = pseudo_id) -> FileOutcome:
            err = RejectedFile(name, rule, detail)
            reason = str(err)
            self._ledger_insert(file_id, received, agency, extract, name, size, sha, "quarantined", reason)
            self._quarantine(agency, path, file_id, err)
            return FileOutcome(name, extract, "quarantined", reason=reason)

        if stat.S_ISLNK(st.st_mode):
            return refuse("symlink", "symbolic links are never followed")
        if not stat.S_ISREG(st.st_mode):
            return refuse("not_regular_file", "only regular files are accepted")
        if not SAFE_NAME.match(name):
            return refuse("file_name", "name has characters outside letters, digits, '.', '_' and '-'")
        if st.st_size == 0:
            return refuse("empty_file", "file is empty")
        if st.st_size > self.settings.max_file_bytes:
            return refuse("file_size", f"{st.st_size} bytes is over the limit of {self.settings.max_file_bytes}")

        contract = contract_for_file(agency, name)
        sha, size = _sha256(path)
        file_id = f"{received:%Y%m%dT%H%M%S%f}-{sha[:12]}"
        if contract is None:
            return refuse("unknown_file_name", f"no {agency} contract matches this file name",
                          sha=sha, size=size, file_id=file_id)

        # An identical re-send: recorded, never loaded twice. Its bytes are already archived.
        dup = self.con.execute(
            "SELECT file_id FROM ops.file_ledger WHERE sha256 = ? AND agency = ? AND status IN "
            "('accepted', 'superseded') LIMIT 1", [sha, agency]).fetchone()
        if dup:
            self._ledger_insert(file_id, received, agency, contract.extract, name, size, sha, "duplicate",
                                f"identical to {dup[0]}")
            path.unlink()
            return FileOutcome(name, contract.extract, "duplicate", reason=f"identical to {dup[0]}")

        # A run that stopped after archiving this file left a 'received' row: resume it.
        resumed = self.con.execute(
            "SELECT file_id, received_at FROM ops.file_ledger WHERE sha256 = ? AND agency = ? "
            "AND file_name = ? AND status = 'received' LIMIT 1", [sha, agency, name]).fetchone()
        if resumed:
            file_id, received = resumed
        archive = self.settings.archive_dir / agency / f"{file_id}__{name}.enc"
        encrypt_file(path, archive, self.key)
        if not resumed:
            self._ledger_insert(file_id, received, agency, contract.extract, name, size, sha, "received",
                                archive=str(archive.relative_to(self.settings.data_dir)))
        return self._load(agency, path, contract, file_id, received, sha)

    def _load(self, agency: str, path: Path, contract: Contract, file_id: str,
              received: datetime, sha: str) -> FileOutcome:
        from expectations.validate import validate_batch

        name = path.name
        try:
            tables = [_to_arrow(contract, rows, self.pseudonymizer.columns(contract, cols))
                      for rows, cols in read_chunks(path, contract)]
        except RejectedFile as err:
            reason = str(err)
            self._ledger_update(file_id, status="quarantined", reason=reason)
            self._quarantine(agency, path, file_id, err)
            return FileOutcome(name, contract.extract, "quarantined", reason=reason)
        table = pa.concat_tables(tables)
        batch_id = f"b{file_id}"
        outcome = validate_batch(contract, table.to_pandas())
        validated = _now()
        result_rows = [[batch_id, contract.name, r["expectation"], r.get("column"), r["severity"],
                        bool(r["success"]), r.get("observed"), validated] for r in outcome.results]
        insert_results = ("INSERT INTO ops.validation_results (batch_id, contract, expectation, column_name, "
                          "severity, success, observed, validated_at) VALUES (?,?,?,?,?,?,?,?)")
        if not outcome.success:
            reason = f"{name}: {outcome.reason()}"
            self.con.execute("BEGIN")
            if result_rows:
                self.con.executemany(insert_results, result_rows)
            self._ledger_update(file_id, status="quarantined", reason=reason, row_count=table.num_rows,
                                batch_id=batch_id)
            self.con.execute("COMMIT")
            self._quarantine(agency, path, file_id, reason)
            return FileOutcome(name, contract.extract, "quarantined", batch_id, table.num_rows, reason)

        cols = [n for n, _ in staging_columns(contract)]
        select = ", ".join("? AS _batch_id" if c == "_batch_id" else f'"{c}"' for c in cols)
        self.con.execute("BEGIN")
        try:
            self.con.register("incoming_batch", table)
            self.con.execute(f"INSERT INTO staging.{contract.name} ({', '.join(cols)}) "
                             f"SELECT {select} FROM incoming_batch", [batch_id])
            self.con.unregister("incoming_batch")
            self.con.execute("INSERT INTO ops.batches VALUES (?,?,?,?,?,?,?,?)",
                             [batch_id, contract.name, file_id, sha, received, _now(), table.num_rows,
                              self.key.key_id])
            if result_rows:
                self.con.executemany(insert_results, result_rows)
            self._supersede(contract, name, file_id)
            warn = outcome.reason() if outcome.failed_warning else None
            self._ledger_update(file_id, status="accepted", batch_id=batch_id, row_count=table.num_rows,
                                reason=warn)
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        path.unlink()  # the archive copy and the committed ledger row are durable by now
        return FileOutcome(name, contract.extract, "accepted", batch_id, table.num_rows,
                           warnings=len(outcome.failed_warning))

    def _supersede(self, contract: Contract, name: str, file_id: str) -> None:
        """A full-history delivery replaces every earlier one; an incremental re-send of the
        same file name (same period) replaces that file. Earlier rows stay in staging."""
        same = "" if contract.history == "full" else "AND file_name = ?"
        params = [contract.agency, contract.extract, file_id] + ([] if contract.history == "full" else [name])
        self.con.execute(
            f"UPDATE ops.file_ledger SET status = 'superseded', reason = 'superseded by {file_id}', "
            f"updated_at = now() WHERE agency = ? AND extract = ? AND status = 'accepted' "
            f"AND file_id <> ? {same}", params)


def pending_files(inbox: Path) -> list[Path]:
    """Complete files waiting in an inbox, oldest first."""
    if not inbox.is_dir():
        return []
    entries = [Path(e.path) for e in os.scandir(inbox) if not is_in_progress(e.name)]
    return sorted(entries, key=lambda p: (p.lstat().st_mtime, p.name))


def ingest_agency(settings: Settings, agency: str, key: MasterKey) -> list[dict]:
    """Process every complete file in one agency's inbox; see the module docstring."""
    settings.ensure_dirs()
    settings.inbox(agency).mkdir(parents=True, exist_ok=True)
    outcomes = []
    with connect(settings.warehouse_path) as con:
        intake = Intake(settings, key, con)
        for path in pending_files(settings.inbox(agency)):
            if not path.is_symlink() and path.is_file() and not is_stable(path):
                outcomes.append(FileOutcome(path.name, None, "waiting", reason="file is still growing"))
                continue
            outcome = intake.take(agency, path)
            log.info("%s/%s: %s", agency, outcome.file, outcome.status)
            outcomes.append(outcome)
    return [o.as_dict() for o in outcomes]

