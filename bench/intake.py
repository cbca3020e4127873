"""Benchmark: the hub's intake of a large extract next to DuckDB reading the same file bare.

Shows that a large extract is taken in bounded memory: the same jail bookings
file is written at two sizes (1x and 4x by default) and, for each size, three
things run in their own child process so each peak RSS is that thing's alone:

  hub intake       connectors.inbox.ingest_agency on a fresh data directory: hash,
                   encrypted archive, parse, pseudonymize, GX validation per chunk,
                   load into DuckDB in one transaction (everything a real delivery gets);
  duckdb count     SELECT count(*) FROM read_csv(file);
  duckdb CTAS      CREATE TABLE ... AS SELECT * FROM read_csv(file) into a fresh DuckDB file.

Peak memory is ``ru_maxrss`` of each child (``os.wait4``), so it includes the
interpreter and its imports. Rows per second are timed inside the child,
around the measured work only.

The file is built from the synthetic generator's jail bookings (synthetic)
repeated with a suffix on booking_id so that the primary key stays unique and
every row passes validation.

    .venv/bin/python bench/intake.py --quick           # 25 MB and 100 MB, about a minute or two
    .venv/bin/python bench/intake.py                   # 512 MB and 2 GB (the issue's scale)
    .venv/bin/python bench/intake.py --size 256 --scales 1,2,4
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FILE_NAME = "jail_bookings_20241231.csv"


# --- building the file ---------------------------------------------------------------------------

def base_extract(work: Path, people: int, seed: int) -> Path:
    """The synthetic generator's jail bookings for ``people`` people."""
    from synthetic import generate

    generate(work / "gen" / "inbox", work / "gen" / "answers", people=people, seed=seed)
    return work / "gen" / "inbox" / "jail" / FILE_NAME


def build_file(base: Path, target: Path, size_bytes: int) -> int:
    """Repeat the base file's rows until ``size_bytes``; returns the data row count.

    Repetition r renames booking B123 to B123r<r>, so (booking_id, charge_seq)
    stays unique and the file passes every critical check like the original.
    """
    with open(base, encoding="utf-8") as f:
        header = f.readline()
        body = [line.split(",", 1) for line in f]
    rows = 0
    with open(target, "w", encoding="utf-8", newline="") as out:
        out.write(header)
        written, rep = len(header), 0
        while written < size_bytes:
            chunk = "".join(f"{b}r{rep},{rest}" for b, rest in body)
            out.write(chunk)
            written += len(chunk)
            rows += len(body)
            rep += 1
    return rows


# --- the measured children -----------------------------------------------------------------------

def child_hub(path: Path, work: Path) -> dict:
    """Run the real intake on one file in a fresh data directory."""
    os.environ["LEADHUB_DATA_DIR"] = str(work / "data")
    os.environ["LEADHUB_KEY_FILE"] = str(work / "keys" / "master.key")
    os.environ["LEADHUB_MAX_FILE_MB"] = str(1 << 20)
    from leadhub.pipeline import ingest_agency
    from expectations.validate import datasource
    from leadhub.core.keys import MasterKey, create_key_file
    from leadhub.core.settings import Settings

    settings = Settings.from_env()
    settings.ensure_dirs()
    create_key_file(settings.key_file)
    key = MasterKey.load(settings.key_file)
    datasource()  # GX context set up before the clock starts, as in a long-running worker
    inbox = settings.inbox("jail")
    inbox.mkdir(parents=True, exist_ok=True)
    dropped = inbox / FILE_NAME
    shutil.copyfile(path, dropped)  # a copy (intake refuses hard links); the benchmark file stays
    os.utime(dropped, (1, 1))
    start = time.perf_counter()
    [outcome] = ingest_agency(settings, "jail", key)
    seconds = time.perf_counter() - start
    if outcome["status"] != "accepted":
        raise SystemExit(f"benchmark file was not accepted: {outcome['reason']}")
    return {"rows": outcome["rows"], "seconds": seconds}


