"""Secure drop folders: take complete files from an agency inbox, safely.

For each file, in this order, so that nothing is ever lost or half-loaded:
  1. refuse what is unsafe to open (symlinks, non-regular files, odd names,
     empty or oversized files) — moved to quarantine, recorded;
  2. hash it; an identical re-send is recorded as a duplicate, not loaded;
  3. archive it encrypted and record it in the ledger (both durable);
  4. parse by its contract, pseudonymize, validate with Great Expectations
     (a plain file's reading already starts beside step 3, a few chunks ahead);
  5. load staging rows, the batch, validation results and the ledger status
     in ONE warehouse transaction — unless the volume guard holds it: a
     full-history delivery or same-name correction that would remove more
     than the contract's ``max_removed_share`` of the current rows is
     recorded 'held' and loads only when a steward releases it;
  6. only then remove the plaintext from the inbox (or move it to quarantine).
A crash between steps leaves the file in the inbox; the next run resumes. Any
failure of one file, foreseen or not, ends in that file's quarantine and the
next file is taken. File names reach every output escaped (``printable``).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import queue
import re
import shutil
import stat
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Protocol

import duckdb
import pyarrow as pa

from connectors import dropcrypt
from leadhub.core.agreements import AgreementError, agreement_for
from leadhub.core.archive import decrypt_to, encrypt_file
from leadhub.core.clock import CLOCK, since
from leadhub.core.contracts import Contract, ContractError, contract_for_file
from connectors.inbox_files import (
    SAFE_NAME, STABLE_SECONDS, check_unchanged, file_sha256, is_stable, move_aside, open_checked, pending_files,
    second_descriptor)
from leadhub.core.readers import CHUNK_ROWS, read_chunks, reopen
from leadhub.core.errors import LeadHubError, RejectedFile, printable
from leadhub.core.files import atomic_write_text, make_private_dir, open_private, transaction
from leadhub.core.keys import MasterKey
from leadhub.core.memory import arrow_on_system_allocator
from leadhub.core.sealed import drop_sealed, redact_archived
from leadhub.core.settings import Settings
from leadhub.core.warehouse import connect, record_validation_results, staging_columns, staging_key, utcnow

log = logging.getLogger(__name__)

# DuckDB's memory during intake (MB); beyond it, a large uncommitted load spills to temporary
# files, so a 2 GB delivery needs no more memory than a small one. Overridable for big machines.
INTAKE_MEMORY_LIMIT = f"{int(os.environ.get('LEADHUB_INTAKE_MEMORY_MB', '256'))}MB"
# DuckDB threads during intake. Its big statement, the INSERT, reads one Arrow stream, which
# one thread does; more threads only added CPU (1M staged rows: 4.2 CPU-s with two threads,
# 2.3 with one), taken from the validation process and the reader on a small machine.
INTAKE_THREADS = 1
# Staged chunks waiting for DuckDB's INSERT while the reader thread prepares the next ones.
LOAD_BACKLOG = 2
# Temporary files of the hub's own naming in the archive and quarantine folders
# ("<file_id>__<name>.enc.tmp", "<file_id>__<name>.tmp"): a run killed while writing one
# leaves it behind, and the next run removes it. Agency files never have this shape.
HUB_TEMP = re.compile(r"\d{8}T\d{12}-(?:[0-9a-f]{12}|unread)__.+\.tmp")
# Failures of the hub itself rather than of one file: intake stops (the file stays in the
# inbox for the next run) instead of quarantining every file for a full disk.
HUB_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)
ARROW_TYPES = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "INTEGER": pa.int32(),
               "DATE": pa.date32(), "TIMESTAMP": pa.timestamp("us"), "DOUBLE": pa.float64()}
# The staged type of the text columns the pseudonymizer derives (see _arrow_schema).
DERIVED_TEXT = pa.dictionary(pa.int32(), pa.string())


@dataclass
class FileOutcome:
    """What happened to one file: safe for logs and XComs (no identifiers)."""
    file: str
    extract: str | None
    status: str           # accepted | duplicate | quarantined | held | waiting
    batch_id: str | None = None
    rows: int | None = None
    reason: str | None = None
    warnings: int = 0
    file_id: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _arrow_schema(contract: Contract) -> pa.Schema:
    """Staging columns as Arrow fields, without ``_batch_id`` (added by the INSERT).

    The text columns the pseudonymizer derives (tokens, encodings, key id) are dictionary
    arrays: one value per distinct person of a chunk, each row an index. Staged as plain
    strings they were about seven times the delivered file's bytes, copied once to build
    them and read once more by DuckDB's INSERT; DuckDB stores the same values either way.
    """
    plain = {c.name for c in contract.plain_columns}
    return pa.schema([pa.field(name, DERIVED_TEXT if sql_type == "VARCHAR" and name not in plain
                               else ARROW_TYPES[sql_type])
                      for name, sql_type in staging_columns(contract) if name != "_batch_id"])


def _to_arrow(contract: Contract, rows: list[int], cols: dict) -> pa.Table:
    """Staging columns (Arrow arrays or lists) of one chunk as a table of the staging schema."""
    schema = _arrow_schema(contract)
    arrays = []
    for f in schema:
        values = rows if f.name == "_row_number" else cols[f.name]
        if not isinstance(values, pa.Array):
            values = pa.array(values, type=f.type)
        elif f.type == DERIVED_TEXT and values.type != DERIVED_TEXT:
            values = values.cast(pa.string()).dictionary_encode()
        arrays.append(values.cast(f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


class FileValidator(Protocol):
    """Validation of one file as its chunks stream in (``expectations.file_check.FileCheck``):
    ``add`` takes each chunk and returns while it is validated elsewhere (waiting only when
    validation is behind); ``outcome`` gives the file's verdict once every row is staged."""

    rows: int                  # rows seen so far
    max_removed_share: float   # the volume guard's limit for this extract

    def add(self, table: pa.Table) -> None: ...

    def outcome(self, con: duckdb.DuckDBPyConnection, batch_id: str): ...


