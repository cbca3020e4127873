"""Validation counts are stored typed: new results carry them, and migration 4 fills them in
for rows written before it, parsing the old text once."""

import duckdb

from leadhub.core.warehouse import MIGRATIONS, OPS_DDL, migrate


def test_migration_4_types_the_counts_rows_and_rules_of_earlier_results(tmp_path):
    con = duckdb.connect(str(tmp_path / "v3.duckdb"))
    try:
        # A warehouse at version 3: results and a refusal recorded as text only.
        con.execute(OPS_DDL)
        for version, _, ddl in MIGRATIONS[1:3]:
            con.execute(ddl)
        con.execute("INSERT INTO ops.schema_version (version, applied_at) VALUES (1, now()), (2, now()), (3, now())")
        con.execute("""INSERT INTO ops.validation_results VALUES
            ('b1', 'police_referrals', 'expect_column_values_to_not_be_null', 'referral_id', 'critical', false,
             'unexpected 12 of 1,200 rows, 1.0%; first rows 3, 9, ...', TIMESTAMP '2024-01-01 00:00:00'),
            ('b1', 'police_referrals', 'expect_column_values_to_be_in_set', 'charge', 'warning', false,
             'unexpected 2 of 1,200 rows, 0.2%; rows 4, 1100', TIMESTAMP '2024-01-01 00:00:00'),
            ('b1', 'police_referrals', 'expect_table_row_count_to_be_between', NULL, 'critical', true,
             'observed 1,200', TIMESTAMP '2024-01-01 00:00:00')""")
        con.execute("""INSERT INTO ops.file_ledger (file_id, received_at, agency, extract, file_name, size_bytes,
            sha256, status, reason, updated_at) VALUES
            ('f1', now(), 'jail', 'bookings', 'jail_bookings_1.csv', 10, 'x', 'quarantined',
             'jail_bookings_1.csv: rule ''header'' failed: missing: booking_id', now()),
            ('f2', now(), 'jail', 'bookings', 'jail_bookings_2.csv', 10, 'y', 'quarantined',
             'jail_bookings_2.csv, row 7: rule ''encoding'' failed', now())""")
        migrate(con)
        # "unexpected 12 of 1,200" -> 12, 1200, listed rows [3, 9]; "observed 1,200" has no counts.
        assert con.execute("""SELECT column_name, unexpected_count, checked_count, row_numbers
            FROM ops.validation_results ORDER BY column_name NULLS LAST""").fetchall() == [
            ("charge", 2, 1200, [4, 1100]), ("referral_id", 12, 1200, [3, 9]), (None, None, None, None)]
        assert con.execute("SELECT file_id, rule, rule_detail FROM ops.file_ledger ORDER BY 1").fetchall() == [
            ("f1", "header", "missing: booking_id"), ("f2", "encoding", None)]
        # The view reads the typed columns, and shows the refused header as schema drift.
        assert con.execute("""SELECT kind, unexpected_count, checked_count, observed FROM ops.data_quality
            WHERE kind IN ('schema', 'batch') ORDER BY kind, unexpected_count NULLS LAST""").fetchall() == [
            ("batch", 2, 1200, "unexpected 2 of 1,200 rows, 0.2%; rows 4, 1100"),
            ("batch", 12, 1200, "unexpected 12 of 1,200 rows, 1.0%; first rows 3, 9, ..."),
            ("batch", None, None, "observed 1,200"),
            ("schema", None, None, "missing: booking_id")]
    finally:
        con.close()


def test_intake_stores_counts_summed_over_chunks_as_typed_columns(settings, master_key, deliveries, monkeypatch):
    import connectors.inbox as inbox
    from leadhub.pipeline import ingest_agency

    monkeypatch.setattr(inbox.Intake, "chunk_rows", 16)  # 40 rows: chunks of 16, 16 and 8
    # Unknown precincts on data rows 1, 2, 3 (first chunk) and 21 (second chunk); referral
    # R000005 (row 6) sent again on row 31 (third chunk), a duplicate only the batch sees.
    rows = deliveries.referral_rows(40, precinct=lambda i: "ATLANTIS" if i in (0, 1, 2, 20) else "NORTH",
                                    referral_id=lambda i: "R000005" if i == 30 else f"R{i:06d}")
    deliveries.drop(settings, "police_referrals_20240101.csv", deliveries.to_csv(rows))
    [outcome] = ingest_agency(settings, "police", master_key)
    assert outcome["status"] == "quarantined"
    failed = deliveries.query(settings, """SELECT column_name, unexpected_count, checked_count, row_numbers,
        observed FROM ops.validation_results WHERE NOT success ORDER BY column_name""")
    # precinct: 3 + 1 over the chunks, of 16 + 16 + 8 rows; referral_id: both rows of the pair.
    assert failed == [
        ("precinct", 4, 40, [1, 2, 3, 21], "unexpected 4 of 40 rows, 10.0%; rows 1, 2, 3, 21"),
        ("referral_id", 2, 40, [6, 31], "unexpected 2 of 40 rows, 5.0%; rows 6, 31")]
    passed = deliveries.query(settings, """SELECT count(*) FROM ops.validation_results
        WHERE success AND unexpected_count = 0 AND checked_count = 40 AND row_numbers IS NULL""")
    assert passed[0][0] > 0
    assert deliveries.query(settings, """SELECT unexpected_count, checked_count FROM ops.data_quality
        WHERE column_name = 'precinct' AND NOT success""") == [(4, 40)]
