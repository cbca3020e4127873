"""The DuckDB warehouse: one writer, schemas created and migrated by the hub.

Layers:
  ops      — file ledger, batches, validation results (no person data at all)
  staging  — one append-only table per extract contract, pseudonymized,
             every row tied to its batch (``_batch_id``) and source row (``_row_number``)
  current  — views: the live rows of each extract (latest version per key;
             for full-history extracts only what the latest delivery holds)
  core     — conformed tables built by ``transforms/sql``
  marts    — reporting tables built by ``transforms/sql``

DuckDB allows one writing process; every write goes through ``connect()``, which
holds the hub-wide writer lock (leadhub/core/lock.py) while the connection is open
(Airflow also serializes writers with a one-slot pool). Only the pipeline opens
this file; analysts read the published snapshot.
"""

from __future__ import annotations

import os
import re
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import duckdb

from leadhub.core.contracts import Contract, load_contracts
from leadhub.core.errors import LeadHubError
from leadhub.core.files import transaction
from leadhub.core.lock import writer_lock
from leadhub.core.files import PRIVATE_FILE_MODE, make_private_dir
from leadhub.core.settings import lock_timeout_seconds, writer_lock_file

# Token columns that replace identifier columns in staging, by identifier role.
TOKEN_COLUMNS = {
    "agency_person_id": "person_token",
    "ssn": "ssn_token",
    "address": "address_token",
    "phone": "phone_token",
}
NAME_DOB_TOKEN = "name_dob_token"
# Keyed similarity encodings (transforms/encodings.py) for fuzzy linkage, by linkage field.
# Like tokens they hold no identifier; the analysts' published snapshot leaves out every
# column ending in "_enc" as well as the token columns.
ENCODING_COLUMNS = {
    "first_name": "first_name_enc",
    "first_name_canon": "first_name_canon_enc",
    "middle_name": "middle_name_enc",
    "last_name": "last_name_enc",
    "dob": "dob_enc",
    "ssn": "ssn_enc",
}
# Encodings computed from other identifier roles: the given name yields its nickname token set,
# and a middle name may be recorded in the given-name field ("Mary Ann", "John Q").
ENCODING_SOURCES = {"first_name_canon": ("first_name",), "middle_name": ("middle_name", "first_name")}
SQL_TYPES = {"string": "VARCHAR", "integer": "BIGINT", "date": "DATE",
             "timestamp": "TIMESTAMP", "decimal": "DOUBLE"}

OPS_DDL = """
CREATE SCHEMA IF NOT EXISTS ops;
CREATE SCHEMA IF NOT EXISTS staging;
CREATE SCHEMA IF NOT EXISTS current;
CREATE SCHEMA IF NOT EXISTS core;
CREATE SCHEMA IF NOT EXISTS marts;
CREATE TABLE IF NOT EXISTS ops.schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS ops.file_ledger (
    file_id      VARCHAR PRIMARY KEY,   -- received_at + sha256 prefix; one row per file that ever arrived
    received_at  TIMESTAMP NOT NULL,
    agency       VARCHAR NOT NULL,
    extract      VARCHAR,               -- NULL when the file name matched no contract
    file_name    VARCHAR NOT NULL,
    size_bytes   BIGINT NOT NULL,
    sha256       VARCHAR NOT NULL,
    row_count    BIGINT,
    status       VARCHAR NOT NULL,      -- received | accepted | duplicate | quarantined | superseded
    batch_id     VARCHAR,
    reason       VARCHAR,
    archive_path VARCHAR,
    updated_at   TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS ops.batches (
    batch_id     VARCHAR PRIMARY KEY,
    contract     VARCHAR NOT NULL,
    file_id      VARCHAR NOT NULL,
    sha256       VARCHAR NOT NULL,
    received_at  TIMESTAMP NOT NULL,
    loaded_at    TIMESTAMP NOT NULL,
    row_count    BIGINT NOT NULL,
    key_id       VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS ops.validation_results (
    batch_id     VARCHAR NOT NULL,
    contract     VARCHAR NOT NULL,
    expectation  VARCHAR NOT NULL,
    column_name  VARCHAR,
    severity     VARCHAR NOT NULL,      -- critical | warning
    success      BOOLEAN NOT NULL,
    observed     VARCHAR,               -- counts and percentages only, never values
    validated_at TIMESTAMP NOT NULL
);
"""