@dataclass(frozen=True)
class IntakeStages:
    """The later stages intake runs on each chunk, handed over by the pipeline (intake imports
    none of them): ``pseudonymize(contract, raw columns) -> staging columns`` and
    ``validator(contract, now)``, a fresh ``FileValidator`` per file."""

    pseudonymize: Callable[[Contract, dict], dict]
    validator: Callable[[Contract, datetime], FileValidator]


@dataclass
class _Delivery:
    """One file on its way into the warehouse: what each step of ``Intake._load`` reads.

    ``source`` is what to read: the descriptor of the delivered ``path`` opened once by
    ``take`` (never the name again), or the decrypted copy of an .lhx delivery; ``name`` is
    the (printable) name used in reasons; ``content_sha`` the hash of the decrypted content,
    stored in ops.batches so a later plain re-send is recognised; ``opened`` the fstat of
    the descriptor when it was hashed: a file written to since is refused before anything
    commits.
    """

    agency: str
    path: Path
    contract: Contract
    file_id: str
    received: datetime
    sha: str
    source: Path | int
    name: str
    content_sha: str | None = None
    opened: os.stat_result | None = None
    rows: int = 0
    sealed: int = 0            # rows a sealing order had sealed, dropped before checks

    @property
    def batch_id(self) -> str:
        return f"b{self.file_id}"


def _refusal(err: RejectedFile | str) -> dict:
    """Ledger fields of a quarantine: the reason text and, for a broken rule, the rule typed."""
    if isinstance(err, RejectedFile):
        return {"reason": str(err), "rule": err.rule, "rule_detail": err.detail or None}
    return {"reason": err}


class _StagedChunks:
    """One file's chunks, read, pseudonymized and handed to ``check`` on a thread of their own,
    then queued (at most ``LOAD_BACKLOG``) for the INSERT that ``batches`` feeds.

    It reads ``d.source``, or ``own_source``: a descriptor opened for this reading alone,
    which ``stop`` closes. ``stop`` ends the reading (at the next chunk) and waits for the thread.
    """

    def __init__(self, intake: Intake, d: _Delivery, check: FileValidator, own_source: int | None = None):
        from tqdm import tqdm

        self.d, self.check, self.own_source = d, check, own_source
        self.source = d.source if own_source is None else own_source
        # Seconds per stage (leadhub.core.clock) from here on, logged once per file: the
        # stages run interleaved, chunk by chunk.
        self.clock_started = CLOCK.snapshot()
        self.chunk_rows, self.pseudonymize = intake.chunk_rows, intake.stages.pseudonymize
        # Redrawn on every chunk (tens of thousands of rows): a small file shows its rows too.
        self.bar = tqdm(desc=d.name[:40], unit="rows", unit_scale=True, leave=False, mininterval=0,
                        disable=not intake.progress)
        self.failure: list[BaseException] = []  # what stopped the reading, re-raised by ``batches``
        self.waited = 0.0  # seconds the INSERT waited for chunks; the rest is DuckDB loading them
        self._ready: queue.Queue = queue.Queue(maxsize=LOAD_BACKLOG)  # staged tables, then None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._read, name="intake-reader", daemon=True)
        self._thread.start()

    def _chunks(self):
        d = self.d
        try:
            for numbers, values in read_chunks(self.source, d.contract, display_name=d.name,
                                               chunk_rows=self.chunk_rows, arrow=True):
                staged = self.pseudonymize(d.contract, values)
                del values  # the only copy of this chunk's raw identifiers
                with CLOCK.timed("load"):
                    table = _to_arrow(d.contract, numbers, staged)
                self.check.add(table)
                self.bar.update(table.num_rows)
                yield table
            if d.opened is not None:  # the rows parsed are the bytes hashed and archived
                check_unchanged(d.source, d.name, d.opened)
        except BaseException as e:
            self.failure.append(e)
            raise

    def _put(self, item) -> bool:
        while not self._stopped.is_set():
            try:
                self._ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        try:
            for table in self._chunks():
                if not self._put(table):
                    return
        except BaseException:
            pass  # in ``failure``: the INSERT re-raises it
        self._put(None)

    def batches(self):
        """Record batches of the staged chunks as they come; the reading's failure, if any, raised."""
        while True:
            started = time.perf_counter()
            table = self._ready.get()
            self.waited += time.perf_counter() - started
            if table is None:
                if self.failure:
                    raise self.failure[0]
                return
            yield from table.to_batches()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        self.bar.close()
        if self.own_source is not None:
            os.close(self.own_source)
            self.own_source = None


