"""Publish a read-only snapshot of the warehouse for analysts, after each build.

DuckDB allows one writing process, and a reader holding the warehouse file open
would block the next load. So analysts never open the warehouse itself: they
open ``<data_dir>/published/lead.duckdb``, a copy of the core, marts and ops
tables written by the build. The copy is written to a temporary file in the
same folder and swapped in with ``os.replace`` (an atomic rename), so

  * a build never waits for an analyst (it writes a different file);
  * an analyst who has the old snapshot open keeps reading the old file, whole
    and consistent, until they reconnect — the rename does not touch it;
  * nobody can open a half-written snapshot: the name only ever points at a
    finished file.

What is left out, because analysts need ``person_key`` and nothing more:
core.person_link (the bridge from pseudonym tokens to person keys), every
token column (``*_token``), every similarity-encoding column (``*_enc``) and
the staging and current layers. The data dictionary is written next to the
snapshot, and its descriptions are stored as table and column comments inside
it, so ``duckdb_columns()`` answers "what is this column" too.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from connectors.archive import fsync_path
from leadhub.settings import Settings
from leadhub.warehouse import NAME_DOB_TOKEN, SCHEMA_VERSION, TOKEN_COLUMNS, utcnow

PUBLISHED_SCHEMAS = ("core", "marts", "ops")
EXCLUDED_TABLES = {("core", "person_link")}
EXCLUDED_COLUMNS = set(TOKEN_COLUMNS.values()) | {NAME_DOB_TOKEN}
SNAPSHOT_NAME = "lead.duckdb"
SNAPSHOT_INFO_COLUMNS = ("published_at", "schema_version", "data_received_until")


def published_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "published"


def snapshot_path(settings: Settings) -> Path:
    return published_dir(settings) / SNAPSHOT_NAME


def is_published_column(name: str) -> bool:
    """Tokens and similarity encodings stay in the warehouse."""
    return not (name in EXCLUDED_COLUMNS or name.endswith("_token") or name.endswith("_enc"))


def published_columns(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], list[str]]:
    """{(schema, table): [column, ...]} of what a snapshot of this warehouse holds, in order."""
    rows = con.execute("""SELECT schema_name, table_name, column_name FROM duckdb_columns()
        WHERE database_name = current_database() AND schema_name IN ('core', 'marts', 'ops')
        ORDER BY schema_name, table_name, column_index""").fetchall()
    # The snapshot holds tables only, so a view there would point at nothing. Views over the
    # ops tables alone (ops.data_quality) are published as tables: analysts query their trends.
    views = set(con.execute("""SELECT schema_name, view_name FROM duckdb_views()
        WHERE database_name = current_database() AND schema_name <> 'ops'""").fetchall())
    tables: dict[tuple[str, str], list[str]] = {}
    for schema, table, column in rows:
        if (schema, table) in EXCLUDED_TABLES or (schema, table) in views:
            continue
        if is_published_column(column):
            tables.setdefault((schema, table), []).append(column)
    return tables


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def publish_snapshot(con: duckdb.DuckDBPyConnection, target: Path,
                     descriptions: dict | None = None) -> dict[str, int]:
    """Copy the published tables of the warehouse open on ``con`` to ``target``, atomically.

    ``con`` must not be inside an open transaction: the snapshot shows what is
    committed. ``descriptions`` ({(schema, table): {"": table text, column: text}})
    become COMMENTs in the snapshot. Returns {'schema.table': rows}.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    # A publisher killed half-way leaves its temporary file behind. Only the build, which
    # holds the single warehouse writer, publishes, so no other publisher can be using one.
    for leftover in target.parent.glob(f".{target.name}.*.tmp*"):
        leftover.unlink(missing_ok=True)
    tables = published_columns(con)
    descriptions = descriptions or {}
    counts: dict[str, int] = {}
    con.execute(f"ATTACH {_literal(str(tmp))} AS snapshot")
    try:
        con.execute("BEGIN")
        for schema in PUBLISHED_SCHEMAS:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS snapshot.{schema}")
        for (schema, table), columns in tables.items():
            select = ", ".join(_quote(c) for c in columns)
            name = f"snapshot.{schema}.{_quote(table)}"
            con.execute(f"CREATE TABLE {name} AS SELECT {select} FROM {schema}.{_quote(table)}")
            counts[f"{schema}.{table}"] = con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
            text = descriptions.get((schema, table), {})
            if text.get(""):
                con.execute(f"COMMENT ON TABLE {name} IS {_literal(text[''])}")
            for column in columns:
                if text.get(column):
                    con.execute(f"COMMENT ON COLUMN {name}.{_quote(column)} IS {_literal(text[column])}")
        con.execute("""CREATE TABLE snapshot.ops.snapshot_info AS
            SELECT ?::TIMESTAMP AS published_at, ?::INTEGER AS schema_version,
                   (SELECT max(received_at) FROM ops.batches) AS data_received_until""",
                    [utcnow(), SCHEMA_VERSION])
        info = descriptions.get(("ops", "snapshot_info"), {})
        if info.get(""):
            con.execute(f"COMMENT ON TABLE snapshot.ops.snapshot_info IS {_literal(info[''])}")
        for column, text in info.items():
            if column:
                con.execute(f"COMMENT ON COLUMN snapshot.ops.snapshot_info.{column} IS {_literal(text)}")
        con.execute("COMMIT")
        con.execute("CHECKPOINT snapshot")
    except BaseException:
        con.execute("ROLLBACK")
        con.execute("DETACH snapshot")
        tmp.unlink(missing_ok=True)
        raise
    con.execute("DETACH snapshot")
    fsync_path(tmp)
    os.replace(tmp, target)
    fsync_path(target.parent)
    return counts


def publish(settings: Settings, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, int]:
    """Publish the snapshot and its data dictionary from the warehouse.

    Called by the build with its own (writer) connection, after the build has
    committed; on its own it opens the warehouse as the writer, because an
    extra read-only reader would block the pipeline.
    """
    from transforms.dictionary import describe, write_dictionary

    if con is None:
        from leadhub.warehouse import connect

        with connect(settings.warehouse_path) as own:
            return publish(settings, own)
    tables = {**published_columns(con), ("ops", "snapshot_info"): list(SNAPSHOT_INFO_COLUMNS)}
    descriptions = describe(tables)
    counts = publish_snapshot(con, snapshot_path(settings), descriptions)
    write_dictionary(published_dir(settings), descriptions, tables)
    return counts
