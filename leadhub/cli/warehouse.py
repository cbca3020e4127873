"""Commands that build and publish what analysts read: warehouse, snapshot, report, dictionary, Data Docs."""

from __future__ import annotations

from pathlib import Path

from leadhub.core.errors import LeadHubError
from leadhub.core.settings import Settings


def cmd_build(settings: Settings, args) -> int:
    from leadhub import pipeline

    counts = pipeline.build(settings)
    for table, n in sorted(counts.items()):
        print(f"  {table}: {n}")
    print(f"warehouse: {settings.warehouse_path}")
    return 0


def cmd_publish(settings: Settings, args) -> int:
    from transforms.publish import publish, snapshot_path

    counts = publish(settings)
    print(f"published {len(counts)} tables to {snapshot_path(settings)} "
          f"(open with: duckdb -readonly {snapshot_path(settings)})")
    return 0


def cmd_report(settings: Settings, args) -> int:
    from leadhub import pipeline

    paths = pipeline.report(settings)
    print(f"report: {paths['html']}")
    return 0


def cmd_dictionary(settings: Settings, args) -> int:
    import duckdb

    from transforms.dictionary import undescribed, write_dictionary
    from transforms.publish import dictionary_inputs, published_dir, snapshot_path

    if not snapshot_path(settings).is_file():
        raise LeadHubError(f"no snapshot at {snapshot_path(settings)}; run build (or publish) first")
    with duckdb.connect(str(snapshot_path(settings)), read_only=True) as con:
        tables, descriptions, levels = dictionary_inputs(con)
    written = write_dictionary(Path(args.output) if args.output else published_dir(settings),
                               descriptions, tables, levels)
    print(f"data dictionary: {written['md']} and {written['html']}")
    missing = undescribed(tables, descriptions)
    if missing:
        print("undescribed: " + ", ".join(missing))
    return 1 if missing else 0


def cmd_docs(settings: Settings, args) -> int:
    """Data Docs are rebuilt from the warehouse each time, so they show what is stored now."""
    import webbrowser

    from expectations.docs import build_docs

    index = build_docs(settings)
    print(f"data docs: {index}")
    if args.open:
        webbrowser.open(index.as_uri())
    return 0
