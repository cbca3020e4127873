"""Benchmark: a whole synthetic county end to end, next to DuckDB loading the same files bare.

One run, one table. The synthetic generator (``synthetic``) writes the county for ``--people``
people (1,000,000 by default: about ten million rows); ``synthetic.deliveries.split_last_month``
turns it into two monthly deliveries (everything up to November, then December). Then, each in
its own child process so its peak memory is its alone:

  generate            the generator, into the data directory's inboxes;
  split               the split into the first delivery and the next month's;
  intake              ``leadhub.pipeline.ingest`` of every agency's first delivery (what
                      ``leadhub ingest`` runs: hash, encrypted archive, parse, pseudonymize,
                      validate, load, ledger); every file must be accepted, or, for a
                      full-history extract sent again unchanged, recorded as a duplicate;
  build               ``leadhub.pipeline.build`` (link, core tables and marts, checks, publish);
  intake next month   the next month's files dropped into the inboxes and taken in;
  build next month    the second build, from the first one's person keys;
  report              ``leadhub.pipeline.report`` (HTML and CSV tables);
  duckdb bare load    the baseline: ``CREATE TABLE AS SELECT * FROM read_csv(file)`` of every
                      file of both deliveries into one fresh DuckDB file, times summed.

Seconds are taken inside each child around the measured work only; peak memory is the child's
``ru_maxrss`` from ``os.wait4`` (interpreter and imports included). Rows are what each step
handled: files' rows for generate, split, intake and the bare load; the warehouse's current rows
for the builds and the report. The last column is each step's seconds over the bare load's.

The run uses a fresh random master key (never the demo key) and a scratch data directory,
removed at the end unless ``--keep``.

    .venv/bin/python bench/county.py --people 10000             # about a minute
    .venv/bin/python bench/county.py --people 100000            # about ten minutes on 2 cores
    nice -n 10 .venv/bin/python bench/county.py                 # 1,000,000 people
    .venv/bin/python bench/county.py --people 1000000 --until intake --timeout 3600 --keep
    .venv/bin/python bench/county.py --people 1000000 --resume /tmp/leadhub-bench-county-XXXX

``--until`` stops after a step (the bare load always runs); a step past ``--timeout`` is stopped
and the table shows the steps before it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

PEOPLE = 1_000_000
SEED = 7
STEPS = ("generate", "split", "intake", "build", "intake next month", "build next month", "report")
BASELINE = "duckdb bare load"
HUB_STEPS = STEPS[2:]


# --- the measured children -----------------------------------------------------------------------

def _settings(work: Path):
    os.environ["LEADHUB_DATA_DIR"] = str(work / "data")
    os.environ["LEADHUB_KEY_FILE"] = str(work / "keys" / "master.key")
    os.environ["LEADHUB_MAX_FILE_MB"] = str(1 << 20)
    os.environ.pop("LEADHUB_MASTER_KEY", None)
    os.environ.pop("LEADHUB_KEY_PROVIDER", None)
    os.environ.pop("LEADHUB_DEMO", None)
    from leadhub.core.settings import Settings

    return Settings.from_env()


def _files(root: Path) -> list[str]:
    return sorted(str(p) for p in root.glob("*/*") if p.is_file())


def child_generate(work: Path, people: int, seed: int) -> dict:
    from leadhub.core.keys import create_key_file
    from synthetic import generate

    settings = _settings(work)
    settings.ensure_dirs()
    create_key_file(settings.key_file)
    start = time.perf_counter()
    summary = generate(settings.inbox_dir, settings.answers_dir, people=people, seed=seed)
    return {"rows": summary["rows_total"], "seconds": time.perf_counter() - start}


def child_split(work: Path) -> dict:
    from synthetic.deliveries import split_last_month

    settings = _settings(work)
    start = time.perf_counter()
    counts = split_last_month(settings.inbox_dir, work / "next_month")
    seconds = time.perf_counter() - start
    return {"rows": sum(c["earlier"] for c in counts.values()) + sum(c["later"] for c in counts.values()),
            "seconds": seconds, "counts": counts,
            "first_files": _files(settings.inbox_dir), "next_files": _files(work / "next_month")}


def child_intake(work: Path, next_month: bool) -> dict:
    from leadhub import pipeline
    from leadhub.core.contracts import agencies

    settings = _settings(work)
    if next_month:  # the agencies' drop, not part of the hub's work
        for path in sorted((work / "next_month").glob("*/*")):
            inbox = settings.inbox(path.parent.name)
            inbox.mkdir(parents=True, exist_ok=True)
            os.replace(path, inbox / path.name)
    start = time.perf_counter()
    outcomes = [o for agency in agencies() for o in pipeline.ingest(settings, agency)]
    seconds = time.perf_counter() - start
    # A full-history extract with nothing new is sent again unchanged: recorded as a duplicate.
    refused = [o for o in outcomes if o["status"] not in ("accepted", "duplicate")]
    if refused:
        raise SystemExit(f"{len(refused)} file(s) not accepted, first {refused[0]['file']}: {refused[0]['reason']}")
    return {"rows": sum(o["rows"] or 0 for o in outcomes if o["status"] == "accepted"), "seconds": seconds,
            "files": len(outcomes), "duplicates": sum(o["status"] == "duplicate" for o in outcomes)}


def _current_rows(settings) -> int:
    """Rows the build worked from: every contract's current rows (read after the clock stops)."""
    from leadhub.core.contracts import load_contracts
    from leadhub.core.warehouse import connect

    with connect(settings.warehouse_path, read_only=True) as con:
        return sum(con.execute(f"SELECT count(*) FROM current.{name}").fetchone()[0]
                   for name in load_contracts())