def utcnow() -> datetime:
    """Now, as every warehouse timestamp is stored: UTC without a zone (DuckDB TIMESTAMP)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def record_validation_results(con: duckdb.DuckDBPyConnection, batch_id: str, results: list[dict],
                              validated_at: datetime, contract: str | None = None) -> None:
    """Store check results (shaped like ``ValidationOutcome.results``) in ops.validation_results.

    Counts and failing row numbers go into their typed columns; ``observed`` is the text
    written from them for people. ``contract`` applies to results that name none.
    """
    if results:
        con.executemany(
            "INSERT INTO ops.validation_results (batch_id, contract, expectation, column_name, severity, "
            "success, observed, validated_at, unexpected_count, checked_count, row_numbers) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [[batch_id, r.get("contract") or contract, r["expectation"], r.get("column"), r["severity"],
              bool(r["success"]), r.get("observed"), validated_at, r.get("unexpected"), r.get("checked"),
              list(r["rows"]) if r.get("unexpected") is not None and r.get("rows") else None]
             for r in results])


def staging_columns(contract: Contract) -> list[tuple[str, str]]:
    """(name, SQL type) of the staging table: plain columns, then tokens, then lineage."""
    cols = [(c.name, SQL_TYPES[c.type]) for c in contract.plain_columns]
    roles = {c.identifier for c in contract.identifier_columns}
    for role, token in TOKEN_COLUMNS.items():
        if role in roles:
            cols.append((token, "VARCHAR"))
    if {"last_name", "first_name", "dob"} <= roles:
        cols.append((NAME_DOB_TOKEN, "VARCHAR"))
    for field, column in ENCODING_COLUMNS.items():
        if roles & set(ENCODING_SOURCES.get(field, (field,))):
            cols.append((column, "VARCHAR"))
    if contract.age_at:
        cols.append(("age_at_event", "INTEGER"))
    cols += [("key_id", "VARCHAR"), ("_batch_id", "VARCHAR"), ("_row_number", "BIGINT")]
    return cols


def staging_key(contract: Contract) -> list[str]:
    """The primary key as it appears in staging (agency person ids become their token)."""
    return [TOKEN_COLUMNS["agency_person_id"] if contract.column(k).identifier else k
            for k in contract.primary_key]


def _current_view(contract: Contract) -> str:
    t = f"staging.{contract.name}"
    key = ", ".join(staging_key(contract))
    order = "b.loaded_at DESC, s._row_number DESC"
    if contract.history == "full":
        # Full history: the latest delivery is the whole truth; rows it lacks are deleted.
        return f"""CREATE OR REPLACE VIEW current.{contract.name} AS
SELECT s.* FROM {t} s
WHERE s._batch_id = (SELECT b.batch_id FROM ops.batches b WHERE b.contract = '{contract.name}'
                     ORDER BY b.loaded_at DESC LIMIT 1)"""
    # Incremental: the latest version of each key, except from files a corrected re-send of the
    # same period superseded — rows that correction left out are deleted, not kept alive.
    return f"""CREATE OR REPLACE VIEW current.{contract.name} AS
SELECT * EXCLUDE (_rank) FROM (
  SELECT s.*, row_number() OVER (PARTITION BY {key} ORDER BY {order}) AS _rank
  FROM {t} s JOIN ops.batches b ON b.batch_id = s._batch_id
  LEFT JOIN ops.file_ledger f ON f.file_id = b.file_id
  WHERE f.status IS DISTINCT FROM 'superseded') WHERE _rank = 1"""


# As migration 3 shipped it (migration 4 replaces it).
DATA_QUALITY_VIEW_V3 = """
-- ops.data_quality: one row per check of every validation run, for trends and the Data Docs.
-- kind: batch (the extract's GX suite), history (against earlier deliveries), build (checks on
-- core tables after a build, batch id 'build-<time>'), schema (a header refused as schema drift
-- while the file was read; its batch id is the file id). Observed values are counts only;
-- unexpected_count and checked_count are parsed from "unexpected N of M rows, P%".
CREATE OR REPLACE VIEW ops.data_quality AS
WITH checks AS (
    SELECT validated_at, batch_id, NULL::VARCHAR AS file_id, contract,
           CASE WHEN batch_id LIKE 'build-%' THEN 'build'
                WHEN expectation LIKE '%\\_to\\_match\\_history' ESCAPE '\\' THEN 'history'
                ELSE 'batch' END AS kind,
           expectation, column_name, severity, success, observed
    FROM ops.validation_results
    UNION ALL
    SELECT updated_at, file_id, file_id, agency || '_' || extract, 'schema', 'schema_drift', NULL,
           'critical', false, regexp_extract(reason, 'rule ''header'' failed: (.*)$', 1)
    FROM ops.file_ledger
    WHERE status = 'quarantined' AND reason LIKE '%rule ''header'' failed%'
)
SELECT c.validated_at,
       c.validated_at::DATE AS validated_on,
       coalesce(lb.agency, lf.agency, CASE WHEN c.kind = 'build' THEN 'warehouse' END) AS agency,
       c.contract,
       c.batch_id,
       coalesce(lb.file_id, lf.file_id) AS file_id,
       coalesce(lb.file_name, lf.file_name) AS file_name,
       coalesce(lb.status, lf.status) AS file_status,
       c.kind,
       c.expectation,
       c.column_name,
       c.severity,
       c.success,
       c.observed,
       TRY_CAST(replace(regexp_extract(c.observed, '^unexpected ([0-9,]+) of', 1), ',', '')
                AS BIGINT) AS unexpected_count,
       TRY_CAST(replace(regexp_extract(c.observed, '^unexpected [0-9,]+ of ([0-9,]+) ', 1), ',', '')
                AS BIGINT) AS checked_count
