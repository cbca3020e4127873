"""Row removal on a warehouse loaded through real intake: only the named rows go, and are counted."""

from leadhub.core.contracts import load_contracts
from leadhub.core.files import transaction
from leadhub.core.redact import batch_row_counts, remove_batches, remove_records
from leadhub.core.warehouse import connect
from leadhub.pipeline import ingest_agency
from tests.transforms.test_link import REF_HEADER, drop, load, row
from transforms.link import link_people
from transforms.model import run_models


def _two_referral_batches(settings, master_key):
    """Batch 1: R1, R2 (and one jail booking); batch 2 re-sends R1 corrected and adds R3."""
    load(settings, master_key, row("P1", "Quill", "Ada", "1975-01-01", "", 1) + row("P2", "Okafor", "Ben", "1970-05-05", "", 2),
         "")
    drop(settings, "police", "police_referrals_20240102.csv",
         REF_HEADER + row("P1", "Quill", "Ada", "1975-01-01", "", 1) .replace("2022-03-01", "2022-03-02")
         + row("P3", "Lind", "Cy", "1980-02-02", "", 3))
    assert [o["status"] for o in ingest_agency(settings, "police", master_key)] == ["accepted"]
    with connect(settings.warehouse_path) as con:
        with transaction(con):
            link_people(con)
            run_models(con)
        first, second = [b for (b,) in con.execute(
            "SELECT batch_id FROM ops.batches WHERE contract = 'police_referrals' ORDER BY loaded_at").fetchall()]
    return first, second


def test_remove_batches_deletes_that_batchs_staging_and_history_rows_only(settings, master_key):
    first, second = _two_referral_batches(settings, master_key)
    with connect(settings.warehouse_path) as con:
        # Batch 1 holds R1, R2; history holds R1's first version (replaced by batch 2).
        assert batch_row_counts(con, [first]) == {"staging.police_referrals": 2, "core.record_history": 1}
        with transaction(con):
            removed = remove_batches(con, [first])
        assert removed == {"staging.police_referrals": 2, "core.record_history": 1}
        left = con.execute("SELECT referral_id, _batch_id FROM staging.police_referrals ORDER BY 1").fetchall()
        assert left == [("R1", second), ("R3", second)]
        assert con.execute("SELECT count(*) FROM core.record_history WHERE last_batch_id = ?",
                           [first]).fetchall()[0][0] == 0
        # The batch's ledger and batch entries stay: counts, no rows.
        assert con.execute("SELECT row_count FROM ops.batches WHERE batch_id = ?", [first]).fetchall()[0][0] == 2


def test_remove_records_deletes_every_version_of_the_named_keys(settings, master_key):
    _two_referral_batches(settings, master_key)
    contract = load_contracts()["police_referrals"]
    with connect(settings.warehouse_path) as con:
        with transaction(con):
            removed = remove_records(con, contract, [("R1",), ("R9",)])  # R9 was never delivered
        # R1: one row in each batch, and one history row (its first version).
        assert removed == {"staging.police_referrals": 2, "core.record_history": 1}
        assert con.execute("SELECT list(referral_id ORDER BY referral_id) FROM staging.police_referrals"
                           ).fetchall()[0][0] == ["R2", "R3"]
        assert con.execute("SELECT count(*) FROM core.record_history WHERE record_key = 'R1'").fetchall()[0][0] == 0
