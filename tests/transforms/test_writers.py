"""Two writing commands started together on a real hub: the second waits for the first."""

from __future__ import annotations

import subprocess
import sys

import duckdb


def test_ingest_and_build_started_together_both_finish(demo_hub, demo_files, tools, tmp_path):
    hub = tools.clone_hub(demo_hub, tmp_path / "hub")
    tools.drop(hub, [tools.extra_referrals(demo_files, tmp_path / "new")])
    env = {**tools.hub_env(hub), "LEADHUB_LOCK_TIMEOUT_SECONDS": "600"}
    procs = [subprocess.Popen([sys.executable, "-m", "leadhub.cli", command], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for command in ("build", "ingest")]
    results = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert not any("Traceback" in err or "Could not set lock" in err for _, err in results)
    # The new delivery was taken (12 referrals more than the template hub holds).
    count = "SELECT count(*) FROM current.police_referrals"
    with duckdb.connect(str(hub.warehouse_path), read_only=True) as con:
        now = con.execute(count).fetchall()[0][0]
    with duckdb.connect(str(demo_hub.warehouse_path), read_only=True) as con:
        before = con.execute(count).fetchall()[0][0]
    assert now == before + 12