FROM checks c
LEFT JOIN ops.file_ledger lb ON lb.batch_id = c.batch_id AND c.file_id IS NULL
LEFT JOIN ops.file_ledger lf ON lf.file_id = c.file_id
"""


DATA_QUALITY_VIEW = """
-- ops.data_quality: one row per check of every validation run, for trends and the Data Docs.
-- kind: batch (the extract's GX suite), history (against earlier deliveries), build (checks on
-- core tables after a build, batch id 'build-<time>'), schema (a header refused as schema drift
-- while the file was read; its batch id is the file id). Observed values are counts only;
-- unexpected_count and checked_count are the typed columns of ops.validation_results.
CREATE OR REPLACE VIEW ops.data_quality AS
WITH checks AS (
    SELECT validated_at, batch_id, NULL::VARCHAR AS file_id, contract,
           CASE WHEN batch_id LIKE 'build-%' THEN 'build'
                WHEN expectation LIKE '%\\_to\\_match\\_history' ESCAPE '\\' THEN 'history'
                ELSE 'batch' END AS kind,
           expectation, column_name, severity, success, observed, unexpected_count, checked_count
    FROM ops.validation_results
    UNION ALL
    SELECT updated_at, file_id, file_id, agency || '_' || extract, 'schema', 'schema_drift', NULL,
           'critical', false, rule_detail, NULL::BIGINT, NULL::BIGINT
    FROM ops.file_ledger
    WHERE status = 'quarantined' AND rule = 'header'
)
SELECT c.validated_at,
       c.validated_at::DATE AS validated_on,
       coalesce(lb.agency, lf.agency, CASE WHEN c.kind = 'build' THEN 'warehouse' END) AS agency,
       c.contract,
       c.batch_id,
       coalesce(lb.file_id, lf.file_id) AS file_id,
       coalesce(lb.file_name, lf.file_name) AS file_name,
       coalesce(lb.status, lf.status) AS file_status,
       c.kind,
       c.expectation,
       c.column_name,
       c.severity,
       c.success,
       c.observed,
       c.unexpected_count,
       c.checked_count
FROM checks c
LEFT JOIN ops.file_ledger lb ON lb.batch_id = c.batch_id AND c.file_id IS NULL
LEFT JOIN ops.file_ledger lf ON lf.file_id = c.file_id
"""

# Migration 4: counts, failing row numbers and refusal rules become typed columns, so nothing
# reads them back out of text. The rows written before it are parsed here, once: "unexpected
# N of M rows, P%[; (first) rows a, b[, ...]]" and "<file>: rule '<rule>' failed[: <detail>]".
TYPED_RESULTS = r"""
ALTER TABLE ops.validation_results ADD COLUMN IF NOT EXISTS unexpected_count BIGINT;
ALTER TABLE ops.validation_results ADD COLUMN IF NOT EXISTS checked_count BIGINT;
ALTER TABLE ops.validation_results ADD COLUMN IF NOT EXISTS row_numbers BIGINT[];
UPDATE ops.validation_results SET
    unexpected_count = TRY_CAST(replace(regexp_extract(observed, '^unexpected ([0-9,]+) of', 1), ',', '')
                                AS BIGINT),
    checked_count = TRY_CAST(replace(regexp_extract(observed, '^unexpected [0-9,]+ of ([0-9,]+) ', 1),
                                     ',', '') AS BIGINT),
    row_numbers = list_transform(string_split(nullif(regexp_extract(
        observed, '^unexpected [0-9,]+ of [0-9,]+ rows?, [^;]*; (?:first )?rows ([0-9, ]*[0-9])', 1), ''),
        ', '), lambda n: n::BIGINT)
