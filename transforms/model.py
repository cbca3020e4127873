"""Build the core and marts layers by running ``transforms/sql`` in order.

The SQL files are numbered (``10_core_referral.sql`` ... ``60_marts_summary.sql``)
and each one replaces its tables wholesale, so a rebuild is idempotent and a
file may use every table built by a lower-numbered one. Reference data (offense
codes, evaluation settings) is loaded first so the SQL can join to it instead
of hard-coding it, and core.record_history (generated per contract, see
``record_history_sql``) keeps the rows that later deliveries deleted or replaced. Nothing here commits: the caller owns the transaction, so a
failed build leaves the previous tables in place.
"""

from __future__ import annotations

import csv
import re
from datetime import date
from pathlib import Path

import duckdb
import yaml

from leadhub.core.contracts import Contract, load_contracts
from leadhub.core.errors import LeadHubError
from leadhub.core.warehouse import staging_key, table_exists

TRANSFORMS_DIR = Path(__file__).parent
SQL_DIR = TRANSFORMS_DIR / "sql"
OFFENSE_CODES_CSV = TRANSFORMS_DIR / "reference" / "offense_codes.csv"
EVALUATION_YAML = TRANSFORMS_DIR / "evaluation.yaml"

_SQL_NAME = re.compile(r"^(\d+)_[a-z0-9_]+\.sql$")


def sql_files(directory: Path = SQL_DIR) -> list[Path]:
    """The model files in execution order: by their numeric prefix, then name."""
    files = []
    for path in directory.glob("*.sql"):
        match = _SQL_NAME.match(path.name)
        if not match:
            raise LeadHubError(f"{path.name}: model files must be named NN_name.sql")
        files.append((int(match.group(1)), path.name, path))
    return [path for _, _, path in sorted(files)]


def load_offense_codes(con: duckdb.DuckDBPyConnection, path: Path = OFFENSE_CODES_CSV) -> None:
    """core.offense_code from the versioned reference CSV (typed, one row per code)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = [(r["offense_code"], r["description"], r["offense_type"], r["default_severity"],
                 r["lead_eligible"].strip().lower() == "true") for r in csv.DictReader(f)]
    con.execute("""CREATE OR REPLACE TABLE core.offense_code (
        offense_code VARCHAR PRIMARY KEY, description VARCHAR, offense_type VARCHAR,
        default_severity VARCHAR, lead_eligible BOOLEAN NOT NULL)""")
    con.executemany("INSERT INTO core.offense_code VALUES (?, ?, ?, ?, ?)", rows)


def load_evaluation_settings(con: duckdb.DuckDBPyConnection, path: Path = EVALUATION_YAML) -> None:
    """core.evaluation_settings: one row holding the cohort definitions from evaluation.yaml."""
    raw = yaml.safe_load(Path(path).read_text())
    con.execute("""CREATE OR REPLACE TABLE core.evaluation_settings (
        version INTEGER, comparison_precincts VARCHAR[], program_start DATE,
        program_end DATE, windows_days INTEGER[])""")
    con.execute("INSERT INTO core.evaluation_settings VALUES (?, ?, ?, ?, ?)", [
        int(raw["version"]),
        [str(p) for p in raw["comparison_precincts"]],
        date.fromisoformat(str(raw["program_start"])),
        date.fromisoformat(str(raw["program_end"])),
        sorted(int(w) for w in raw["windows_days"]),
    ])


def _check_person_link(con: duckdb.DuckDBPyConnection) -> None:
    """Fail loudly rather than build marts without people or with duplicated rows."""
    if not table_exists(con, "core", "person_link"):
        raise LeadHubError("core.person_link is missing: run person linkage before the models")
    dupes = con.execute("""SELECT count(*) FROM (SELECT agency, person_token FROM core.person_link
        GROUP BY ALL HAVING count(*) > 1)""").fetchone()[0]
    if dupes:
        raise LeadHubError(f"core.person_link has {dupes} (agency, person_token) pairs "
                           "with more than one person_key")


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row counts of every core and marts table, keyed 'schema.table'."""
    names = con.execute("""SELECT schema_name, table_name FROM duckdb_tables()
        WHERE database_name = current_database() AND schema_name IN ('core', 'marts')
        ORDER BY schema_name, table_name""").fetchall()
    return {f"{s}.{t}": con.execute(f'SELECT count(*) FROM {s}."{t}"').fetchone()[0]
            for s, t in names}