def child_build(work: Path) -> dict:
    from leadhub import pipeline

    settings = _settings(work)
    start = time.perf_counter()
    counts = pipeline.build(settings)
    seconds = time.perf_counter() - start
    return {"rows": _current_rows(settings), "seconds": seconds,
            "persons": counts.get("link.persons"), "checks_failed": counts.get("checks.failed")}


def child_report(work: Path) -> dict:
    from leadhub import pipeline

    settings = _settings(work)
    start = time.perf_counter()
    paths = pipeline.report(settings)
    seconds = time.perf_counter() - start
    if not Path(paths["html"]).is_file():
        raise SystemExit(f"the report wrote no HTML at {paths['html']}")
    return {"rows": _current_rows(settings), "seconds": seconds}


def child_baseline(work: Path, files: list[str]) -> dict:
    """DuckDB alone: each file into its own table of one fresh database, read as DuckDB reads it."""
    import duckdb

    from leadhub.core.contracts import contract_for_file

    db = work / "bare.duckdb"
    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    rows, seconds = 0, 0.0
    for i, file in enumerate(files):
        path = Path(file)
        fmt = contract_for_file(path.parent.name, path.name).format
        start = time.perf_counter()
        con.execute(f"CREATE TABLE t{i} AS SELECT * FROM read_csv(?, delim = ?, quote = ?, header = ?)",
                    [file, fmt.delimiter, fmt.quotechar, fmt.header])
        seconds += time.perf_counter() - start
        rows += con.execute(f"SELECT count(*) FROM t{i}").fetchone()[0]
    con.close()
    db.unlink()
    return {"rows": rows, "seconds": seconds}


def _child(kind: str, work: Path, extra: list[str]) -> dict:
    if kind == "generate":
        return child_generate(work, int(extra[0]), int(extra[1]))
    if kind == "split":
        return child_split(work)
    if kind in ("intake", "intake next month"):
        return child_intake(work, kind != "intake")
    if kind in ("build", "build next month"):
        return child_build(work)
    if kind == "report":
        return child_report(work)
    return child_baseline(work, json.loads(Path(extra[0]).read_text()))


# --- the run -------------------------------------------------------------------------------------

class StepFailed(Exception):
    """A step failed or ran past the timeout; ``results`` holds the steps measured before it."""

    results: dict[str, dict] = {}


def measure(kind: str, work: Path, timeout: float | None, *extra: str) -> dict:
    """Run one step in a child of its own; its result plus its peak RSS (MB) from ``os.wait4``."""
    stem = work / kind.replace(" ", "_")
    log, answer = stem.with_suffix(".log"), stem.with_suffix(".json")
    with open(log, "w") as err, open(answer, "w") as out:
        proc = subprocess.Popen([sys.executable, __file__, "--child", kind, str(work), *extra],
                                stdout=out, stderr=err, text=True, start_new_session=True)
        deadline = None if timeout is None else time.monotonic() + timeout
        killed = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.monotonic() > deadline and not killed:
                os.killpg(proc.pid, signal.SIGKILL)   # its own session: the child and what it started
                killed = True
            time.sleep(0.2)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if killed:
        raise StepFailed(f"{kind}: stopped after {timeout:.0f} s")
    if proc.returncode != 0:
        tail = log.read_text()[-3000:]
        raise StepFailed(f"{kind}: child failed (exit {proc.returncode}); its last output:\n{tail}")
    result = json.loads(answer.read_text().strip().splitlines()[-1])
    result["peak_mb"] = usage.ru_maxrss / 1024  # Linux reports kilobytes
    return result