def child_duckdb(path: Path, work: Path, mode: str) -> dict:
    import duckdb

    con = duckdb.connect(str(work / "bare.duckdb"))
    start = time.perf_counter()
    if mode == "count":
        [(rows,)] = con.execute("SELECT count(*) FROM read_csv(?)", [str(path)]).fetchall()
    else:
        con.execute("CREATE TABLE bookings AS SELECT * FROM read_csv(?)", [str(path)])
        [(rows,)] = con.execute("SELECT count(*) FROM bookings").fetchall()
    seconds = time.perf_counter() - start
    con.close()
    return {"rows": rows, "seconds": seconds}


def measure(kind: str, path: Path, work: Path) -> dict:
    """Run one measured thing in a child process; add its own peak RSS (MB)."""
    child_work = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=work))
    proc = subprocess.Popen([sys.executable, __file__, "--child", kind, str(path), str(child_work)],
                            stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.stdout.close()
    shutil.rmtree(child_work, ignore_errors=True)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{kind} child failed")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_mb"] = usage.ru_maxrss / 1024  # Linux reports kilobytes
    return result


# --- the report ----------------------------------------------------------------------------------

LABELS = {"hub": "hub intake", "count": "duckdb count(*)", "ctas": "duckdb CREATE TABLE AS"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512, help="size of the 1x file in MB (default 512: 4x = 2 GB)")
    p.add_argument("--scales", default="1,4", help="file sizes as multiples of --size (default 1,4)")
    p.add_argument("--quick", action="store_true", help="small run: --size 25")
    p.add_argument("--people", type=int, default=3000, help="people in the synthetic base extract")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--work", type=Path, help="scratch directory (default: a new temporary one); "
                   "needs about 2x the largest file free")
    p.add_argument("--child", nargs=3, metavar=("KIND", "FILE", "WORK"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        kind, file, work = args.child
        result = child_hub(Path(file), Path(work)) if kind == "hub" else child_duckdb(Path(file), Path(work), kind)
        print(json.dumps(result))
        return 0

    size_mb = 25 if args.quick else args.size
    scales = [int(s) for s in args.scales.split(",")]
    work = Path(tempfile.mkdtemp(prefix="leadhub-bench-", dir=args.work))
    try:
        print(f"building the base extract ({args.people} synthetic people) in {work} ...", flush=True)
        base = base_extract(work, args.people, args.seed)
        rows_out = []
        for scale in scales:
            path = work / f"{scale}x" / FILE_NAME
            path.parent.mkdir()
            rows = build_file(base, path, scale * size_mb * 1024**2)
            size = path.stat().st_size / 1024**2
            print(f"{scale}x: {size:,.0f} MB, {rows:,} rows; measuring ...", flush=True)
            results = {kind: measure(kind, path, work) for kind in ("hub", "count", "ctas")}
            for kind, r in results.items():
                if r["rows"] != rows:
                    raise SystemExit(f"{kind} read {r['rows']:,} rows, expected {rows:,}")
            rows_out.append((scale, size, rows, results))
            path.unlink()
        _print_table(rows_out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _print_table(measured) -> None:
    head = (f"{'file':>5} {'MB':>7} {'rows':>11}  {'reader':<24} {'seconds':>8} {'rows/s':>10} "
            f"{'peak MB':>8}  {'hub/this rows/s':>15} {'hub/this peak':>13}")
    print()
    print(head)
    print("-" * len(head))
    for scale, size, rows, results in measured:
        hub = results["hub"]
        hub_rate = hub["rows"] / hub["seconds"]
        for kind, r in results.items():
            rate = r["rows"] / r["seconds"]
            ratio = "" if kind == "hub" else f"{hub_rate / rate:.3f}"
            mem = "" if kind == "hub" else f"{hub['peak_mb'] / r['peak_mb']:.2f}"
            print(f"{str(scale) + 'x':>5} {size:>7,.0f} {rows:>11,}  {LABELS[kind]:<24} {r['seconds']:>8.1f} "
                  f"{rate:>10,.0f} {r['peak_mb']:>8,.0f}  {ratio:>15} {mem:>13}")
    hubs = [(scale, results["hub"]["peak_mb"]) for scale, _, _, results in measured]
    if len(hubs) > 1:
        (s0, m0), (s1, m1) = hubs[0], hubs[-1]
        print(f"\nhub peak memory: {m0:,.0f} MB at {s0}x, {m1:,.0f} MB at {s1}x "
              f"({m1 / m0:.2f}x for a {s1 / s0:.0f}x larger file)")


if __name__ == "__main__":
    sys.exit(main())
