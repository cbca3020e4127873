"""Pull an extract incrementally from an agency database, into the agency inbox.

A ``kind: sql`` source names a table, view or SELECT in an agency system and a
high-water-mark column (a timestamp or an integer that grows whenever a row is
added or changed). Each pull reads the rows above the stored mark, ordered by
(mark, key), and writes them as CSV files in the extract's contract format into
the agency inbox, where the ordinary intake takes them.

Why resuming cannot lose or repeat rows:

* A file always holds whole mark values: a batch that reaches ``batch_size``
  rows is only closed where the mark value changes, so rows sharing the value
  at a batch boundary are never split across files, and the next pull can
  safely ask for ``mark > stored``.
* The stored mark moves only after the file holding those rows is fsynced and
  renamed into the inbox; a failure before that (connection dropped, process
  killed) leaves the mark where it was and the next pull reads the same rows
  again.
* Files are named after the range they hold (``jail_bookings_<from>_<to>.csv``)
  and rows are ordered by (mark, key), so a pull repeated after a crash between
  the rename and the state update writes a byte-identical file, which the
  intake's ledger records as a ``duplicate`` instead of loading it twice.

Rows are streamed with a server-side cursor (``yield_per``) and written as they
arrive, so memory stays bounded whatever the table size.

A contract with ``history: full`` (the file is the whole truth; rows it lacks
are deleted) cannot take increments: such a source declares no mark, and each
pull writes the whole table, ordered by key, as one file. An unchanged table
gives byte-identical files, which the intake records as duplicates.

The one thing this cannot see is a row committed later with a mark value not
above the stored one (e.g. a timestamp taken at insert time by a transaction
that commits after a later one). The mark column must only grow in commit
order; where it does not, declare a ``query`` that leaves the newest rows for
the next pull in the agency's own SQL, e.g.
``WHERE updated_at < now() - interval '10 minutes'``.

Errors never carry a row value or the connection URL: the messages name the
source, the failure class and how far the pull got.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from leadhub.core.contracts import Column, Contract, load_contracts
from connectors.inbox_files import SAFE_NAME
from connectors.sources import (MARK_TYPES, PullError, PullResult, Source, SqlDeclaration, deliver,
                                load_state, name_part, open_part, save_state)
from leadhub.core.settings import Settings

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


@dataclass(frozen=True)
class SqlSource:
    name: str
    agency: str
    contract: Contract
    url_env: str
    table: str | None
    query: str | None
    columns: dict[str, str]          # contract column -> source column
    mark_column: str | None          # None: a full-history extract, pulled whole each time
    mark_type: str | None
    key: tuple[str, ...]             # source columns breaking ties within one mark value
    batch_size: int

    @classmethod
    def from_source(cls, source: Source) -> "SqlSource":
        o: SqlDeclaration = source.declaration
        where = source.where
        contract = load_contracts().get(f"{source.agency}_{o.extract}")
        if contract is None:
            raise PullError(f"{where}: no contract {source.agency}/{o.extract}")
        if contract.format.type not in ("csv", "tsv"):
            raise PullError(f"{where}: contract format {contract.format.type} cannot be written by a pull")
        if not o.url_env:
            raise PullError(f"{where}: url_env must name the environment variable holding the "
                            "SQLAlchemy URL (never put the URL or a password in this file)")
        if bool(o.table) == bool(o.query):
            raise PullError(f"{where}: give exactly one of table (a table or view) or query (a SELECT)")
        table = o.table
        if table and not all(_NAME.match(p) for p in table.split(".")):
            raise PullError(f"{where}: table must be a plain name or schema.name")
        mapping = dict(o.columns or {})
        extra = sorted(set(mapping) - set(contract.column_names))
        if extra:
            raise PullError(f"{where}: columns maps names the contract lacks: {', '.join(extra)}")
        columns = {c: mapping.get(c, c) for c in contract.column_names}
        mark = o.high_water_mark
        mark_column, mark_type = (mark.column, mark.type) if mark else (None, None)
        if contract.history == "full":
            if mark:
                raise PullError(f"{where}: {contract.name} is a full-history extract (each file replaces the "
                                "last), so it is pulled whole each time; remove high_water_mark")
        elif not mark_column:
            raise PullError(f"{where}: high_water_mark needs a column and a type "
                            f"({' or '.join(MARK_TYPES)})")
        identifier_sources = {columns[c.name] for c in contract.identifier_columns}
        if mark_column and mark_column in identifier_sources:
            # The mark is written into file names and the state file: it must never be personal data.
            raise PullError(f"{where}: the high-water-mark column may not be a personal identifier")
        key = tuple(o.key or [columns[k] for k in contract.primary_key])
        batch_size = o.batch_size
        if batch_size < 1:
            raise PullError(f"{where}: batch_size must be at least 1")
        for name in ([mark_column] if mark_column else []) + [*key, *columns.values()]:
            if not _NAME.match(name):
                raise PullError(f"{where}: column name {name!r} is not a plain SQL name")
        file_name_for(contract, "a", "b", where)  # the pattern must be one we can fill in
        return cls(source.name, source.agency, contract, o.url_env, table,
                   o.query.strip().rstrip(";") if o.query else None,
                   columns, mark_column, mark_type, key, batch_size)


def file_name_for(contract: Contract, mark_from: str, mark_to: str, where: str = "") -> str:
    """The inbox file name for a range: the contract's pattern with its one '*' filled in."""
    pattern = contract.file_pattern
    if pattern.count("*") != 1 or any(ch in pattern for ch in "?[]"):
        raise PullError(f"{where or contract.name}: file pattern {pattern} needs exactly one '*' "
                        "and no other wildcard to name pulled files")
    name = pattern.replace("*", f"{name_part(mark_from)}_{name_part(mark_to)}")
    if not (SAFE_NAME.fullmatch(name) and contract.matches(name)):
        raise PullError(f"{where or contract.name}: cannot make a safe file name from {pattern}")
    return name


