"""The analysts' snapshot: what it holds, what it leaves out, and that it never blocks a build."""

from __future__ import annotations

import json
import subprocess
import sys

import duckdb

from transforms.publish import published_dir, snapshot_path

# Prints what a brand-new analyst connection sees; run in its own process because DuckDB
# hands a process that already has a file open the same database instance again.
READ_SNAPSHOT = """
import duckdb, json, sys
con = duckdb.connect(sys.argv[1], read_only=True)
print(json.dumps({
    "referrals": con.execute("SELECT count(*) FROM core.referral").fetchone()[0],
    "published_at": str(con.execute("SELECT published_at FROM ops.snapshot_info").fetchone()[0]),
}))
"""


def read_in_new_process(path) -> dict:
    done = subprocess.run([sys.executable, "-c", READ_SNAPSHOT, str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_snapshot_holds_core_marts_and_ops_but_no_tokens(demo_hub):
    snap = snapshot_path(demo_hub)
    assert snap.is_file()
    assert [p.name for p in published_dir(demo_hub).iterdir() if p.name.startswith(".")] == []
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{snap}' AS snap (READ_ONLY)")
        con.execute(f"ATTACH '{demo_hub.warehouse_path}' AS wh (READ_ONLY)")
        tables = {(s, t) for s, t in con.execute("""SELECT schema_name, table_name FROM duckdb_tables()
            WHERE database_name = 'snap'""").fetchall()}
        assert {s for s, _ in tables} == {"core", "marts", "ops"}
        for needed in [("core", "referral"), ("core", "person"), ("core", "record_history"),
                       ("marts", "cohort"), ("marts", "outcomes_summary"), ("ops", "file_ledger"),
                       ("ops", "batches"), ("ops", "validation_results"), ("ops", "snapshot_info")]:
            assert needed in tables, needed
        assert ("core", "person_link") not in tables
        columns = con.execute("""SELECT schema_name, table_name, column_name, data_type
            FROM duckdb_columns() WHERE database_name = 'snap'""").fetchall()
        assert not [c for c in columns if c[2].endswith(("_token", "_enc"))]
        # Same rows as the warehouse, table by table.
        for schema, table in tables - {("ops", "snapshot_info")}:
            published = con.execute(f'SELECT count(*) FROM snap.{schema}."{table}"').fetchone()[0]
            source = con.execute(f'SELECT count(*) FROM wh.{schema}."{table}"').fetchone()[0]
            assert published == source, (schema, table)
        # No pseudonym token appears as a value anywhere in the snapshot.
        con.execute("CREATE TEMP TABLE tokens AS SELECT person_token AS v FROM wh.core.person_link")
        assert con.execute("SELECT count(*) FROM tokens").fetchone()[0] > 500
        for schema, table, column, dtype in columns:
            if dtype == "VARCHAR":
                hits = con.execute(f'SELECT count(*) FROM snap.{schema}."{table}" '
                                   f'WHERE "{column}" IN (SELECT v FROM tokens)').fetchone()[0]
                assert hits == 0, (schema, table, column)
        linked = con.execute("SELECT count(DISTINCT person_key) FROM snap.marts.cohort").fetchone()[0]
        assert linked > 100
    finally:
        con.close()


def test_an_open_analyst_session_neither_blocks_a_rebuild_nor_sees_it(demo_hub, demo_files, tools,
                                                                      tmp_path):
    hub = tools.clone_hub(demo_hub, tmp_path / "hub")
    snap = snapshot_path(hub)
    analyst = duckdb.connect(str(snap), read_only=True)
    try:
        before = analyst.execute("SELECT count(*) FROM core.referral").fetchone()[0]
        published_at = analyst.execute("SELECT published_at FROM ops.snapshot_info").fetchone()[0]
        lead = analyst.execute("SELECT count(*) FROM marts.cohort WHERE cohort = 'lead'").fetchone()[0]

        # A new delivery arrives, is loaded, and the warehouse is rebuilt and republished
        # while the analyst's session stays open.
        tools.drop(hub, [tools.extra_referrals(demo_files, tmp_path / "new")])
        assert [o["status"] for o in tools.ingest_all(hub)] == ["accepted"]
        done = subprocess.run([sys.executable, "-m", "leadhub.cli", "build"], env=tools.hub_env(hub),
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

        # The open session still sees the old snapshot, whole and consistent ...
        assert analyst.execute("SELECT count(*) FROM core.referral").fetchone()[0] == before
        assert analyst.execute("SELECT published_at FROM ops.snapshot_info").fetchone()[0] == published_at
        # (a cross-table invariant of one build: every referred person is in the LEAD cohort)
        assert analyst.execute("""SELECT count(*) FROM marts.cohort WHERE cohort = 'lead'""").fetchone()[0] \
            == analyst.execute("""SELECT count(DISTINCT person_key) FROM core.referral""").fetchone()[0] \
            == lead
        # ... while a new connection sees the new one.
        fresh = read_in_new_process(snap)
        assert fresh["referrals"] == before + 12
        assert fresh["published_at"] != str(published_at)
    finally:
        analyst.close()
    assert sorted(p.name for p in published_dir(hub).iterdir()) == [
        "PART2_NOTICE.txt", "data_dictionary.html", "data_dictionary.md", "lead.duckdb"]