def run(people: int, seed: int, work: Path, timeout: float | None, echo=print,
        until: str = STEPS[-1]) -> dict[str, dict]:
    """The steps in order up to ``until``, the baseline right after the split; returns
    {step: result}. Stops at the first failure (StepFailed, with the results so far)."""
    saved = work / "results.json"  # each step's result as it ends, so a stopped run can resume
    results: dict[str, dict] = json.loads(saved.read_text()) if saved.exists() else {}

    def step(name: str, *extra: str) -> dict:
        if name in results:
            echo(f"{name}: measured earlier, at git {results[name].get('commit', 'unknown')}")
            return results[name]
        echo(f"{name} ...")
        try:
            r = results[name] = measure(name, work, timeout, *extra)
        except StepFailed as exc:
            exc.results = results
            raise
        r["commit"] = _commit()
        saved.write_text(json.dumps(results, indent=1))
        echo(f"  {r['rows']:,} rows in {r['seconds']:.1f} s, peak {r['peak_mb']:,.0f} MB")
        return r

    settings = work / "county.json"  # what a resumed run carries on with
    if not settings.exists():
        settings.write_text(json.dumps({"people": people, "seed": seed}))
    step("generate", str(people), str(seed))
    split = step("split")
    # The baseline reads the delivered files before intake archives them and empties the inboxes.
    files = work / "bare_files.json"
    files.write_text(json.dumps(split["first_files"] + split["next_files"]))
    step(BASELINE, str(files))
    for name in STEPS[2:STEPS.index(until) + 1]:
        step(name)
    return results


def table(results: dict[str, dict]) -> list[str]:
    """The printed table: one line per step measured, the baseline, and the hub's steps summed."""
    base = results[BASELINE]
    head = f"{'step':<20} {'rows':>12} {'seconds':>9} {'rows/s':>11} {'peak MB':>8} {'x bare load':>12}"
    lines = [head, "-" * len(head)]

    def line(name, rows, seconds, peak):
        rate = f"{rows / seconds:,.0f}" if seconds > 0 else "-"
        ratio = seconds / base["seconds"] if base["seconds"] > 0 else float("inf")
        lines.append(f"{name:<20} {rows:>12,} {seconds:>9.1f} {rate:>11} {peak:>8,.0f} {ratio:>12.1f}")

    for step in (*STEPS, BASELINE):
        if step in results:
            r = results[step]
            line(step, r["rows"], r["seconds"], r["peak_mb"])
    hub = [s for s in HUB_STEPS if s in results]
    if len(hub) == len(HUB_STEPS):
        lines.append("-" * len(head))
        line("hub, intake..report", base["rows"], sum(results[s]["seconds"] for s in hub),
             max(results[s]["peak_mb"] for s in hub))
    return lines


def _commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).parent).stdout.strip() or "unknown"


def _footer(people: int, results: dict[str, dict]) -> str:
    commit = _commit()
    load = os.getloadavg()[0]
    at = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    persons = results.get("build", {}).get("persons")
    linked = f", {persons:,} linked persons after the first build" if persons else ""
    earlier = sorted({r["commit"] for r in results.values() if r.get("commit", commit) != commit})
    resumed = f" (steps resumed from a run at git {', '.join(earlier)})" if earlier else ""
    return (f"{people:,} people{linked}; "
            f"{at}, {os.cpu_count()} CPUs, load average {load:.1f} at the end, git {commit}{resumed}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--people", type=int, default=PEOPLE, help=f"people in the county (default {PEOPLE:,})")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--work", type=Path, help="scratch directory (default: a new temporary one); "
                   "needs room for the files about three times over (inbox, archive, warehouse)")
    p.add_argument("--keep", action="store_true", help="keep the scratch data directory and step logs")
    p.add_argument("--timeout", type=float, default=None, help="seconds allowed to each step (default: no limit)")
    p.add_argument("--until", choices=STEPS, default=STEPS[-1], help="stop after this step (default: report)")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    p.add_argument("--resume", type=Path, metavar="DIR", help="carry on a run kept with --keep in DIR "
                   "(the directory it printed): steps measured there are not run again")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        kind, work, *extra = args.child
        print(json.dumps(_child(kind, Path(work), extra)))
        return 0

    people, seed = args.people, args.seed
    if args.resume:
        work = args.resume
        if (work / "county.json").exists():  # the county the kept run generated, whatever --people says now
            kept = json.loads((work / "county.json").read_text())
            people, seed = kept["people"], kept["seed"]
        print(f"{people:,} people in {work}, resumed", flush=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="leadhub-bench-county-", dir=args.work))
        print(f"{people:,} people in {work}", flush=True)
    stopped = None
    try:
        results = run(people, seed, work, args.timeout, echo=lambda s: print(s, flush=True), until=args.until)
    except StepFailed as exc:
        results, stopped = exc.results, exc
        print(f"\nstopped: {exc}", file=sys.stderr)
    if BASELINE in results:
        print()
        print("\n".join(table(results)))
    print(f"\n{_footer(people, results)}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.keep or args.resume:  # a resumed run was kept to be carried on: it stays
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if stopped else 0


if __name__ == "__main__":
    sys.exit(main())