class Intake:
    """One intake run over one agency inbox, holding the warehouse writer."""

    # Rows parsed, pseudonymized, validated and inserted at a time: memory is bounded by this,
    # not by the file size.
    chunk_rows = CHUNK_ROWS

    def __init__(self, settings: Settings, key: MasterKey, con: duckdb.DuckDBPyConnection,
                 stages: IntakeStages, progress: bool = False):
        self.settings, self.key, self.con, self.stages = settings, key, con, stages
        arrow_on_system_allocator()
        self.progress = progress  # a tqdm bar of rows per file (on a terminal)
        self._drop_key = None
        self._file_id: str | None = None  # the ledger row of the file being taken, once it exists
        # Steward overrides for one replayed delivery (release_held, reload_archived).
        self.volume_guard = True
        self.skip_duplicates = False
        self.note: str | None = None

    # --- ledger -----------------------------------------------------------
    def _ledger_insert(self, file_id: str, received: datetime, agency: str, extract: str | None,
                       name: str, size: int, sha: str, status: str, reason: RejectedFile | str | None = None,
                       archive: str | None = None) -> None:
        why = _refusal(reason) if reason is not None else {}
        self.con.execute(
            "INSERT INTO ops.file_ledger (file_id, received_at, agency, extract, file_name, size_bytes, "
            "sha256, status, reason, archive_path, updated_at, rule, rule_detail) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [file_id, received, agency, extract, printable(name), size, sha, status, why.get("reason"), archive,
             utcnow(), why.get("rule"), why.get("rule_detail")])
        self._file_id = file_id

    def _ledger_update(self, file_id: str, **fields) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.con.execute(f"UPDATE ops.file_ledger SET {sets}, updated_at = ? WHERE file_id = ?",
                         [*fields.values(), utcnow(), file_id])

    # --- moving files -----------------------------------------------------
    def _quarantine(self, agency: str, path: Path, file_id: str, err: RejectedFile | str) -> None:
        """Move the file aside with a reason file. Callers record the ledger row first."""
        reason = str(err)
        qdir = make_private_dir(self.settings.quarantine_dir / agency)
        # The delivered name is kept as evidence (escaped), unless it is so long that the
        # prefixed name would not fit in a directory entry (255 bytes): then it gets a plain one.
        shown = printable(path.name)
        stored = shown if len(shown) <= 200 else "overlong-name"
        target = qdir / f"{file_id}__{stored}"
        move_aside(path, target)
        # Only the steward reads quarantine: the file keeps no mode the clerk's umask gave it. Not
        # through a second name (a refused hard link), whose mode is someone else's, nor a link.
        st = target.lstat()
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
            os.chmod(target, 0o600)
        info = {"file": shown, "file_id": file_id, "reason": reason, "quarantined_at": utcnow().isoformat()}
        if isinstance(err, RejectedFile):
            info.update(rule=err.rule, row=err.row, detail=err.detail)
        atomic_write_text(qdir / f"{file_id}__{stored}.reason.json", json.dumps(info, indent=2) + "\n")
        log.warning("quarantined %s/%s: %s", agency, shown, reason)

    def _quarantine_recorded(self, agency: str, path: Path, file_id: str, logical: str, contract: Contract,
                             err: RejectedFile, **ledger) -> FileOutcome:
        """Quarantine a file whose ledger row exists already (status 'received')."""
        self._ledger_update(file_id, status="quarantined", **_refusal(err), **ledger)
        self._quarantine(agency, path, file_id, err)
        return FileOutcome(printable(logical), contract.extract, "quarantined", reason=str(err), file_id=file_id)

    def settled(self) -> bool:
        """Whether the file being taken has a committed outcome (accepted, duplicate, held).

        A failure after that point is not the delivery's: what failed is removing it from
        the inbox, and the next run records the leftover as a duplicate.
        """
        if self._file_id is None:
            return False
        try:
            self.con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # no transaction was open
        row = self.con.execute("SELECT status FROM ops.file_ledger WHERE file_id = ?", [self._file_id]).fetchone()
        return row is not None and row[0] in ("accepted", "duplicate", "held")

    def quarantine_unexpected(self, agency: str, path: Path, error: Exception) -> FileOutcome:
        """Quarantine a file whose intake failed in a way no rule foresaw (a bug, a library error).

        Only the exception's type is recorded: its message may quote a cell. The ledger
        row of the file (if taking it got that far) becomes 'quarantined'; otherwise one
        is written. The open transaction, if any, is rolled back first.
        """
        try:
            self.con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # no transaction was open
        err = RejectedFile(path.name, "intake_error",
                           f"unexpected {type(error).__name__} while taking the file; nothing of it "
                           "was loaded")
        file_id = self._file_id
        known = file_id and self.con.execute(
            "SELECT count(*) FROM ops.file_ledger WHERE file_id = ?", [file_id]).fetchone()[0]
        if known:
            self._ledger_update(file_id, status="quarantined", **_refusal(err))
        else:
            file_id = f"{utcnow():%Y%m%dT%H%M%S%f}-unread"
            size = path.lstat().st_size if os.path.lexists(path) else 0
            self._ledger_insert(file_id, utcnow(), agency, None, path.name, size, "", "quarantined", err)
        log.error("%s/%s: unexpected %s; quarantined", agency, printable(path.name), type(error).__name__)
        if os.path.lexists(path):
            self._quarantine(agency, path, file_id, err)
        return FileOutcome(printable(path.name), None, "quarantined", reason=str(err), file_id=file_id)

    # --- one file ---------------------------------------------------------
    def take(self, agency: str, path: Path) -> FileOutcome:
        # Every text output carries the name escaped (leadhub.core.errors.printable); the file
        # system calls use ``path`` itself.
        name = printable(path.name)
        self._file_id = None
        received = utcnow()
        st = path.lstat()
        pseudo_id = f"{received:%Y%m%dT%H%M%S%f}-unread"
        logical = name  # the name the contract and the ledger see (".lhx" removed below)

        def refuse(rule: str, detail: str, extract: str | None = None,
                   sha: str = "", size: int = st.st_size, file_id: str = pseudo_id) -> FileOutcome:
            err = RejectedFile(name, rule, detail)
            self._ledger_insert(file_id, received, agency, extract, logical, size, sha, "quarantined", err)
            self._quarantine(agency, path, file_id, err)
            return FileOutcome(name, extract, "quarantined", reason=str(err), file_id=file_id)

        if stat.S_ISLNK(st.st_mode):
            return refuse("symlink", "symbolic links are never followed")
        if not stat.S_ISREG(st.st_mode):
            return refuse("not_regular_file", "only regular files are accepted")
        if st.st_nlink > 1:
            # The hub's own deliveries (pulls, restores) link the file in, then drop their temporary
            # name: give that a moment before judging.
            time.sleep(STABLE_SECONDS)
            st = path.lstat()
        if st.st_nlink > 1:
            # Another name for the same bytes may sit outside the inbox, where someone can read
            # or change them while they are taken: only a file's sole name is accepted.
            return refuse("hard_link", f"the file has {st.st_nlink} hard links; send a plain copy")
        if not SAFE_NAME.fullmatch(name):
            return refuse("file_name", "name must be ASCII letters, digits, '.', '_' and '-', "
                          "starting with a letter or digit, at most 201 characters")
        if st.st_size == 0:
            return refuse("empty_file", "file is empty")
        if st.st_size > self.settings.max_file_bytes:
            return refuse("file_size", f"{st.st_size} bytes is over the limit of {self.settings.max_file_bytes}")

        # A file encrypted to the hub's key (see connectors.dropcrypt) is matched, recorded and
        # reported under its name without ".lhx"; the ledger keeps the hash of what arrived.
        encrypted = name.endswith(dropcrypt.SUFFIX)
        logical = name[:-len(dropcrypt.SUFFIX)] if encrypted else name
        contract = contract_for_file(agency, logical)
        try:
            fd, opened = open_checked(path, st)
        except RejectedFile as err:
            return refuse(err.rule, err.detail)
        ahead: _StagedChunks | None = None
        try:
            with CLOCK.timed("ledger"):
                sha, size = file_sha256(fd)
            file_id = f"{received:%Y%m%dT%H%M%S%f}-{sha[:12]}"
            if contract is None:
                return refuse("unknown_file_name", f"no {agency} contract matches this file name",
                              sha=sha, size=size, file_id=file_id)
            try:  # a delivery is taken only while the agency's data-sharing agreement is in force
                agreement_for(agency, received.date())
            except AgreementError as err:
                return refuse("agreement", str(err), contract.extract, sha, size, file_id)

            # An identical re-send: recorded, never loaded twice. Its bytes are already archived.
            dup = self._loaded_before(agency, sha)
            if dup:
                self._ledger_insert(file_id, received, agency, contract.extract, logical, size, sha, "duplicate",
                                    f"identical to {dup}")
                path.unlink()
                return FileOutcome(logical, contract.extract, "duplicate", reason=f"identical to {dup}",
                                   file_id=file_id)

            # A run that stopped after archiving this file left a 'received' row: resume it.
            resumed = self.con.execute(
                "SELECT file_id, received_at FROM ops.file_ledger WHERE sha256 = ? AND agency = ? "
                "AND file_name = ? AND status = 'received' LIMIT 1", [sha, agency, logical]).fetchone()
            if resumed:
                file_id, received = resumed
                self._file_id = file_id
            archive = self.settings.archive_dir / agency / f"{file_id}__{name}.enc"
            d = _Delivery(agency, path, contract, file_id, received, sha, source=fd, name=name, opened=opened)
            # A plain file is read, pseudonymized and validated while it is archived, from a
            # descriptor of its own; its rows reach the warehouse only in _load, after the
            # archive copy and the ledger row are durable.
            ahead = None if encrypted else self._read_ahead(d)
            with CLOCK.timed("ledger"):
                archived = encrypt_file(fd, archive, self.key)
            if archived != sha:
                # Written to since it was hashed: this archive copy is not the file the ledger names.
                archive.unlink(missing_ok=True)
                detail = "the file was written to while it was being taken"
                if resumed:
                    return self._quarantine_recorded(agency, path, file_id, logical, contract,
                                                     RejectedFile(name, "file_changed", detail), archive_path=None)
                return refuse("file_changed", detail, contract.extract, sha, size, file_id)
            if not resumed:
                self._ledger_insert(file_id, received, agency, contract.extract, logical, size, sha, "received",
                                    archive=str(archive.relative_to(self.settings.data_dir)))
            try:
                check_unchanged(fd, name, opened)  # the archive holds the hashed bytes; keep it either way
            except RejectedFile as err:
                return self._quarantine_recorded(agency, path, file_id, logical, contract, err)
            if encrypted:
                return self._take_encrypted(agency, path, fd, opened, logical, contract, file_id, received, sha)
            return self._load(d, ahead)
        finally:
            if ahead is not None:
                ahead.stop()  # nothing left to do once the file is loaded; a refusal ends its reading
            os.close(fd)

    def _loaded_before(self, agency: str, sha: str) -> str | None:
        """The file id of an accepted (or since superseded) file with these bytes, if any.

        Matches the hash of the delivered file and, for files that arrived
        encrypted, the hash of their decrypted content (kept in ops.batches), so
        the same extract is recognised whether it came encrypted or not.
        """
        if self.skip_duplicates:
            return None
        # A held delivery counts too: sending it again must not hold (and archive) it twice.
        hit = self.con.execute(
            "SELECT l.file_id FROM ops.file_ledger l LEFT JOIN ops.batches b ON b.batch_id = l.batch_id "
            "WHERE l.agency = ? AND l.status IN ('accepted', 'superseded', 'held') "
            "AND (l.sha256 = ? OR b.sha256 = ?) ORDER BY l.received_at LIMIT 1", [agency, sha, sha]).fetchone()
        return hit[0] if hit else None

    def _work_dir(self) -> Path:
        """Private (0700) scratch space on the data volume, never /tmp: a 2 GB plaintext must not
        land in a RAM-backed tmpfs or a directory other users can list."""
        work = make_private_dir(self.settings.data_dir / "work")
        return Path(tempfile.mkdtemp(prefix="drop-", dir=work))  # mkdtemp makes it 0700 too

    def _take_encrypted(self, agency: str, path: Path, fd: int, opened: os.stat_result, logical: str,
                        contract: Contract, file_id: str, received: datetime, sha: str) -> FileOutcome:
        """Decrypt an .lhx delivery into a private directory and load the plaintext from there.

        A file that fails authentication (or was encrypted to another key) is
        quarantined under rule 'decryption'; the plaintext copy is always removed.
        """
        workdir = self._work_dir()
        try:
            plain = workdir / logical
            try:
                if self._drop_key is None:
                    self._drop_key = dropcrypt.load_private_key(
                        dropcrypt.default_key_path(self.settings.key_file))
                with reopen(fd, "rb") as delivered:
                    dropcrypt.decrypt_from_agency(delivered, plain, self._drop_key)
                check_unchanged(fd, path.name, opened)
            except (dropcrypt.DropCryptError, RejectedFile) as e:
                err = e if isinstance(e, RejectedFile) else RejectedFile(path.name, "decryption", str(e))
                return self._quarantine_recorded(agency, path, file_id, logical, contract, err)
            content_sha, _ = file_sha256(plain)
            dup = self._loaded_before(agency, content_sha)
            if dup:
                self._ledger_update(file_id, status="duplicate", reason=f"identical to {dup}")
                path.unlink()
                return FileOutcome(logical, contract.extract, "duplicate", reason=f"identical to {dup}",
                                   file_id=file_id)
            return self._load(_Delivery(agency, path, contract, file_id, received, sha, source=plain,
                                        name=printable(logical), content_sha=content_sha))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _read_ahead(self, d: _Delivery) -> _StagedChunks | None:
        """Start reading ``d`` on a descriptor of its own, or None where the system has none to give."""
        own = second_descriptor(d.source)
        if own is None:
            return None
        try:
            return self._staged(d, own)
        except BaseException:
            os.close(own)
            raise

    def _staged(self, d: _Delivery, own_source: int | None = None) -> _StagedChunks:
        return _StagedChunks(self, d, self.stages.validator(d.contract, datetime.now()), own_source)

    def _load(self, d: _Delivery, staged: _StagedChunks | None = None) -> FileOutcome:
        """Parse, pseudonymize, validate and load one file chunk by chunk, all or nothing.

        Memory is bounded by ``chunk_rows`` whatever the file size: inside ONE
        warehouse transaction a single INSERT pulls the file as a stream of
        Arrow chunks, parsed, pseudonymized and validated (``IntakeStages``) at
        most ``LOAD_BACKLOG`` chunks ahead of it by ``staged`` (started by
        ``take`` while the file was archived, or here). Checks that span chunks
        (uniqueness, row count, history) then run over the rows just inserted.
        Then, in order: the volume guard may hold the delivery; a failed
        critical check quarantines it with its verdict; otherwise the batch,
        its validation results and the ledger status commit with the rows.

        Why one streaming INSERT rather than one INSERT per chunk: DuckDB keeps
        the uncommitted rows of many small INSERTs in an in-memory table that
        grows with the file, while one large INSERT writes full row groups to
        the database file as it goes (spilling past ``INTAKE_MEMORY_LIMIT``).
        """
        staged = staged or self._staged(d)
        check = staged.check
        self.con.execute("BEGIN")
        try:
            self._insert_streamed(d, staged)
            dropped = drop_sealed(self.settings, self.con, self.key, d.contract, d.batch_id)  # never loaded
            d.sealed = len(dropped.rows)
            outcome = check.outcome(self.con, d.batch_id)
            with CLOCK.timed("validate"):
                removal = self._removal(d.contract, d.name, d.batch_id) if self.volume_guard else None
        except RejectedFile as err:
            self.con.execute("ROLLBACK")
            self.con.unregister("incoming_file")  # only possible once the failed transaction is gone
            return self._quarantine_recorded(d.agency, d.path, d.file_id, d.name, d.contract, err)
        except BaseException:
            self.con.execute("ROLLBACK")
            self.con.unregister("incoming_file")
            raise
        d.rows = check.rows
        for stage, seconds in since(staged.clock_started).items():  # one line per stage; names and counts only
            if stage != "ledger":  # hashing and archiving came before, the commit is still to come
                log.info("%s/%s: %s %s rows in %.1f s", d.agency, d.name, stage, f"{d.rows:,}", seconds)
        limit = check.max_removed_share
        if removal and outcome.success and removal[1] > limit * removal[0]:
            return self._hold(d, *removal, limit)
        if not outcome.success:
            self.con.execute("ROLLBACK")  # the staging rows go; the verdict is recorded by _reject
            return self._reject(d, outcome)
        try:
            # The archived original loses what an order sealed too, before the commit.
            redact_archived(self.settings, self.con, self.key, d.contract, d.file_id, d.batch_id, d.source, dropped)
            with CLOCK.timed("ledger"):
                accepted = self._commit(d, outcome)
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        d.path.unlink()  # the archive copy and the committed ledger row are durable by now
        return accepted

    def _insert_streamed(self, d: _Delivery, staged: _StagedChunks) -> None:
        """One INSERT of the whole file into staging, fed chunk by chunk (inside the open
        transaction); a failure of the stream is re-raised as itself (it names file, row, rule).

        Three things run at once: ``staged``'s thread reads and pseudonymizes chunks and
        hands each to its validator, which validates them in the validation process; DuckDB,
        on this thread, inserts the chunks ready for it (at most ``LOAD_BACKLOG`` wait),
        outside the GIL. The INSERT ends with the last chunk; validation may still be at the
        last batches, which ``outcome`` waits for.
        """
        cols = [n for n, _ in staging_columns(d.contract)]
        select = ", ".join("? AS _batch_id" if c == "_batch_id" else f'"{c}"' for c in cols)
        insert_rows = (f"INSERT INTO staging.{d.contract.name} ({', '.join(cols)}) "
                       f"SELECT {select} FROM incoming_file")
        started = time.perf_counter()
        self.con.register("incoming_file", pa.RecordBatchReader.from_batches(_arrow_schema(d.contract),
                                                                             staged.batches()))
        try:
            self.con.execute(insert_rows, [d.batch_id])
        except Exception:
            if staged.failure:  # DuckDB wraps errors of the stream; the original names file, row and rule
                raise staged.failure[0] from None
            raise
        finally:
            staged.stop()
        CLOCK.add("load", time.perf_counter() - started - staged.waited)
        self.con.unregister("incoming_file")

    def _hold(self, d: _Delivery, current: int, removed: int, limit: float) -> FileOutcome:
        """The volume guard: nothing of the delivery loads until a steward releases it."""
        reason = (f"{d.name}: rule 'volume' held: current {current:,} rows, delivery {d.rows:,} rows, "
                  f"would remove {removed:,} = {removed / current:.1%} (limit {limit:.0%}); "
                  f"a steward releases it with 'leadhub release {d.file_id} --reason ...'")
        self.con.execute("ROLLBACK")
        with transaction(self.con):
            self._ledger_update(d.file_id, status="held", reason=reason, row_count=d.rows)
        log.warning("%s/%s: held: would remove %s of %s current rows", d.agency, d.name,
                    f"{removed:,}", f"{current:,}")
        d.path.unlink()  # the archive copy is the delivery now; release replays it from there
        return FileOutcome(d.name, d.contract.extract, "held", None, d.rows, reason, file_id=d.file_id)

    def _reject(self, d: _Delivery, outcome) -> FileOutcome:
        """A failed critical check (the staging rows are rolled back): the verdict is recorded
        and the file quarantined."""
        reason = f"{d.name}: {outcome.reason()}"
        with transaction(self.con):
            record_validation_results(self.con, d.batch_id, outcome.results, utcnow(), d.contract.name)
            self._ledger_update(d.file_id, status="quarantined", reason=reason, row_count=d.rows,
                                batch_id=d.batch_id)
        self._quarantine(d.agency, d.path, d.file_id, reason)
        return FileOutcome(d.name, d.contract.extract, "quarantined", d.batch_id, d.rows, reason,
                           file_id=d.file_id)

    def _commit(self, d: _Delivery, outcome) -> FileOutcome:
        """The batch, its validation results and the ledger status commit with the rows."""
        validated = utcnow()
        self.con.execute("INSERT INTO ops.batches VALUES (?,?,?,?,?,?,?,?)",
                         [d.batch_id, d.contract.name, d.file_id, d.content_sha or d.sha, d.received, utcnow(),
                          d.rows, self.key.key_id])
        record_validation_results(self.con, d.batch_id, outcome.results, validated, d.contract.name)
        self._supersede(d.contract, d.name, d.file_id)
        warn = outcome.reason() if outcome.failed_warning else None
        note = "; ".join(filter(None, [self.note, warn])) or None
        self._ledger_update(d.file_id, status="accepted", batch_id=d.batch_id, row_count=d.rows, reason=note,
                            sealed_dropped=d.sealed or None)
        self.con.execute("COMMIT")
        return FileOutcome(d.name, d.contract.extract, "accepted", d.batch_id, d.rows, note,
                           warnings=len(outcome.failed_warning), file_id=d.file_id)

    def _removal(self, contract: Contract, name: str, batch_id: str) -> tuple[int, int] | None:
        """(current rows this delivery replaces, how many of their keys it lacks), or None.

        Read inside the open transaction, with the delivery's rows in staging and not yet
        current. A full-history delivery replaces every current row; a same-name correction
        of an incremental file replaces the current rows of the file(s) it supersedes.
        """
        # Nothing current to replace (a first delivery, a new period's file): skip the count,
        # which reads every staging row of the extract, the delivery's own included.
        if contract.history == "full":
            earlier = self.con.execute("SELECT count(*) FROM ops.batches WHERE contract = ?", [contract.name])
        else:
            earlier = self.con.execute(
                "SELECT count(*) FROM ops.file_ledger WHERE agency = ? AND extract = ? AND status = 'accepted' "
                "AND file_name = ?", [contract.agency, contract.extract, name])
        if not earlier.fetchone()[0]:
            return None
        key = staging_key(contract)
        same = " AND ".join(f'n."{k}" IS NOT DISTINCT FROM c."{k}"' for k in key)
        missing = (f"NOT EXISTS (SELECT 1 FROM staging.{contract.name} n "
                   f"WHERE n._batch_id = ? AND {same})")
        params: list = [batch_id]
        scope = ""
        if contract.history != "full":
            scope = ("WHERE c._batch_id IN (SELECT batch_id FROM ops.file_ledger WHERE agency = ? "
                     "AND extract = ? AND status = 'accepted' AND file_name = ?)")
            params += [contract.agency, contract.extract, name]
        current, removed = self.con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE {missing}) FROM current.{contract.name} c {scope}",
            params).fetchone()
        return (current, removed) if current else None

    def _supersede(self, contract: Contract, name: str, file_id: str) -> None:
        """A full-history delivery replaces every earlier one; an incremental re-send of the
        same file name (same period) replaces that file. Earlier rows stay in staging."""
        same = "" if contract.history == "full" else "AND file_name = ?"
        params = [f"superseded by {file_id}", utcnow(), contract.agency, contract.extract, file_id]
        self.con.execute(
            "UPDATE ops.file_ledger SET status = 'superseded', reason = ?, updated_at = ? "
            f"WHERE agency = ? AND extract = ? AND status = 'accepted' AND file_id <> ? {same}",
            params + ([] if contract.history == "full" else [name]))


