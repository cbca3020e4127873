"""Retention on a hub loaded through real intake: an expired batch leaves no row anywhere, and key
rotation afterwards replays only what is left."""

from datetime import timedelta

import duckdb

from leadhub import maintenance, pipeline
from leadhub.core.keys import MasterKey, create_key_file
from leadhub.core.warehouse import connect, utcnow
from leadhub.pipeline import ingest_agency
from tests.transforms.test_link import REF_HEADER, drop, load, row
from transforms.crosswalk import build_crosswalk, lookup
from transforms.rotate import rotate_key


def varchar_hits(path, values: set[str]) -> list[str]:
    """'schema.table.column' of every text column in the database at ``path`` holding one of ``values``."""
    hits = []
    with duckdb.connect(str(path), read_only=True) as con:
        columns = con.execute("SELECT schema_name, table_name, column_name FROM duckdb_columns() "
                              "WHERE database_name = current_database() AND data_type = 'VARCHAR'").fetchall()
        for schema, table, column in columns:
            n = con.execute(f'SELECT count(*) FROM "{schema}"."{table}" WHERE "{column}" IN '
                            "(SELECT unnest(?::VARCHAR[]))", [sorted(values)]).fetchall()[0][0]
            if n:
                hits.append(f"{schema}.{table}.{column}")
    return hits


def test_an_expired_batch_leaves_no_row_in_warehouse_or_snapshot_and_rotation_succeeds(settings, master_key,
                                                                                       tmp_path):
    # Batch 1: referrals R1 (P1) and R2 (P2); batch 2, received later: R3 (P3), someone else.
    load(settings, master_key, row("P1", "Quill", "Ada", "1975-01-01", "", 1)
         + row("P2", "Okafor", "Ben", "1970-05-05", "", 2), "")
    drop(settings, "police", "police_referrals_20240102.csv",
         REF_HEADER + row("P3", "Lind", "Cy", "1980-02-02", "", 3))
    assert [o["status"] for o in ingest_agency(settings, "police", master_key)] == ["accepted"]
    pipeline.build(settings)  # links, models and the published snapshot hold all three referrals
    build_crosswalk(settings, master_key)
    snapshot = settings.data_dir / "published" / "lead.duckdb"
    with connect(settings.warehouse_path) as con:
        (first, file_id), (second, _) = con.execute(
            "SELECT batch_id, file_id FROM ops.batches WHERE contract = 'police_referrals' "
            "ORDER BY loaded_at").fetchall()
        gone = {v for r in con.execute("SELECT referral_id, person_token FROM staging.police_referrals "
                                       "WHERE _batch_id = ?", [first]).fetchall() for v in r}
        kept = {v for r in con.execute("SELECT referral_id, person_token FROM staging.police_referrals "
                                       "WHERE _batch_id = ?", [second]).fetchall() for v in r}
        # The snapshot shows referral ids re-keyed, so it is searched for the people's person keys.
        people = {k for (k,) in con.execute("SELECT person_key FROM core.person_link WHERE person_token IN "
                                            "(SELECT unnest(?::VARCHAR[]))", [sorted(gone)]).fetchall()}
        con.execute("UPDATE ops.file_ledger SET received_at = ? WHERE file_id = ?",
                    [utcnow() - timedelta(days=40), file_id])
    assert len(gone) == 4 and not gone & kept                 # R1, R2 and their two person tokens
    assert "core.person_link.person_token" in varchar_hits(settings.warehouse_path, gone)
    assert len(people) == 2 and "core.referral.person_key" in varchar_hits(snapshot, people)
    assert sorted(i for k in people for i in lookup(settings, master_key, k, "check", who="s")) == [
        ("police", "P1"), ("police", "P2")]

    result = maintenance.archive_retention(settings, 30, who="steward-a", reason="retention test")
    assert [e["batch_id"] for e in result["expired"]] == [first]
    assert result["rows"] == {"staging.police_referrals": 2}
    assert varchar_hits(settings.warehouse_path, gone | people) == []
    assert varchar_hits(snapshot, gone | people) == []
    with duckdb.connect(str(snapshot), read_only=True) as snap:  # the later batch is still published
        assert snap.execute("SELECT count(*) FROM core.referral").fetchall() == [(1,)]
    with connect(settings.warehouse_path) as con:
        assert con.execute("SELECT status FROM ops.file_ledger WHERE file_id = ?", [file_id]).fetchall() == [
            ("expired",)]
    # The steward's crosswalk no longer leads from their person keys to their agency ids.
    assert "crosswalk" in result
    assert [lookup(settings, master_key, k, "check", who="s") for k in sorted(people)] == [[], []]

    # Rotation replays the batches that hold rows (police batch 2 and the empty jail batch) and
    # never asks for the deleted original.
    new = MasterKey.load(create_key_file(tmp_path / "new" / "master.key"))
    counts = rotate_key(settings, master_key, new)
    assert (counts["batches"], counts["rows"]) == (2, 1)
    with connect(settings.warehouse_path) as con:
        assert con.execute("SELECT referral_id, key_id FROM staging.police_referrals").fetchall() == [
            ("R3", new.key_id)]
