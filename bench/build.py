"""Benchmark: the first and the second warehouse build at three county sizes, in one run.

A build links people and rebuilds core tables and marts (``leadhub.pipeline.build``,
what ``leadhub build`` runs, snapshot publication included). The second build starts from
the first one's person keys and hands them on to the new clusters; it must cost about what
the first does (target: second/first <= 1.5) at every size, or it is not linear in persons.

For each size the synthetic county (``synthetic``) is generated into a fresh data
directory and ingested; then each build runs in its own child process, so its peak memory
(the child's own ``ru_maxrss``, interpreter and imports included) is its alone. Times are
taken inside the child around ``build_warehouse`` only. A child that runs past ``--timeout``
is stopped and shown as such rather than holding up the table.

    .venv/bin/python bench/build.py --quick      # 2,000 / 5,000 / 20,000 persons: a few minutes
    .venv/bin/python bench/build.py              # 10,000 / 50,000 / 200,000 persons
    .venv/bin/python bench/build.py --sizes 20000,40000 --timeout 600
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = (10_000, 50_000, 200_000)
QUICK_SIZES = (2_000, 5_000, 20_000)
TARGET_RATIO = 1.5


# --- the measured children -----------------------------------------------------------------------

def _settings(work: Path):
    os.environ["LEADHUB_DATA_DIR"] = str(work / "data")
    os.environ["LEADHUB_KEY_FILE"] = str(work / "keys" / "master.key")
    os.environ["LEADHUB_MAX_FILE_MB"] = str(1 << 20)
    from leadhub.core.settings import Settings

    return Settings.from_env()


def child_ingest(work: Path, persons: int, seed: int) -> dict:
    """Generate the county into the inboxes and take every file through intake."""
    from leadhub.core.contracts import agencies
    from synthetic import generate
    from leadhub import pipeline
    from leadhub.core.keys import create_key_file

    settings = _settings(work)
    settings.ensure_dirs()
    create_key_file(settings.key_file)
    summary = generate(settings.inbox_dir, work / "answers", people=persons, seed=seed)
    start = time.perf_counter()
    outcomes = [o for agency in agencies() for o in pipeline.ingest(settings, agency)]
    seconds = time.perf_counter() - start
    refused = [o for o in outcomes if o["status"] != "accepted"]
    if refused:
        raise SystemExit(f"{len(refused)} benchmark file(s) not accepted: {refused[0]['reason']}")
    return {"rows": summary["rows_total"], "seconds": seconds}


def child_build(work: Path) -> dict:
    from leadhub.pipeline import build as build_warehouse

    settings = _settings(work)
    start = time.perf_counter()
    build_warehouse(settings)
    return {"seconds": time.perf_counter() - start}


def measure(kind: str, work: Path, timeout: float | None, *extra: str) -> dict | None:
    """Run one child; its result and its peak RSS (MB), or None when it ran past ``timeout``."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", kind, str(work), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)     # its own session: the child and whatever it started
        proc.communicate()
        return None
    if proc.returncode != 0:
        sys.stderr.write(err[-3000:])
        raise SystemExit(f"{kind} child failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])


# --- the run -------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", help=f"persons per county, comma-separated (default {','.join(map(str, SIZES))})")
    p.add_argument("--quick", action="store_true", help=f"sizes {','.join(map(str, QUICK_SIZES))}")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--timeout", type=float, default=1800, help="seconds allowed to each build (default 1800)")
    p.add_argument("--work", type=Path, help="scratch directory (default: a new temporary one)")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        kind, work, *extra = args.child
        if kind == "ingest":
            result = child_ingest(Path(work), int(extra[0]), int(extra[1]))
        else:
            result = child_build(Path(work))
        result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB
        print(json.dumps(result))
        return 0

    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(QUICK_SIZES if args.quick else SIZES)
    root = Path(tempfile.mkdtemp(prefix="leadhub-bench-build-", dir=args.work))
    measured = []
    try:
        for persons in sizes:
            work = root / str(persons)
            work.mkdir()
            print(f"{persons:,} persons: generating and ingesting ...", flush=True)
            ingest = measure("ingest", work, None, str(persons), str(args.seed))
            print(f"  {ingest['rows']:,} rows ingested in {ingest['seconds']:.0f} s; first build ...", flush=True)
            first = measure("build", work, args.timeout)
            print("  second build ...", flush=True)
            second = measure("build", work, args.timeout) if first else None
            measured.append((persons, ingest, first, second))
            shutil.rmtree(work, ignore_errors=True)
        _print_table(measured, args.timeout)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def _print_table(measured, timeout: float) -> None:
    head = (f"{'persons':>8} {'rows':>11} {'ingest s':>9} {'build 1 s':>10} {'peak MB':>8} "
            f"{'build 2 s':>10} {'peak MB':>8} {'2nd/1st':>8} {'1st s per 10k':>14}")
    print()
    print(head)
    print("-" * len(head))

    def secs(r):
        return f"{r['seconds']:.1f}" if r else f">{timeout:.0f}"

    def mem(r):
        return f"{r['peak_mb']:,.0f}" if r else "-"
    for persons, ingest, first, second in measured:
        ratio = f"{second['seconds'] / first['seconds']:.2f}" if first and second else "-"
        per = f"{first['seconds'] / persons * 10_000:.2f}" if first else "-"
        print(f"{persons:>8,} {ingest['rows']:>11,} {ingest['seconds']:>9.1f} {secs(first):>10} {mem(first):>8} "
              f"{secs(second):>10} {mem(second):>8} {ratio:>8} {per:>14}")
    ratios = [s["seconds"] / f["seconds"] for _, _, f, s in measured if f and s]
    complete = len(ratios) == len(measured)
    worst = max(ratios) if ratios else None
    verdict = ("met" if complete and worst <= TARGET_RATIO else "NOT met")
    print(f"\nsecond/first target <= {TARGET_RATIO}: {verdict}"
          + (f" (worst {worst:.2f})" if worst is not None else "")
          + ("" if complete else "; a build ran past the timeout"))


if __name__ == "__main__":
    sys.exit(main())