# --- marks -------------------------------------------------------------------

def _mark_to_state(value) -> str | int:
    return value if isinstance(value, int) else value.isoformat()


def _mark_from_state(value, mark_type: str):
    if value is None:
        return None
    return int(value) if mark_type == "integer" else datetime.fromisoformat(value)


def _mark_label(value) -> str:
    """How a mark appears in a file name: sortable, no ':' or spaces."""
    if value is None:
        return "start"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        return value.strftime("%Y%m%dT%H%M%S%f")
    return str(value)


def _check_mark(value, mark_type: str, where: str):
    ok = (isinstance(value, int) and not isinstance(value, bool)) if mark_type == "integer" \
        else isinstance(value, datetime)
    if not ok:
        raise PullError(f"{where}: the high-water-mark column returned a {type(value).__name__}, "
                        f"not a {mark_type}")


# --- formatting -----------------------------------------------------------------

def _formatter(col: Column):
    """Source value -> text the contract's reader parses back to the same value."""
    if col.type in ("date", "timestamp"):
        fmt = col.formats[0]
        return lambda v: "" if v is None else v.strftime(fmt) if isinstance(v, (date, datetime)) else str(v)
    if col.type == "decimal":
        return lambda v: "" if v is None else format(v, "f") if isinstance(v, Decimal) else str(v)
    return lambda v: "" if v is None else str(v)


class _Batch:
    """One inbox file being written: a part file, its CSV writer and the range it holds."""

    def __init__(self, part: Path, contract: Contract):
        fmt = contract.format
        self.part = part
        self.raw = open_part(part)
        self.text = io.TextIOWrapper(self.raw, encoding=fmt.encoding, errors="strict", newline="")
        self.writer = csv.writer(self.text, delimiter=fmt.delimiter, quotechar=fmt.quotechar,
                                 lineterminator="\n")
        if fmt.header:
            self.writer.writerow(contract.column_names)
        self.rows = 0
        self.last_mark = None

    def close(self) -> None:
        """Flush and fsync: the bytes are on disk before the rename makes them visible."""
        self.text.flush()
        os.fsync(self.raw.fileno())
        self.text.close()

    def discard(self) -> None:
        if not self.text.closed:
            self.text.close()
        self.part.unlink(missing_ok=True)


def _select(src: SqlSource, quote, first_pull: bool) -> str:
    """The streaming query: rows above the mark (all rows with a mark on a first pull), in (mark, key)
    order; for a full-history extract, every row in key order."""
    if src.table:
        origin = ".".join(quote(p) for p in src.table.split("."))
    else:
        origin = f"({src.query}) AS leadhub_source"
    if src.mark_column is None:
        return f"SELECT * FROM {origin} ORDER BY {', '.join(quote(c) for c in src.key)}"
    mark = quote(src.mark_column)
    where = f"{mark} IS NOT NULL" if first_pull else f"{mark} > :mark"
    order = ", ".join(quote(c) for c in (src.mark_column, *src.key))
    return f"SELECT * FROM {origin} WHERE {where} ORDER BY {order}"


