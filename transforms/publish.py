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
the staging and current layers. What is published is only as revealing as
each column's disclosure level allows (transforms/disclosure.py): record
numbers and officer ids become pseudonyms under the snapshot's own key, dates
lose precision, file names lose anything but their date stamp. The data
dictionary is written next to the snapshot, and its descriptions are stored as
table and column comments inside it, so ``duckdb_columns()`` answers "what is
this column" too.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import duckdb

from leadhub.core.agreements import Agreement, held_agencies, permitted
from leadhub.core.contracts import load_contracts
from leadhub.core.files import replace_durably, transaction
from leadhub.core.keys import MasterKey
from leadhub.core.settings import Settings
from leadhub.core.warehouse import NAME_DOB_TOKEN, SCHEMA_VERSION, TOKEN_COLUMNS, utcnow
from transforms.disclosure import (PSEUDONYM_TABLE, Disclosure, column_disclosure, file_name_function,
                                   file_text_function, is_person_level, published_query, pseudonym_table,
                                   sql_identifier)

PUBLISHED_SCHEMAS = ("core", "marts", "ops")
# Sealing orders stay with the steward: their keyed tokens are not the analysts' business.
EXCLUDED_TABLES = {("core", "person_link"), ("ops", "sealed_records")}
EXCLUDED_COLUMNS = set(TOKEN_COLUMNS.values()) | {NAME_DOB_TOKEN}
SNAPSHOT_NAME = "lead.duckdb"
# The data-sharing agreements a snapshot draws on (ops.agreements), for the report's methods.
AGREEMENTS_COLUMNS = ("reference", "agency", "effective", "end_date", "purposes", "small_cell_threshold")
# One row per extract: when the snapshot was published, and per source the months its current
# rows cover (by the extract's event date) and when its latest accepted delivery arrived.
SNAPSHOT_INFO_COLUMNS = ("published_at", "schema_version", "source", "period_first_month",
                         "period_last_month", "current_rows", "last_received_at")
SNAPSHOT_INFO_DISCLOSURE = {"period_first_month": Disclosure("plain", "date", "month"),
                            "period_last_month": Disclosure("plain", "date", "month")}


def published_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "published"


def snapshot_path(settings: Settings) -> Path:
    return published_dir(settings) / SNAPSHOT_NAME


def is_published_column(name: str) -> bool:
    """Tokens and similarity encodings stay in the warehouse."""
    return not (name in EXCLUDED_COLUMNS or name.endswith("_token") or name.endswith("_enc"))


def published_disclosures(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], dict[str, Disclosure]]:
    """{(schema, table): {column: Disclosure}} of what a snapshot of this warehouse holds, in order."""
    rows = con.execute("""SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns()
        WHERE database_name = current_database() AND schema_name IN ('core', 'marts', 'ops')
        ORDER BY schema_name, table_name, column_index""").fetchall()
    # The snapshot holds tables only, so a view there would point at nothing. Views over the
    # ops tables alone (ops.data_quality) are published as tables: analysts query their trends.
    views = set(con.execute("""SELECT schema_name, view_name FROM duckdb_views()
        WHERE database_name = current_database() AND schema_name <> 'ops'""").fetchall())
    columns_of: dict[tuple[str, str], list[str]] = {}
    for schema, table, column, _ in rows:
        columns_of.setdefault((schema, table), []).append(column)
    tables: dict[tuple[str, str], dict[str, Disclosure]] = {}
    for schema, table, column, sql_type in rows:
        if (schema, table) in EXCLUDED_TABLES or (schema, table) in views:
            continue
        if (schema, table) == ("ops", "snapshot_info"):
            tables.setdefault((schema, table), {})[column] = snapshot_info_disclosure(column)
            continue
        disclosure = column_disclosure(schema, table, column, sql_type,
                                       is_person_level(schema, table, columns_of[(schema, table)]))
        if is_published_column(column) and disclosure.treatment != "withhold":
            tables.setdefault((schema, table), {})[column] = disclosure
    return tables


def published_columns(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], list[str]]:
    """{(schema, table): [column, ...]} of what a snapshot of this warehouse holds, in order."""
    return {table: list(columns) for table, columns in published_disclosures(con).items()}