def record_history_sql(contracts: dict[str, Contract]) -> str:
    """SQL for core.record_history: every row version that later deliveries took out of use.

    The current views show only live rows; this table keeps the rest visible.
    A full-history extract deletes a record by leaving it out of a later
    delivery ('deleted', changed_by = the first later delivery without it); an
    incremental extract corrects a record by sending its key again
    ('replaced', changed_by = the next delivery with that key) or deletes it by
    a corrected re-send of the same file that leaves it out ('deleted',
    changed_by = that re-send). record_key is
    the primary key as text, or NULL when the key is an agency person id (its
    token must not leave staging).
    """
    parts = []
    for c in contracts.values():
        key_cols = staging_key(c)
        key = ", ".join(key_cols)
        if any(c.column(k).identifier for k in c.primary_key):
            record_key = "NULL::VARCHAR"
        else:
            record_key = " || '|' || ".join(f"CAST({k} AS VARCHAR)" for k in key_cols)
        batches = f"(SELECT batch_id, loaded_at FROM ops.batches WHERE contract = '{c.name}')"
        if c.history == "full":
            parts.append(f"""
SELECT '{c.name}' AS contract, k.record_key, 'deleted' AS change, k.batch_id AS last_batch_id,
       nb.batch_id AS changed_by_batch_id, nb.loaded_at AS changed_at
FROM (SELECT {record_key} AS record_key, s._batch_id AS batch_id, b.loaded_at,
             max(b.loaded_at) OVER (PARTITION BY {", ".join("s." + k for k in key_cols)}) AS last_loaded
      FROM staging.{c.name} s JOIN ops.batches b ON b.batch_id = s._batch_id) k
JOIN LATERAL (SELECT batch_id, loaded_at FROM {batches} nb
              WHERE nb.loaded_at > k.loaded_at ORDER BY nb.loaded_at LIMIT 1) nb ON true
WHERE k.loaded_at = k.last_loaded""")
        else:
            # A key sent again replaces its earlier version. A corrected re-send of a file (same
            # name) supersedes the whole earlier file: its keys the correction left out, and never
            # sent again, are deleted by it (the current view drops them too).
            parts.append(f"""
SELECT '{c.name}' AS contract, v.record_key,
       CASE WHEN v.changed_by_batch_id IS NULL THEN 'deleted' ELSE 'replaced' END AS change,
       v.batch_id AS last_batch_id,
       coalesce(v.changed_by_batch_id, sp.new_batch_id) AS changed_by_batch_id,
       coalesce(v.changed_at, sp.new_loaded_at) AS changed_at
FROM (SELECT {record_key} AS record_key, s._batch_id AS batch_id,
             lead(s._batch_id) OVER w AS changed_by_batch_id, lead(b.loaded_at) OVER w AS changed_at
      FROM staging.{c.name} s JOIN ops.batches b ON b.batch_id = s._batch_id
      WINDOW w AS (PARTITION BY {key} ORDER BY b.loaded_at, s._row_number)) v
LEFT JOIN (SELECT b.batch_id AS old_batch_id, min_by(nb.batch_id, nb.loaded_at) AS new_batch_id,
                  min(nb.loaded_at) AS new_loaded_at
           FROM ops.batches b
           JOIN ops.file_ledger f ON f.file_id = b.file_id AND f.status = 'superseded'
           JOIN ops.file_ledger nf ON nf.agency = f.agency AND nf.file_name = f.file_name
           JOIN ops.batches nb ON nb.file_id = nf.file_id AND nb.contract = b.contract
                              AND nb.loaded_at > b.loaded_at
           WHERE b.contract = '{c.name}'
           GROUP BY b.batch_id) sp ON sp.old_batch_id = v.batch_id
WHERE v.changed_by_batch_id IS NOT NULL OR sp.new_batch_id IS NOT NULL""")
    body = "\nUNION ALL".join(parts) if parts else (
        "SELECT NULL::VARCHAR AS contract, NULL::VARCHAR AS record_key, NULL::VARCHAR AS change, "
        "NULL::VARCHAR AS last_batch_id, NULL::VARCHAR AS changed_by_batch_id, "
        "NULL::TIMESTAMP AS changed_at WHERE false")
    return (f"CREATE OR REPLACE TABLE core.record_history AS\n{body}\n"
            "ORDER BY contract, changed_at, record_key NULLS LAST, last_batch_id")


def run_models(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Load reference tables, run every model file in order, return core/marts row counts."""
    _check_person_link(con)
    load_offense_codes(con)
    load_evaluation_settings(con)
    con.execute(record_history_sql(load_contracts()))
    for path in sql_files():
        try:
            con.execute(path.read_text(encoding="utf-8"))
        except duckdb.Error as e:
            raise LeadHubError(f"model {path.name} failed ({type(e).__name__})") from e
    return table_counts(con)