WHERE observed LIKE 'unexpected %';
ALTER TABLE ops.file_ledger ADD COLUMN IF NOT EXISTS rule VARCHAR;
ALTER TABLE ops.file_ledger ADD COLUMN IF NOT EXISTS rule_detail VARCHAR;
UPDATE ops.file_ledger SET
    rule = nullif(regexp_extract(reason, 'rule ''([^'']*)'' failed', 1), ''),
    rule_detail = nullif(regexp_extract(reason, 'rule ''[^'']*'' failed: (.*)$', 1), '')
WHERE status = 'quarantined' AND reason LIKE '%rule ''%'' failed%';
""" + DATA_QUALITY_VIEW

# Migration 5: a sealing or expungement order is remembered only as keyed tokens (leadhub/core/
# sealed.py), never as the ids it named, so intake can drop a re-delivered sealed record. The
# ledger counts, per file, rows a seal cut from its archived original and sealed rows dropped
# at intake.
SEALED_RECORDS = """
CREATE TABLE IF NOT EXISTS ops.sealed_records (
    order_token  VARCHAR NOT NULL,
    agency       VARCHAR NOT NULL,
    record_token VARCHAR NOT NULL,
    sealed_at    TIMESTAMP NOT NULL
);
ALTER TABLE ops.file_ledger ADD COLUMN IF NOT EXISTS redacted_rows BIGINT;
ALTER TABLE ops.file_ledger ADD COLUMN IF NOT EXISTS sealed_dropped BIGINT;
"""

# Numbered schema migrations, applied in order and recorded in ops.schema_version.
# Never edit or renumber one that has shipped: add the next number instead. A
# migration holds only the DDL of its own step; the staging tables and current
# views, which follow the contracts, are brought in line by _sync_contracts on
# every writer connection.
MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "layers and the ops ledger, batch and validation tables", OPS_DDL),
    (2, "ops.schema_version records what each migration did",
     "ALTER TABLE ops.schema_version ADD COLUMN IF NOT EXISTS description VARCHAR"),
    (3, "ops.data_quality view over validation results, for data-quality trends", DATA_QUALITY_VIEW_V3),
    (4, "typed counts and row numbers in ops.validation_results, refusal rules in ops.file_ledger",
     TYPED_RESULTS),
    (5, "ops.sealed_records remembers sealing orders as keyed tokens; the ledger counts redactions",
     SEALED_RECORDS),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]
LOCK_POLL_SECONDS = 0.2
STORAGE_COMPATIBILITY = "v1.4.0"


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether ``schema.table`` is a table of the connection's own database."""
    # fetchall, not fetchone: an unfinished result makes DuckDB refuse a later con.register.
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                            "AND schema_name = ? AND table_name = ?", [schema, table]).fetchall()[0][0])


def applied_versions(con: duckdb.DuckDBPyConnection) -> set[int]:
    """Schema versions recorded in this warehouse (empty for a new file)."""
    if not table_exists(con, "ops", "schema_version"):
        return set()
    return {v for (v,) in con.execute("SELECT DISTINCT version FROM ops.schema_version").fetchall()}


def _record_version(con: duckdb.DuckDBPyConnection, version: int, description: str) -> None:
    columns = {name for (name,) in con.execute("""SELECT column_name FROM duckdb_columns()
        WHERE database_name = current_database() AND schema_name = 'ops'
          AND table_name = 'schema_version'""").fetchall()}
    if "description" in columns:
        con.execute("INSERT INTO ops.schema_version (version, applied_at, description) "
                    "VALUES (?, now(), ?)", [version, description])
    else:
        con.execute("INSERT INTO ops.schema_version (version, applied_at) VALUES (?, now())",
                    [version])