def snapshot_info_disclosure(column: str) -> Disclosure:
    return SNAPSHOT_INFO_DISCLOSURE.get(column, Disclosure("plain"))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _register_functions(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The UDFs ``published_expression`` calls; their names, to remove them afterwards."""
    names = [name for (name,) in con.execute(
        "SELECT DISTINCT file_name FROM ops.file_ledger WHERE file_name IS NOT NULL").fetchall()]
    file_name = file_name_function()
    functions = {"leadhub_file_name": file_name,
                 "leadhub_file_text": file_text_function(names, file_name)}
    for name, fn in functions.items():
        con.create_function(name, fn, [duckdb.sqltype("VARCHAR")], duckdb.sqltype("VARCHAR"),
                            side_effects=False)
    return list(functions)


def _create_pseudonyms(con: duckdb.DuckDBPyConnection, key: MasterKey,
                       tables: dict[tuple[str, str], dict[str, Disclosure]]) -> None:
    """``PSEUDONYM_TABLE`` (temporary) for every distinct value of the pseudonymized columns."""
    parts = [f"SELECT CAST({sql_identifier(c)} AS VARCHAR) AS v FROM {schema}.{sql_identifier(table)}"
             for (schema, table), columns in tables.items() for c, d in columns.items()
             if d.treatment == "pseudonym"]
    values = [v for (v,) in con.execute(
        f"SELECT DISTINCT v FROM ({' UNION ALL '.join(parts)}) WHERE v IS NOT NULL").fetchall()] if parts else []
    con.register("lh_pseudonyms_input", pseudonym_table(key.subkey("publication"), values))
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {PSEUDONYM_TABLE} AS SELECT * FROM lh_pseudonyms_input")
    finally:
        con.unregister("lh_pseudonyms_input")


def snapshot_info_sql(left_out: frozenset[str] = frozenset()) -> str:
    """One SELECT per extract over its current rows: the months they cover and the latest receipt.
    Extracts of the ``left_out`` agencies are not counted."""
    parts = []
    for contract in load_contracts().values():
        if contract.agency in left_out:
            continue
        event = contract.event_column
        if event is None:
            first = last = "NULL::DATE"
        else:
            # An extract's first and last month are counts' bounds, not anybody's record: shown
            # to the month whatever the precision of the rows themselves.
            first = f"CAST(date_trunc('month', min({sql_identifier(event.name)})) AS DATE)"
            last = f"CAST(date_trunc('month', max({sql_identifier(event.name)})) AS DATE)"
        parts.append(f"""SELECT {_literal(contract.name)} AS source, {first} AS period_first_month,
       {last} AS period_last_month, count(*) AS current_rows,
       (SELECT max(received_at) FROM ops.batches WHERE contract = {_literal(contract.name)})
           AS last_received_at
FROM current.{sql_identifier(contract.name)}""")
    return "\nUNION ALL\n".join(parts) or ("SELECT NULL::VARCHAR AS source, NULL::DATE AS period_first_month, "
                                         "NULL::DATE AS period_last_month, 0::BIGINT AS current_rows, "
                                         "NULL::TIMESTAMP AS last_received_at WHERE false")


# What a model file builds and what it reads: "CREATE ... TABLE schema.table AS" starts a model.
_CREATED = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?TABLE\s+(\w+)\.(\w+)", re.IGNORECASE)
_READS = re.compile(r"\b(core|marts|current|staging)\.(\w+)\b")
_COMMENT = re.compile(r"--[^\n]*")


def model_agencies() -> dict[tuple[str, str], frozenset[str]]:
    """{(schema, table): the agencies whose extracts the model table is built from}, followed
    through the model tables it reads (transforms/sql). core.person_link, which every core
    table joins for its person key, is linkage (an operations use) and counts for none."""
    from transforms.model import sql_files

    agency_of = {name: c.agency for name, c in load_contracts().items()}
    reads: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for path in sql_files():
        sql = _COMMENT.sub("", path.read_text(encoding="utf-8"))  # comments name tables too
        pieces = _CREATED.split(sql)
        for schema, table, body in zip(pieces[1::3], pieces[2::3], pieces[3::3]):
            reads.setdefault((schema, table), set()).update(_READS.findall(body))

    def agencies(table: tuple[str, str], seen: frozenset = frozenset()) -> set[str]:
        if table[0] in ("current", "staging"):
            return {agency_of[table[1]]} if table[1] in agency_of else set()
        return set().union(*(agencies(t, seen | {table}) for t in reads.get(table, ()) if t not in seen | {table}))

    return {table: frozenset(agencies(table)) for table in reads}


def evaluation_agreements(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, Agreement], frozenset[str]]:
    """(the agreements in force today that permit evaluation, keyed by agency; the agencies with
    data whose agreement does not permit it). AgreementError names an agency with data and no
    agreement in force."""
    held = held_agencies(con)
    drawn = permitted(held, "evaluation", utcnow().date())
    return drawn, frozenset(held) - set(drawn)


def _row_filter(columns: list[str], left_out: frozenset[str]) -> str:
    """A WHERE clause leaving out the rows of ``left_out`` agencies, by an agency or contract column."""
    if not left_out:
        return ""
    names = ", ".join(_literal(n) for n, c in load_contracts().items() if c.agency in left_out)
    if "agency" in columns:
        return " WHERE agency NOT IN (" + ", ".join(_literal(a) for a in sorted(left_out)) + ")"
    if "contract" in columns:
        return f" WHERE contract NOT IN ({names})"
    return ""


def publish_snapshot(con: duckdb.DuckDBPyConnection, target: Path, key: MasterKey,
                     descriptions: dict | None = None, drawn: dict[str, Agreement] | None = None,
                     left_out: frozenset[str] = frozenset(),
                     disclosures: dict[tuple[str, str], dict[str, Disclosure]] | None = None) -> dict[str, int]:
    """Copy the published tables of the warehouse open on ``con`` to ``target``, atomically.

    ``con`` must not be inside an open transaction: the snapshot shows what is
    committed. Quasi-identifiers are pseudonymized with ``key``'s publication
    subkey. ``descriptions`` ({(schema, table): {"": table text, column: text}})
    become COMMENTs in the snapshot, each column's followed by its disclosure.
    Evaluation may use only the agencies whose agreements are ``drawn`` on: a model table built
    from a ``left_out`` agency's extracts is not published, and a table with an ``agency`` or
    ``contract`` column (core.record_history, ops.batches, ops.file_ledger, ...) loses that
    agency's rows. ``ops.agreements`` lists the agreements drawn on. ``disclosures`` is
    ``published_disclosures(con)`` when the caller already has it.
    Returns {'schema.table': rows}.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    # A publisher killed half-way leaves its temporary file behind. Publishing holds the
    # hub's writer lock, so no other publisher can be using one.
    for leftover in target.parent.glob(f".{target.name}.*.tmp*"):
        leftover.unlink(missing_ok=True)
    tables = dict(published_disclosures(con) if disclosures is None else disclosures)
    tables.pop(("ops", "snapshot_info"), None)
    types = {(s, t, c): d for s, t, c, d in con.execute(
        "SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = current_database()").fetchall()}
    descriptions = descriptions or {}
    counts: dict[str, int] = {}
    built_from = model_agencies() if left_out else {}
    tables = {t: c for t, c in tables.items() if not built_from.get(t, frozenset()) & left_out}
    all_columns: dict[tuple[str, str], list[str]] = {}
    for schema, table, column in types:
        all_columns.setdefault((schema, table), []).append(column)
    functions = _register_functions(con)
    _create_pseudonyms(con, key, tables)
    con.execute(f"ATTACH {_literal(str(tmp))} AS snapshot")
    try:
        with transaction(con):
            for schema in PUBLISHED_SCHEMAS:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS snapshot.{schema}")
            for (schema, table), columns in tables.items():
                name = f"snapshot.{schema}.{sql_identifier(table)}"
                where = _row_filter(all_columns[(schema, table)], left_out)
                query = published_query(f"{schema}.{sql_identifier(table)}",
                                        {c: (types[(schema, table, c)], d) for c, d in columns.items()}, where)
                con.execute(f"CREATE TABLE {name} AS {query}")
                counts[f"{schema}.{table}"] = con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
                _comment(con, name, descriptions.get((schema, table), {}), columns)
            con.execute(f"""CREATE TABLE snapshot.ops.snapshot_info AS
                SELECT ?::TIMESTAMP AS published_at, ?::INTEGER AS schema_version, s.*
                FROM ({snapshot_info_sql(left_out)}) s ORDER BY s.source""", [utcnow(), SCHEMA_VERSION])
            con.execute("""CREATE TABLE snapshot.ops.agreements (reference VARCHAR, agency VARCHAR,
                effective DATE, end_date DATE, purposes VARCHAR[], small_cell_threshold INTEGER)""")
            for a in (drawn or {}).values():
                con.execute("INSERT INTO snapshot.ops.agreements VALUES (?, ?, ?, ?, ?, ?)",
                            [a.reference, a.agency, a.effective, a.end, list(a.purposes), a.small_cell_threshold])
            _comment(con, "snapshot.ops.agreements", descriptions.get(("ops", "agreements"), {}),
                     {c: Disclosure("plain") for c in AGREEMENTS_COLUMNS})
            _comment(con, "snapshot.ops.snapshot_info", descriptions.get(("ops", "snapshot_info"), {}),
                     {c: snapshot_info_disclosure(c) for c in SNAPSHOT_INFO_COLUMNS})
        con.execute("CHECKPOINT snapshot")
    except BaseException:
        con.execute("DETACH snapshot")
        tmp.unlink(missing_ok=True)
        raise
    finally:
        try:
            con.execute(f"DROP TABLE IF EXISTS {PSEUDONYM_TABLE}")
            for function in functions:
                con.remove_function(function)
        except duckdb.Error:
            pass  # a failure above left a result open; the connection's end drops them anyway
    con.execute("DETACH snapshot")
    replace_durably(tmp, target)
    return counts


def _comment(con: duckdb.DuckDBPyConnection, name: str, text: dict, columns: dict[str, Disclosure]) -> None:
    if text.get(""):
        con.execute(f"COMMENT ON TABLE {name} IS {_literal(text[''])}")
    for column, disclosure in columns.items():
        described = " ".join(filter(None, [text.get(column), f"Disclosure: {disclosure.label()}."]))
        con.execute(f"COMMENT ON COLUMN {name}.{sql_identifier(column)} IS {_literal(described)}")


def publish(settings: Settings, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, int]:
    """Publish the snapshot and its data dictionary from the warehouse.

    Called by the build with its own (writer) connection, after the build has
    committed; on its own it opens the warehouse as the writer, because an
    extra read-only reader would block the pipeline. Needs the master key: the
    snapshot's pseudonyms are keyed.
    """
    from transforms.dictionary import write_dictionary

    if con is None:
        from leadhub.core.warehouse import connect

        with connect(settings.warehouse_path) as own:
            return publish(settings, own)
    key = MasterKey.load(settings.key_file)
    drawn, left_out = evaluation_agreements(con)
    disclosures = published_disclosures(con)
    tables, descriptions, levels = dictionary_inputs(con, disclosures)
    counts = publish_snapshot(con, snapshot_path(settings), key, descriptions, drawn, left_out, disclosures)
    # The dictionary describes what the snapshot holds: not the tables an agreement left out.
    shown = set(counts) | {"ops.snapshot_info", "ops.agreements"}
    tables = {table: columns for table, columns in tables.items() if ".".join(table) in shown}
    write_dictionary(published_dir(settings), descriptions, tables, levels)
    return counts


def dictionary_inputs(con: duckdb.DuckDBPyConnection, disclosures: dict | None = None) -> tuple[dict, dict, dict]:
    """(tables, descriptions, disclosure labels) of the snapshot of the warehouse (or snapshot)
    open on ``con``, as transforms.dictionary.write_dictionary takes them; ``disclosures`` is
    ``published_disclosures(con)`` when the caller already has it."""
    from transforms.dictionary import describe

    disclosures = dict(published_disclosures(con) if disclosures is None else disclosures)
    disclosures[("ops", "snapshot_info")] = {c: snapshot_info_disclosure(c) for c in SNAPSHOT_INFO_COLUMNS}
    disclosures[("ops", "agreements")] = {c: Disclosure("plain") for c in AGREEMENTS_COLUMNS}
    tables = {table: list(columns) for table, columns in disclosures.items()}
    levels = {table: {c: d.label() for c, d in columns.items()} for table, columns in disclosures.items()}
    return tables, describe(tables), levels
