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
        for schema, table in tables - {("ops", "snapshot_info"), ("ops", "agreements")}:
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


def test_snapshot_shows_record_numbers_as_pseudonyms_and_dates_to_the_year(demo_hub):
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{snapshot_path(demo_hub)}' AS snap (READ_ONLY)")
        con.execute(f"ATTACH '{demo_hub.warehouse_path}' AS wh (READ_ONLY)")
        # Record numbers: 24 hex digits, none of them a warehouse (clear) number ...
        published = [a for (a,) in con.execute("SELECT arrest_id FROM snap.core.arrest").fetchall()]
        assert published and all(len(a) == 24 and int(a, 16) >= 0 for a in published)
        assert con.execute("SELECT count(*) FROM snap.core.arrest s JOIN wh.core.arrest w "
                           "ON s.arrest_id = w.arrest_id").fetchone()[0] == 0
        # ... yet one number gets one pseudonym everywhere: bookings still join their arrests.
        joins = "SELECT count(*) FROM {0}.core.booking b JOIN {0}.core.arrest a ON a.arrest_id = b.arrest_id"
        assert con.execute(joins.format("snap")).fetchone()[0] == con.execute(joins.format("wh")).fetchone()[0] > 0
        officers = con.execute("SELECT count(DISTINCT officer_id) FROM snap.core.referral").fetchone()[0]
        assert officers == con.execute("SELECT count(DISTINCT officer_id) FROM wh.core.referral").fetchone()[0]
        # Dates and times: to the year, as DATE (the time of day is gone).
        types = dict(con.execute("""SELECT table_name || '.' || column_name, data_type FROM duckdb_columns()
            WHERE database_name = 'snap' AND schema_name IN ('core', 'marts')""").fetchall())
        assert types["booking.booking_ts"] == types["booking.release_ts"] == "DATE"
        for table, column in [("core.booking", "booking_ts"), ("core.arrest", "arrest_date"),
                              ("core.treatment_episode", "exit_date"), ("marts.cohort", "index_date"),
                              ("marts.first_contact", "first_contact_date"), ("core.person", "first_seen")]:
            off_year = con.execute(f"SELECT count(*) FROM snap.{table} WHERE {column} IS NOT NULL "
                                   f"AND strftime({column}, '%m-%d') <> '01-01'").fetchone()[0]
            assert off_year == 0, (table, column)
        # Measures computed from exact dates in the warehouse keep their values; counts per month
        # keep their months.
        for table in ("marts.outcomes_summary", "marts.jc_jail", "marts.referrals_monthly"):
            diff = con.execute(f"SELECT count(*) FROM (SELECT * FROM wh.{table} EXCEPT ALL "
                               f"SELECT * FROM snap.{table})").fetchone()[0]
            assert diff == 0, table
        jail = "SELECT sum(jail_days) FROM {0}.core.booking"
        assert con.execute(jail.format("snap")).fetchone()[0] == con.execute(jail.format("wh")).fetchone()[0]
    finally:
        con.close()


def test_snapshot_info_gives_each_sources_period_and_latest_receipt(demo_hub, demo_files):
    import csv
    from datetime import date, datetime

    with duckdb.connect(str(snapshot_path(demo_hub)), read_only=True) as con:
        info = {r[0]: r[1:] for r in con.execute(
            "SELECT source, period_first_month, period_last_month, current_rows, last_received_at "
            "FROM ops.snapshot_info").fetchall()}
        published_at = {p for (p,) in con.execute("SELECT published_at FROM ops.snapshot_info").fetchall()}
    with duckdb.connect(str(demo_hub.warehouse_path), read_only=True) as con:
        received = dict(con.execute("SELECT contract, max(received_at) FROM ops.batches GROUP BY 1").fetchall())
    assert set(info) == set(received) and len(published_at) == 1
    # The period comes from the data itself: the clear arrests file's first and last arrest month.
    [arrests] = (demo_files / "inbox" / "police").glob("police_arrests_*.csv")
    with open(arrests, newline="") as f:
        days = [datetime.strptime(r["arrest_date"], "%Y-%m-%d").date() for r in csv.DictReader(f)]
    first, last, rows, when = info["police_arrests"]
    assert (first, last) == (min(days).replace(day=1), max(days).replace(day=1))
    assert rows == len(days) and when == received["police_arrests"]
    assert all(isinstance(v[0], date) and v[0] <= v[1] for v in info.values())


def test_snapshot_file_names_keep_only_a_date_stamp(demo_hub, demo_files, tools, tmp_path):
    from transforms.publish import publish

    hub = tools.clone_hub(demo_hub, tmp_path / "hub")
    # An agency names a correction after the record it corrects.
    tools.drop(hub, [tools.extra_referrals(demo_files, tmp_path / "new", stamp="R7731-fix")])
    assert [o["status"] for o in tools.ingest_all(hub)] == ["accepted"]
    publish(hub)
    with duckdb.connect(str(snapshot_path(hub)), read_only=True) as con:
        names = {n for (n,) in con.execute("SELECT file_name FROM ops.file_ledger").fetchall()}
        quality = {n for (n,) in con.execute("SELECT DISTINCT file_name FROM ops.data_quality").fetchall()}
        texts = " ".join(str(v) for row in con.execute("SELECT * FROM ops.file_ledger").fetchall() for v in row)
        columns = {c for (c,) in con.execute("SELECT column_name FROM duckdb_columns() "
                                             "WHERE table_name = 'file_ledger'").fetchall()}
    assert "police_referrals_*.csv" in names and "police_arrests_20241231.csv" in names
    assert not [n for n in names | quality if n and "R7731" in n] and "R7731" not in texts
    assert "archive_path" not in columns
