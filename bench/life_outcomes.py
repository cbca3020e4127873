"""Calibration: do the report's 95% intervals for the life-outcome models cover the planted effects?

For each seed (1..20 by default, fixed before looking at any result), the synthetic county is
generated with its default settings, taken in and built by the hub's own pipeline
(``leadhub.pipeline.ingest`` of every agency, then ``leadhub.pipeline.build`` without publishing:
pseudonymization, validation, linkage, core tables and marts), and the report's models
(``transforms.report.life_outcomes.life_models``) are fitted on the warehouse. Each planted effect
in the county's ``answers/truth.json`` (``planted.life_outcomes``) is then checked against the
interval the report would print:

  within-person slopes (log-odds per month since referral) of housed, employed and income or
      benefits: the conditional logistic model;
  population-averaged slopes: the GEE logistic model, against the slope the planted model implies
      for the population (the answers compute it);
  log-odds per case-management contact (none planted): the within-person model with contacts;
  arrest rate ratio per housed assessment in the 91 days before (0.6), and per employed one (1.0):
      the within-person Poisson model.

One line per planted effect: how many of the seeds' intervals contain the truth (target: at least
18 of 20), the mean estimate and standard error, how far the estimates spread over the seeds in
standard errors (SD/SE, about 1 for honest intervals), and the truth. Each seed runs in its own
child process, so memory does not build up, with a fresh random key and a scratch directory
removed afterwards.

    nice -n 10 .venv/bin/python bench/life_outcomes.py                 # 20 seeds, 3,000 people each
    .venv/bin/python bench/life_outcomes.py --seeds 1,2 --people 1500  # a quick look
    .venv/bin/python bench/life_outcomes.py --table runs.jsonl         # the table of seeds kept by --keep
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 18
DEFAULT_SEEDS = ",".join(str(s) for s in range(1, 21))


def one_seed(seed: int, people: int, work: Path) -> dict:
    """Generate, ingest, build and fit one county; the estimates and the truth, as plain numbers."""
    import os

    from leadhub.core.keys import create_key_file
    from leadhub.core.settings import Settings

    os.environ["LEADHUB_DATA_DIR"] = str(work / "data")
    os.environ["LEADHUB_KEY_FILE"] = str(work / "key" / "master.key")
    from leadhub import pipeline
    from leadhub.core.contracts import agencies
    from leadhub.core.warehouse import connect
    from synthetic import generate
    from transforms.report.life_outcomes import AVERAGE, OUTCOMES, WITHIN, life_models

    settings = Settings(data_dir=work / "data", key_file=work / "key" / "master.key")
    create_key_file(settings.key_file)
    settings.ensure_dirs()
    started = time.perf_counter()
    generate(settings.inbox_dir, settings.answers_dir, people=people, seed=seed)
    for inbox in settings.inbox_dir.glob("*/*"):
        os.utime(inbox, (1_000_000_000, 1_000_000_000))     # dropped long ago: no settling wait
    outcomes = [o for agency in agencies() for o in pipeline.ingest(settings, agency)]
    refused = [o for o in outcomes if o["status"] != "accepted"]
    if refused:
        raise SystemExit(f"seed {seed}: the synthetic county was not accepted: {refused[:3]}")
    pipeline.build(settings, publish=False)
    built = time.perf_counter()
    with connect(settings.warehouse_path, read_only=True) as con:
        models = life_models(con)
    fitted = time.perf_counter()
    truth = json.loads((Path(settings.answers_dir) / "truth.json").read_text())["planted"]["life_outcomes"]

    def estimate(fit, term):
        e = fit.estimates.get(term)
        return None if e is None else [e.coef, e.se]

    names = {"housed": "housed", "employed": "employed", "income_or_benefits": "income"}
    rows = []
    for outcome, _ in OUTCOMES:
        key = names[outcome]
        rows.append([f"{outcome}: within-person log-odds per month",
                     truth["log_odds_per_month"][key],
                     estimate(models.trend[(outcome, WITHIN)], "month_since_referral")])
        rows.append([f"{outcome}: population-averaged log-odds per month",
                     truth["population_averaged_log_odds_per_month"][key],
                     estimate(models.trend[(outcome, AVERAGE)], "month_since_referral")])
        rows.append([f"{outcome}: within-person log-odds per contact",
                     truth["contacts_log_odds_per_contact"][key],
                     estimate(models.contacts[(outcome, WITHIN)], "contacts")])
    rows.append(["arrests: log rate ratio per housed assessment",
                 math.log(truth["housed_arrest_rate_ratio"]),
                 estimate(models.arrests, "housed_recent")])
    rows.append(["arrests: log rate ratio per employed assessment",
                 math.log(truth["employed_arrest_rate_ratio"]),
                 estimate(models.arrests, "employed_recent")])
    return {"seed": seed, "rows": rows, "people": models.trend[("housed", WITHIN)].people,
            "build_seconds": round(built - started, 1), "fit_seconds": round(fitted - built, 1)}


def child(seed: int, people: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"life-{seed}-") as work:
        out = subprocess.run([sys.executable, __file__, "--child", str(seed), "--people", str(people),
                              "--work", work], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"seed {seed} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarize(results: list[dict]) -> list[list]:
    """Per planted effect: intervals containing the truth, seeds with an estimate, mean estimate,
    mean standard error, the estimates' spread over the seeds (SD) divided by that mean standard
    error (about 1 when the intervals are honest), truth."""
    z = 1.959963984540054
    table = []
    for i, (name, truth, _) in enumerate(results[0]["rows"]):
        estimates = [r["rows"][i][2] for r in results if r["rows"][i][2] is not None]
        covered = sum(1 for coef, se in estimates if coef - z * se <= truth <= coef + z * se)
        mean = sum(coef for coef, _ in estimates) / len(estimates) if estimates else math.nan
        mean_se = sum(se for _, se in estimates) / len(estimates) if estimates else math.nan
        spread = (math.sqrt(sum((coef - mean) ** 2 for coef, _ in estimates) / (len(estimates) - 1)) / mean_se
                  if len(estimates) > 1 else math.nan)
        table.append([name, covered, len(estimates), mean, mean_se, spread, truth])
    return table


def print_table(results: list[dict]) -> None:
    n = len(results)
    print(f"\n{'planted effect':<52} {'covered':>9} {'mean est.':>10} {'mean SE':>8} {'SD/SE':>6} "
          f"{'truth':>8}")
    for name, covered, fitted, mean, mean_se, spread, truth in summarize(results):
        flag = "" if covered >= math.ceil(TARGET * n / 20) else "  below target"
        shown = f"{covered}/{n}" + ("" if fitted == n else f" ({n - fitted} n/a)")
        print(f"{name:<52} {shown:>9} {mean:>10.4f} {mean_se:>8.4f} {spread:>6.2f} {truth:>8.4f}{flag}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default=DEFAULT_SEEDS, help="comma-separated seeds (default 1..20)")
    parser.add_argument("--people", type=int, default=3000, help="people per county (the default county)")
    parser.add_argument("--keep", type=Path, help="append each seed's estimates to this file (JSON lines)")
    parser.add_argument("--table", type=Path, help="print the table of seeds kept in this file (--keep) "
                        "and run nothing: for a run cut short, or several runs together")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(one_seed(args.child, args.people, args.work)))
        return 0

    if args.table:
        lines = args.table.read_text(encoding="utf-8").splitlines()
        kept = [json.loads(line) for line in lines if line.strip()]
        print(f"{len(kept)} seeds: {', '.join(str(r['seed']) for r in kept)}")
        print_table(kept)
        return 0
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    results = []
    for seed in seeds:
        r = child(seed, args.people)
        results.append(r)
        if args.keep:
            with open(args.keep, "a", encoding="utf-8") as f:
                f.write(json.dumps(r) + "\n")
        print(f"seed {seed:>3}: {r['people']} participants with an assessment, pipeline "
              f"{r['build_seconds']} s, models {r['fit_seconds']} s", flush=True)
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
