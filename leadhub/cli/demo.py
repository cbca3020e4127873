"""Commands for trying the hub on one machine: synthetic data, the demo, Airflow locally."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from leadhub.core.errors import LeadHubError
from leadhub.core.settings import ENV_DATA_DIR, ENV_KEY_FILE, Settings


def _generate(settings: Settings, args) -> dict:
    """The synthetic extracts for --people/--seed; a --people the generator refuses is one line."""
    from synthetic import generate

    try:
        return generate(settings.inbox_dir, settings.answers_dir, people=args.people, seed=args.seed,
                        progress=True)
    except ValueError as e:
        raise LeadHubError(f"--people {args.people}: {e}") from None


def cmd_generate(settings: Settings, args) -> int:
    settings.ensure_dirs()
    summary = _generate(settings, args)
    print(f"wrote synthetic extracts to {settings.inbox_dir} and the answer file to {settings.answers_dir}")
    for name, rows in sorted(summary.get("files", {}).items()):
        print(f"  {name}: {rows} rows")
    return 0


def cmd_demo(settings: Settings, args) -> int:
    from leadhub.airflow_local import run_demo_dags
    from leadhub.core.keys import load_or_create

    _generate(settings, args)  # first: a --people too small for the evaluation's cohorts leaves no key behind
    settings.ensure_dirs()
    os.environ["LEADHUB_DEMO"] = "1"  # the demo may use the demo key it makes; nothing else may
    if ENV_KEY_FILE not in os.environ:
        # Beside, never in place of, the installation's real key: a later 'leadhub keygen' still works.
        settings = dataclasses.replace(settings, key_file=settings.key_file.with_name("demo.key"))
    load_or_create(settings.key_file)
    print(f"key file: {settings.key_file}")
    print(f"synthetic extracts dropped into {settings.inbox_dir}; running the DAGs through Airflow ...")
    result = run_demo_dags(settings)
    for dag_id, info in result.items():
        state = info.get("state") if isinstance(info, dict) else info
        print(f"  {dag_id}: {state}")
    from transforms.report import planted_effect_line

    effect = planted_effect_line(settings)  # the planted odds ratio against the report's estimate
    if effect:
        print(f"\n{effect}")
    rows = [(f"{label}:", _shown(path), note) for label, path, note in demo_locations(settings)]
    width = max(len(r[1]) for r in rows)
    print("\nwhere things are:")
    for label, where, note in rows:
        print(f"  {label:<21} {where:<{width}}  {note}")
    # The demo key is refused unless LEADHUB_DEMO=1; every later command on this data needs both.
    env = f"LEADHUB_DEMO=1 LEADHUB_KEY_FILE={_shown(settings.key_file)}"
    if os.environ.get(ENV_DATA_DIR):
        env += f" {ENV_DATA_DIR}={_shown(settings.data_dir)}"
    print("\nnext, on this demo data:")
    print(f"  Airflow (UI, scheduler): {env} .venv/bin/leadhub airflow")
    print(f"  feed status:             {env} .venv/bin/leadhub status")
    return 0


def cmd_airflow(settings: Settings, args) -> int:
    from leadhub.airflow_local import LOCALHOST, run_local_airflow

    settings.ensure_dirs()
    print(f"Airflow UI and REST API: http://{LOCALHOST}:{args.port}  user 'steward', password in "
          f"{settings.airflow_home / 'simple_auth_manager_passwords.json.generated'}; Ctrl-C stops it",
          flush=True)
    run_local_airflow(settings, args.port)
    return 0


def demo_locations(settings: Settings) -> list[tuple[str, Path, str]]:
    """What the demo leaves where: (label, path, note); the README's table lists the same labels."""
    d = settings.data_dir
    return [
        ("report", settings.reports_dir / "latest" / "lead_report.html",
         "one self-contained HTML file; opens without a network"),
        ("report tables", settings.reports_dir / "latest" / "*.csv", "one CSV per report table"),
        ("analysts' snapshot", d / "published" / "lead.duckdb", "read-only: .venv/bin/duckdb -readonly PATH"),
        ("data dictionary", d / "published" / "data_dictionary.html", "every table and column"),
        ("warehouse", settings.warehouse_path, "the pipeline's own; one writer at a time"),
        ("Data Docs", d / "docs" / "index.html", "validation results; rebuilt by 'leadhub docs'"),
        ("encrypted originals", settings.archive_dir / "<agency>", "every delivery, AES-256-GCM"),
        ("quarantine", settings.quarantine_dir / "<agency>", "refused files, each with a .reason.json"),
        ("ground truth", settings.answers_dir, "of the synthetic data; never read by the pipeline"),
        ("demo key", settings.key_file, "outside the data directory, mode 0600"),
        ("Airflow home", settings.airflow_home, "metadata DB (SQLite), logs"),
    ]


def _shown(path: Path) -> str:
    """A path as a newcomer would type it from here: relative when below the working directory."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative
