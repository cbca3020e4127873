"""A file validated in several batches gets the verdict it gets validated whole."""

from connectors.inbox import Intake
from expectations import file_check
from leadhub.pipeline import ingest_agency

# Nine referrals: R000000 again on row 8 (a key repeated across batches), sex "Q" on rows 3 and 9.
# Expected, worked out by hand: referral_id unique: 2 of 9 rows fail (rows 1 and 8), 22.2%;
# sex in set: 2 of 9 (rows 3 and 9); row count 9.
SQL = ("SELECT expectation || ':' || coalesce(column_name, ''), success, unexpected_count, checked_count, observed "
       "FROM ops.validation_results WHERE batch_id = ? ORDER BY 1")


def _validated(settings, key, deliveries, monkeypatch, batch_chunks):
    """Intake of the nine rows in chunks of two (five chunks), ``batch_chunks`` chunks per batch."""
    rows = deliveries.referral_rows(9, sex=lambda i: "Q" if i in (2, 8) else "M")
    rows[7]["referral_id"] = rows[0]["referral_id"]
    deliveries.drop(settings, "police_referrals_20240101.csv", deliveries.to_csv(rows))
    monkeypatch.setattr(Intake, "chunk_rows", 2)
    monkeypatch.setattr(file_check, "BATCH_CHUNKS", batch_chunks)
    [outcome] = ingest_agency(settings, "police", key)
    assert outcome["status"] == "quarantined" and outcome["rows"] == 9
    return {name: rest for name, *rest in deliveries.query(settings, SQL, [outcome["batch_id"]])}


def test_batches_validated_apart_give_the_whole_files_verdict(settings, master_key, deliveries, monkeypatch):
    # one chunk per batch: five batches, at most BACKLOG of them handed over at a time, and the
    # key and row-count checks done in SQL across them
    batched = _validated(settings, master_key, deliveries, monkeypatch, batch_chunks=1)
    assert batched["expect_column_values_to_be_unique:referral_id"] == [
        False, 2, 9, "unexpected 2 of 9 rows, 22.2%; rows 1, 8"]
    assert batched["expect_column_values_to_be_in_set:sex"] == [
        False, 2, 9, "unexpected 2 of 9 rows, 22.2%; rows 3, 9"]
    assert batched["expect_table_row_count_to_be_between:"][0] is True
    assert batched["expect_table_row_count_to_be_between:"][3] == "observed 9"

    # the same file again (a quarantined file may be sent again), validated as one batch by GX alone
    whole = _validated(settings, master_key, deliveries, monkeypatch, batch_chunks=100)
    assert whole == batched and len(whole) > 20