def _sweep_work_dir(settings: Settings) -> None:
    """Remove decrypted plaintext left behind by a run that was killed mid-file.

    Safe because intake holds the warehouse's single write connection: no
    other intake can be using the work directory at the same time.
    """
    work = settings.data_dir / "work"
    if work.is_dir():
        for leftover in work.glob("drop-*"):
            shutil.rmtree(leftover, ignore_errors=True)


def _sweep_temp_files(settings: Settings, agency: str) -> None:
    """Remove the hub's own temporary files (HUB_TEMP) that a killed run left in this agency's
    archive and quarantine folders. Safe for the same reason as ``_sweep_work_dir``."""
    for folder in (settings.archive_dir / agency, settings.quarantine_dir / agency):
        if folder.is_dir():
            for entry in os.scandir(folder):
                if HUB_TEMP.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
                    log.info("%s: removed %s, left by an interrupted run", agency, printable(entry.name))


def _hub_failure(error: Exception) -> bool:
    """True for a failure of the hub itself (key, configuration, warehouse, full or broken disk):
    intake stops rather than quarantining every file for it."""
    if isinstance(error, RejectedFile):
        return False
    return (isinstance(error, (LeadHubError, ContractError, MemoryError, duckdb.IOException,
                               duckdb.FatalException, duckdb.InterruptException))
            or (isinstance(error, OSError) and error.errno in HUB_ERRNOS))