def _sync_contracts(con: duckdb.DuckDBPyConnection, contracts: dict[str, Contract]) -> None:
    """Staging tables and current views follow the contracts.

    A new contract gets its table; a column added to a contract (or a new token
    column from ``staging_columns``) is added to the existing table, so earlier
    rows read NULL there. Columns are never dropped or retyped here: that would
    lose history, and needs a numbered migration written for the purpose.
    """
    for contract in contracts.values():
        wanted = staging_columns(contract)
        cols = ", ".join(f'"{n}" {t}' for n, t in wanted)
        con.execute(f"CREATE TABLE IF NOT EXISTS staging.{contract.name} ({cols})")
        present = {name for (name,) in con.execute("""SELECT column_name FROM duckdb_columns()
            WHERE database_name = current_database() AND schema_name = 'staging'
              AND table_name = ?""", [contract.name]).fetchall()}
        for name, sql_type in wanted:
            if name not in present:
                con.execute(f'ALTER TABLE staging.{contract.name} ADD COLUMN "{name}" {sql_type}')
        con.execute(_current_view(contract))


def migrate(con: duckdb.DuckDBPyConnection, contracts: dict[str, Contract] | None = None) -> None:
    """Bring a warehouse to SCHEMA_VERSION: the hub migrates schemas, nobody does it by hand.

    Each pending migration runs in its own transaction together with the row
    that records it, so a crash leaves either the old version or the new one.
    A warehouse written by newer code is refused rather than silently misread.
    """
    done = applied_versions(con)
    newer = {v for v in done if v > SCHEMA_VERSION}
    if newer:
        raise LeadHubError(f"the warehouse is at schema version {max(newer)}, newer than this "
                           f"code's {SCHEMA_VERSION}; upgrade the hub before opening it")
    for version, description, ddl in MIGRATIONS:
        if version in done:
            continue
        with transaction(con):
            con.execute(ddl)
            _record_version(con, version, description)
    with transaction(con):
        _sync_contracts(con, contracts or load_contracts())


class WarehouseBusy(LeadHubError):
    """A process outside the hub holds the warehouse file: nothing can be written until it lets go."""


def _open(path: Path, read_only: bool, config: dict, timeout: float) -> duckdb.DuckDBPyConnection:
    """duckdb.connect, waiting while another process holds the file; then one line, not a traceback.

    Within the hub the writer lock keeps writers apart, so a conflict here means a
    process outside it holds the file: typically someone who opened the pipeline's
    warehouse to read it, which blocks every load for as long as they keep it open.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.IOException as e:
            if "Could not set lock" not in str(e):
                raise
            if time.monotonic() >= deadline:
                pid = re.search(r"\(PID (\d+)\)", str(e))
                who = f"process {pid.group(1)}" if pid else "another process"
                raise WarehouseBusy(
                    f"the warehouse {path} is open in {who}, so the hub cannot "
                    f"{'read' if read_only else 'write'} it (gave up after {timeout:g} s); only the "
                    f"pipeline opens it: analysts read the snapshot published/lead.duckdb in the data "
                    f"directory instead") from None
            time.sleep(LOCK_POLL_SECONDS)


def _make_private(path: Path) -> None:
    """The warehouse and its write-ahead log are readable by the hub's user only."""
    for f in (path, path.with_name(path.name + ".wal")):
        try:
            os.chmod(f, PRIVATE_FILE_MODE)
        except FileNotFoundError:
            pass


def build_memory_limit() -> str:
    """DuckDB's memory cap for a build: ``LEADHUB_BUILD_MEMORY_MB``, or half the machine's memory.

    DuckDB's own default is 80% of memory, which leaves too little for the build's Python side
    (identity rows and candidate pairs as frames): at a million people the process outgrew the
    machine and was killed. Past the cap DuckDB spills to ``<warehouse>.tmp`` beside the
    warehouse file, inside its private folder.
    """
    mb = os.environ.get("LEADHUB_BUILD_MEMORY_MB")
    if mb is None:
        mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (2 << 20)
    return f"{int(mb)}MB"


@contextmanager
def connect(path: Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the warehouse at ``path``; a writer holds the hub's writer lock throughout.

    The writer waits for the lock, and for a reader outside the hub to let go of
    the file, up to ``LEADHUB_LOCK_TIMEOUT_SECONDS``; then it gives up with one line.
    """
    path = Path(path)
    timeout = lock_timeout_seconds()
    if read_only:
        con = _open(path, True, {}, timeout)
        try:
            yield con
        finally:
            con.close()
        return
    make_private_dir(path.parent)
    with writer_lock(writer_lock_file(path), timeout=timeout):
        # Written in a storage format the DuckDB CLI (PyPI duckdb-cli 1.5) and other 1.x tools can open.
        con = _open(path, False, {"storage_compatibility_version": STORAGE_COMPATIBILITY}, timeout)
        try:
            _make_private(path)
            migrate(con)
            yield con
        finally:
            con.close()
            _make_private(path)