def pull_sql(settings: Settings, source: Source) -> PullResult:
    """Pull the rows above the stored mark into inbox files; see the module docstring."""
    src = SqlSource.from_source(source)
    where = f"source {src.name}"
    url = os.environ.get(src.url_env)
    if not url:
        raise PullError(f"{where}: environment variable {src.url_env} (the database URL) is not set")
    try:
        # hide_parameters: SQLAlchemy errors then never echo bound values into messages or logs.
        engine = create_engine(url, poolclass=NullPool, hide_parameters=True)
    except (ArgumentError, ValueError, ImportError) as e:
        raise PullError(f"{where}: the URL in {src.url_env} is not usable ({type(e).__name__})") from None

    state = load_state(settings, src.name)
    if state.get("mark_type", src.mark_type) != src.mark_type:
        raise PullError(f"{where}: the stored mark is a {state['mark_type']} but the source now declares "
                        f"{src.mark_type}; remove {src.name}.json from the state folder to start over")
    snapshot = src.mark_column is None
    start = None if snapshot else _mark_from_state(state.get("mark"), src.mark_type)
    inbox = settings.inbox(src.agency)
    inbox.mkdir(parents=True, exist_ok=True, mode=0o700)
    part = inbox / f".{src.name}.pull.part"   # hidden and '.part': the intake never takes it
    result = PullResult(src.name, "sql", src.agency, rows=0,
                        mark=_mark_label(start) if start is not None else None)
    mark = start
    batch: _Batch | None = None
    phase = "connecting"

    def finish(b: _Batch) -> None:
        """Deliver one complete batch, then (and only then) move the mark past it."""
        nonlocal mark
        b.close()
        if snapshot:
            name = file_name_for(src.contract, "snapshot", f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}", where)
            deliver(b.part, inbox / name)
            save_state(settings, src.name, {"kind": "sql", "mode": "snapshot", "last_file": name,
                                            "rows": b.rows})
        else:
            name = file_name_for(src.contract, _mark_label(mark), _mark_label(b.last_mark), where)
            deliver(b.part, inbox / name)
            save_state(settings, src.name, {"kind": "sql", "mark": _mark_to_state(b.last_mark),
                                            "mark_type": src.mark_type, "last_file": name})
            mark = b.last_mark
            result.mark = _mark_label(mark)
        result.files.append(name)
        result.rows += b.rows
        log.info("%s: delivered %s (%d rows)", where, name, b.rows)

    try:
        with engine.connect() as con:
            phase = "reading"
            quote = engine.dialect.identifier_preparer.quote
            sql = _select(src, quote, first_pull=start is None)
            params = {"mark": start} if start is not None else {}
            rows = con.execution_options(yield_per=src.batch_size).execute(text(sql), params)
            names = list(rows.keys())
            missing = sorted({*src.columns.values(), *src.key, *([src.mark_column] if src.mark_column else [])}
                             - set(names))
            if missing:
                raise PullError(f"{where}: the source has no column(s) {', '.join(missing)}")
            positions = [names.index(src.columns[c]) for c in src.contract.column_names]
            formats = [_formatter(c) for c in src.contract.columns]
            at_mark = None if snapshot else names.index(src.mark_column)
            previous = None
            for row in rows:
                value = None
                if not snapshot:   # a full-history extract is one file, never split
                    value = row[at_mark]
                    _check_mark(value, src.mark_type, where)
                    if previous is not None and value < previous:
                        raise PullError(f"{where}: rows did not arrive ordered by the high-water mark")
                    # Close a full batch only where the mark value changes: whole values per file.
                    if batch is not None and batch.rows >= src.batch_size and value != previous:
                        finish(batch)
                        batch = None
                if batch is None:
                    batch = _Batch(part, src.contract)
                try:
                    batch.writer.writerow([fmt(row[i]) for fmt, i in zip(formats, positions)])
                except UnicodeEncodeError:
                    raise PullError(f"{where}: a value after {result.rows + batch.rows} row(s) cannot be "
                                    f"written in {src.contract.format.encoding}") from None
                batch.rows += 1
                batch.last_mark = previous = value
            if batch is not None:
                finish(batch)
                batch = None
    except SQLAlchemyError as e:
        orig = getattr(e, "orig", None) or e
        code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
        detail = type(orig).__name__ + (f" [SQLSTATE {code}]" if code else "")
        if phase == "connecting":
            # Connection failures describe host, port and user, never row data; keep the first line.
            first = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
            detail += f": {first[:200]}" if first else ""
        raise PullError(f"{where}: database error while {phase} ({detail}); {result.rows} row(s) "
                        f"delivered in this run, mark now {result.mark or '(none yet)'}") from None
    except OSError as e:
        raise PullError(f"{where}: cannot write into the inbox or the state folder ({e.strerror}); "
                        f"mark now {result.mark or '(none yet)'}") from None
    finally:
        if batch is not None:
            batch.discard()
        engine.dispose()
    return result