def ingest_agency(settings: Settings, agency: str, key: MasterKey, stages: IntakeStages,
                  progress: bool = False) -> list[dict]:
    """Process every complete file in one agency's inbox; see the module docstring.

    One file's failure, whatever it is, ends in that file's quarantine and the next
    file is taken; only a failure of the hub itself (``_hub_failure``) stops the run.
    """
    settings.ensure_dirs()
    settings.inbox(agency).mkdir(parents=True, exist_ok=True)
    outcomes = []
    with connect(settings.warehouse_path) as con:
        # Bounded memory for large deliveries: DuckDB spills to disk past this (see Intake._load).
        con.execute(f"SET memory_limit = '{INTAKE_MEMORY_LIMIT}'")
        con.execute(f"SET threads = {INTAKE_THREADS}")
        _sweep_work_dir(settings)
        _sweep_temp_files(settings, agency)
        intake = Intake(settings, key, con, stages, progress=progress)
        for path in pending_files(settings.inbox(agency)):
            try:
                if not path.is_symlink() and path.is_file() and not is_stable(path):
                    outcomes.append(FileOutcome(printable(path.name), None, "waiting",
                                                reason="file is still growing"))
                    continue
                outcome = intake.take(agency, path)
            except Exception as e:
                if isinstance(e, FileNotFoundError) and not os.path.lexists(path):
                    continue  # removed by its sender before it was taken: nothing arrived, nothing to record
                if _hub_failure(e) or intake.settled():
                    raise
                try:
                    outcome = intake.quarantine_unexpected(agency, path, e)
                except Exception as again:  # e.g. the file cannot be moved: left for the next run
                    if _hub_failure(again):
                        raise
                    log.error("%s/%s: could not be quarantined (%s); left in the inbox", agency,
                              printable(path.name), type(again).__name__)
                    continue
            log.info("%s/%s: %s", agency, outcome.file, outcome.status)
            outcomes.append(outcome)
    return [o.as_dict() for o in outcomes]


