"""The intake benchmark's choice of the pair it reports."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import intake  # noqa: E402


def _pair(duckdb_s: float, hub_s: float, duckdb_mb: float, hub_mb: float) -> dict:
    return {"ctas": {"seconds": duckdb_s, "peak_mb": duckdb_mb}, "hub": {"seconds": hub_s, "peak_mb": hub_mb}}


def test_the_pair_with_the_median_ratio_is_reported_with_the_largest_peaks():
    # Ratios 6.0 (6/1), 4.0 (8/2) and 5.0 (5/1): the median pair is the third, whatever the order.
    pairs = [_pair(1.0, 6.0, 100, 600), _pair(2.0, 8.0, 300, 500), _pair(1.0, 5.0, 200, 700)]
    chosen = intake.median_pair(pairs)
    assert chosen["hub"]["seconds"] == 5.0 and chosen["ctas"]["seconds"] == 1.0
    assert chosen["ratios"] == [4.0, 5.0, 6.0]
    assert chosen["hub"]["peak_mb"] == 700 and chosen["ctas"]["peak_mb"] == 300


def test_of_two_pairs_the_slower_ratio_is_reported():
    chosen = intake.median_pair([_pair(1.0, 5.0, 1, 1), _pair(1.0, 7.0, 1, 1)])
    assert chosen["hub"]["seconds"] == 7.0
