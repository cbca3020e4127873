"""The county benchmark at a tiny size: every step runs for real and the table adds up."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import county  # noqa: E402

from leadhub.core.contracts import load_contracts  # noqa: E402

PEOPLE = 400     # the smallest county that holds the default 203 LEAD + 115 comparison people


def test_every_step_runs_and_rows_add_up(tmp_path):
    results = county.run(PEOPLE, 7, tmp_path, timeout=600, echo=lambda _: None)
    assert set(results) == {*county.STEPS, county.BASELINE}
    for step, r in results.items():
        assert r["rows"] > 0 and r["seconds"] > 0 and r["peak_mb"] > 0, step

    counts = results["split"]["counts"]
    full = {name for name, c in load_contracts().items() if c.history == "full"}
    earlier = sum(c["earlier"] for c in counts.values())
    later = sum(c["later"] for c in counts.values())
    generated = results["generate"]["rows"]
    # Incremental extracts are cut in two (earlier + later = generated); full-history ones are
    # sent whole in the later delivery and, cut at November, once more in the earlier one.
    assert generated == later + sum(counts[n]["earlier"] for n in counts if n not in full)
    # The bare load reads every file of both deliveries: every row of the split, once per file.
    assert results[county.BASELINE]["rows"] == earlier + later == results["split"]["rows"]
    # The first intake accepts the whole first delivery, and the first build works from it.
    assert results["intake"]["rows"] == earlier == results["build"]["rows"]
    # The next month: each later file is loaded, or a full-history one sent unchanged is a
    # duplicate (nothing loaded); after it the warehouse holds the county as generated.
    unchanged = sum(counts[n]["later"] for n in full if counts[n]["later"] == counts[n]["earlier"])
    assert results["intake next month"]["rows"] == later - unchanged
    assert results["build next month"]["rows"] == generated == results["report"]["rows"]

    lines = county.table(results)
    assert [line.split("  ")[0].strip() for line in lines[2:2 + len(county.STEPS) + 1]] == \
        [*county.STEPS, county.BASELINE]
    baseline_line = lines[2 + len(county.STEPS)]
    assert f"{earlier + later:,}" in baseline_line and baseline_line.rstrip().endswith("1.0")