# --- steward actions on archived deliveries --------------------------------------------------

def _replay(intake: Intake, entry: tuple, file_id: str, received: datetime) -> FileOutcome:
    """Take an archived delivery again from its archive, under ledger row ``file_id``.

    ``entry`` is (file_id, agency, file_name, sha256, archive_path) of the archived
    ledger row. When ``file_id`` is a new id, the delivery gets its own archive copy and
    ledger row first (as intake does for a new file). The plaintext lives only in a
    private work folder.
    """
    old_id, agency, logical, sha, archive_path = entry
    settings = intake.settings
    archive = settings.data_dir / archive_path
    if not archive.is_file():
        raise LeadHubError(f"ledger entry {old_id}: archive file {archive_path} is gone")
    delivered = Path(archive_path).name[len(old_id) + 2:-len(".enc")]  # "<file_id>__<name>.enc"
    contract = contract_for_file(agency, logical)
    if contract is None:
        raise LeadHubError(f"ledger entry {old_id}: no {agency} contract matches {logical} any more")
    workdir = intake._work_dir()
    try:
        copy = workdir / delivered
        with os.fdopen(open_private(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "wb") as out:
            decrypt_to(archive, out, intake.key)
        if file_sha256(copy)[0] != sha:
            raise LeadHubError(f"ledger entry {old_id}: the archive does not hold the bytes the ledger names")
        if file_id != old_id:
            new_archive = settings.archive_dir / agency / f"{file_id}__{delivered}.enc"
            encrypt_file(copy, new_archive, intake.key)
            intake._ledger_insert(file_id, received, agency, contract.extract, logical, copy.stat().st_size,
                                  sha, "received", archive=str(new_archive.relative_to(settings.data_dir)))
        fd = os.open(copy, os.O_RDONLY)
        try:
            opened = os.fstat(fd)
            if delivered.endswith(dropcrypt.SUFFIX):
                return intake._take_encrypted(agency, copy, fd, opened, logical, contract, file_id, received, sha)
            return intake._load(_Delivery(agency, copy, contract, file_id, received, sha, source=fd,
                                          name=printable(logical), opened=opened))
        finally:
            os.close(fd)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _archived_entry(con, file_id: str) -> tuple[tuple, str]:
    row = con.execute("SELECT file_id, agency, file_name, sha256, archive_path, status FROM ops.file_ledger "
                      "WHERE file_id = ?", [file_id]).fetchone()
    if row is None:
        raise LeadHubError(f"no ledger entry with file_id {file_id}")
    if not row[4]:
        raise LeadHubError(f"ledger entry {file_id} has no archived original ({row[5]})")
    return row[:5], row[5]


def release_held(settings: Settings, key: MasterKey, stages: IntakeStages, file_id: str, note: str) -> dict:
    """Load a delivery the volume guard held, with every other check as usual.

    The caller audits the release first (``leadhub.pipeline.release``). ``note``
    goes into the ledger reason of the loaded file.
    """
    with connect(settings.warehouse_path) as con:
        entry, status = _archived_entry(con, file_id)
        if status != "held":
            raise LeadHubError(f"ledger entry {file_id} is {status}, not held; only held deliveries are released")
        received, extract, name = con.execute("SELECT received_at, extract, file_name FROM ops.file_ledger "
                                              "WHERE file_id = ?", [file_id]).fetchone()
        contract = contract_for_file(entry[1], name)
        # Loading it now would make it current over a later delivery of the same rows.
        later = con.execute(
            "SELECT file_id FROM ops.file_ledger WHERE agency = ? AND extract = ? AND status = 'accepted' "
            "AND received_at > ? AND (? OR file_name = ?) ORDER BY received_at DESC LIMIT 1",
            [entry[1], extract, received, contract is not None and contract.history == "full", name]).fetchone()
        if later:
            raise LeadHubError(f"ledger entry {file_id} was held before {later[0]}, which is current now; "
                               "releasing it would replace that later delivery. Ask the agency to send it again "
                               "if it is still the right one")
        intake = Intake(settings, key, con, stages)
        intake.volume_guard, intake.skip_duplicates, intake.note = False, True, note
        return _replay(intake, entry, file_id, received).as_dict()


def reload_archived(settings: Settings, key: MasterKey, stages: IntakeStages, file_id: str, note: str) -> dict:
    """Make an earlier, superseded delivery current again by loading its archived original
    as a new ledger entry (its bytes were loaded before, so intake alone would call it a
    duplicate). Every check runs as usual, the volume guard included."""
    with connect(settings.warehouse_path) as con:
        entry, status = _archived_entry(con, file_id)
        if status != "superseded":
            raise LeadHubError(f"ledger entry {file_id} is {status}; --force re-loads a superseded delivery "
                               "(a held one is released with 'leadhub release', others re-process without --force)")
        intake = Intake(settings, key, con, stages)
        intake.skip_duplicates, intake.note = True, note
        received = utcnow()
        new_id = f"{received:%Y%m%dT%H%M%S%f}-{entry[3][:12]}"
        return _replay(intake, entry, new_id, received).as_dict()

