"""The `leadhub` command: every stage without Airflow, and the demo through it."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from leadhub.errors import LeadHubError
from leadhub.settings import Settings


def _print_outcomes(outcomes: list[dict]) -> None:
    for o in outcomes:
        extra = f" ({o['rows']} rows)" if o.get("rows") is not None else ""
        reason = f" — {o['reason']}" if o.get("reason") else ""
        print(f"  {o['status']:<11} {o['file']}{extra}{reason}")


def cmd_keygen(settings: Settings, args) -> int:
    from leadhub.keys import create_key_file

    path = create_key_file(settings.key_file)
    print(f"created {path} (mode 600). Back it up somewhere safe: without it, pseudonyms "
          "cannot be reproduced and the archive cannot be decrypted.")
    return 0


def cmd_generate(settings: Settings, args) -> int:
    from connectors.synthetic import generate

    settings.ensure_dirs()
    summary = generate(settings.inbox_dir, settings.answers_dir, people=args.people, seed=args.seed,
                       progress=True)
    print(f"wrote synthetic extracts to {settings.inbox_dir} and the answer file to {settings.answers_dir}")
    for name, rows in sorted(summary.get("files", {}).items()):
        print(f"  {name}: {rows} rows")
    return 0


def cmd_ingest(settings: Settings, args) -> int:
    from tqdm import tqdm

    from connectors.contracts import agencies
    from leadhub import pipeline

    chosen = [args.agency] if args.agency else agencies()
    quarantined = 0
    for agency in tqdm(chosen, desc="inboxes", unit="agency", disable=len(chosen) < 2):
        outcomes = pipeline.ingest(settings, agency)
        print(f"{agency}: {len(outcomes)} file(s)")
        _print_outcomes(outcomes)
        quarantined += sum(o["status"] == "quarantined" for o in outcomes)
    if quarantined:
        print(f"{quarantined} file(s) quarantined in {settings.quarantine_dir}; see the reasons above")
    return 1 if quarantined else 0


def cmd_build(settings: Settings, args) -> int:
    from leadhub import pipeline

    counts = pipeline.build(settings)
    for table, n in sorted(counts.items()):
        print(f"  {table}: {n}")
    print(f"warehouse: {settings.warehouse_path}")
    return 0


def cmd_report(settings: Settings, args) -> int:
    from leadhub import pipeline

    paths = pipeline.report(settings)
    print(f"report: {paths['html']}")
    return 0


def cmd_status(settings: Settings, args) -> int:
    from connectors.status import feed_status

    rows = feed_status(settings)
    stale = [r for r in rows if r["stale"]]
    print(f"{'feed':<22} {'accepted':>8} {'dup':>4} {'quar':>4}  last accepted          state")
    for r in rows:
        print(f"{r['feed']:<22} {r['accepted']:>8} {r['duplicate']:>4} {r['quarantined']:>4}  "
              f"{r['last_accepted'] or '-':<22} {'STALE' if r['stale'] else 'ok'}")
    if stale:
        print("stale feeds: " + ", ".join(f"{r['feed']} (nothing for {r['stale_after_hours']} h)"
                                          for r in stale))
    return 1 if stale else 0


def cmd_decrypt(settings: Settings, args) -> int:
    from connectors.archive import decrypt_to
    from leadhub.keys import MasterKey

    key = MasterKey.load(settings.key_file)
    out = Path(args.output)
    with open(out, "xb") as f:
        try:
            decrypt_to(Path(args.archive_file), f, key)
        except LeadHubError:
            f.close()
            out.unlink()
            raise
    print(f"decrypted to {out}")
    return 0


def cmd_demo(settings: Settings, args) -> int:
    from connectors.synthetic import generate
    from leadhub.airflow_local import run_demo_dags
    from leadhub.keys import load_or_create

    settings.ensure_dirs()
    load_or_create(settings.key_file)
    print(f"key file: {settings.key_file}")
    generate(settings.inbox_dir, settings.answers_dir, people=args.people, seed=args.seed, progress=True)
    print(f"synthetic extracts dropped into {settings.inbox_dir}; running the DAGs through Airflow ...")
    result = run_demo_dags(settings)
    for dag_id, info in result.items():
        state = info.get("state") if isinstance(info, dict) else info
        print(f"  {dag_id}: {state}")
    report = settings.reports_dir / "latest" / "lead_report.html"
    print(f"\nreport:    {report}")
    print(f"warehouse: {settings.warehouse_path}  (query it: .venv/bin/duckdb -readonly {settings.warehouse_path})")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="leadhub", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("keygen", help="create the master key file (once per installation)").set_defaults(func=cmd_keygen)
    g = sub.add_parser("generate", help="drop synthetic extracts into the inboxes")
    g.add_argument("--people", type=int, default=3000)
    g.add_argument("--seed", type=int, default=7)
    g.set_defaults(func=cmd_generate)
    i = sub.add_parser("ingest", help="process whatever is in the inboxes, once")
    i.add_argument("--agency", help="only this agency's inbox")
    i.set_defaults(func=cmd_ingest)
    sub.add_parser("build", help="link people and rebuild core tables and marts").set_defaults(func=cmd_build)
    sub.add_parser("report", help="write the cross-agency report").set_defaults(func=cmd_report)
    sub.add_parser("status", help="feeds, ledger counts and staleness").set_defaults(func=cmd_status)
    d = sub.add_parser("decrypt", help="decrypt an archived original (steward only)")
    d.add_argument("archive_file")
    d.add_argument("output")
    d.set_defaults(func=cmd_decrypt)
    demo = sub.add_parser("demo", help="generate synthetic data and run every DAG through Airflow")
    demo.add_argument("--people", type=int, default=3000)
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(Settings.from_env(), args)
    except LeadHubError as e:
        print(f"leadhub: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("leadhub: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
