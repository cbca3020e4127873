"""Great Expectations Data Docs, built from the validation results stored in the warehouse.

The hub never keeps GX's own result objects: they can quote cell values.
What it keeps is ``ops.validation_results`` (names, severities, counts), read
here through ``ops.data_quality``. This module turns those rows back into GX
validation results whose only observed value is the stored count text, and
lets GX's site builder render them, with one page per suite, into a static
site under ``<data dir>/docs``. So the site holds exactly what the warehouse
holds and nothing of the data itself.

Checks that are not GX expectations (history, build and schema-drift checks)
are drawn with the GX expectation closest in meaning, labelled with the hub's
own description; the stored check name stays in the expectation's meta.
"""

from __future__ import annotations

import os

os.environ["GX_ANALYTICS_ENABLED"] = "False"

import shutil  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

from connectors.contracts import load_contracts  # noqa: E402
from expectations.build_checks import BUILD_CHECKS  # noqa: E402
from expectations.history import NULL_SHARE_CHECK, ROW_COUNT_CHECK  # noqa: E402
from expectations.suites import CRITICAL, suite_for  # noqa: E402
from leadhub.errors import LeadHubError  # noqa: E402
from leadhub.settings import Settings  # noqa: E402

SITE_NAME = "leadhub"
DEFAULT_MAX_BATCHES = 500
SCHEMA_DRIFT = "schema_drift"

# Checks GX has no expectation for: (GX type used to draw it, description).
CARRIERS = {
    ROW_COUNT_CHECK: ("expect_table_row_count_to_be_between",
                      "row count near the median of the last deliveries"),
    NULL_SHARE_CHECK: ("expect_column_proportion_of_non_null_values_to_be_between",
                       "share of empty values near its history"),
    SCHEMA_DRIFT: ("expect_table_columns_to_match_set",
                   "schema drift: the header differs from the contract (added, removed or "
                   "renamed columns)"),
    **{name: ("expect_column_pair_values_a_to_be_greater_than_b" if "," in column
              else "expect_column_values_to_not_be_null", description)
       for name, (_, column, description, _) in BUILD_CHECKS.items()},
}


def docs_dir(settings: Settings) -> Path:
    return settings.data_dir / "docs"


def index_path(settings: Settings) -> Path:
    return docs_dir(settings) / "index.html"


def _result_column(kwargs: dict, type_: str) -> str | None:
    """The column label ``expectations.validate`` stores for an expectation."""
    from expectations.validate import COLUMN_LIST_CHECKS

    if "column" in kwargs:
        return kwargs["column"]
    if "column_list" in kwargs and type_ not in COLUMN_LIST_CHECKS:
        return ",".join(kwargs["column_list"])
    if "column_A" in kwargs:
        return f"{kwargs['column_A']},{kwargs['column_B']}"
    return None


def _suite_index(contract: str) -> dict[tuple[str, str | None], dict]:
    """(expectation type, stored column) -> the suite's expectation, to recover its kwargs."""
    try:
        suite = suite_for(contract)
    except FileNotFoundError:
        return {}
    return {(e["type"], _result_column(e["kwargs"], e["type"])): e for e in suite["expectations"]}


def _carrier_kwargs(type_: str, column: str | None) -> dict:
    if type_ == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = column.split(",", 1)
        return {"column_A": a, "column_B": b}
    if type_ == "expect_table_columns_to_match_set":
        return {"column_set": []}
    return {"column": column} if column else {}


def _configuration(row: dict, suites: dict[str, dict]):
    """A GX expectation configuration for one stored result row."""
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    meta = {"severity": row["severity"], "check": row["expectation"], "kind": row["kind"]}
    if row["expectation"] in CARRIERS:
        type_, description = CARRIERS[row["expectation"]]
        kwargs = _carrier_kwargs(type_, row["column_name"])
    else:
        stored = suites.setdefault(row["contract"], _suite_index(row["contract"]))
        found = stored.get((row["expectation"], row["column_name"]))
        type_ = row["expectation"]
        kwargs = dict(found["kwargs"]) if found else _carrier_kwargs(type_, row["column_name"])
        description = found.get("description") if found else None
    label = f"[{row['severity']}] {description or type_}"
    return ExpectationConfiguration(type=type_, kwargs=kwargs, meta=meta, description=label)


def _gx_result(row: dict) -> dict:
    """The stored observed text, plus its counts in the fields GX's renderers read."""
    result = {"observed_value": row["observed"] or ""}
    if row["checked_count"] is not None and row["unexpected_count"] is not None:
        checked, unexpected = int(row["checked_count"]), int(row["unexpected_count"])
        result.update(element_count=checked, unexpected_count=unexpected,
                      unexpected_percent=100 * unexpected / checked if checked else 0.0,
                      missing_count=0, missing_percent=0.0)
    return result


def _validation_result(batch_id: str, rows: list[dict], suites: dict[str, dict]):
    from great_expectations.core import (ExpectationSuiteValidationResult,
                                         ExpectationValidationResult)
    from great_expectations.core.run_identifier import RunIdentifier

    first = rows[0]
    results = [ExpectationValidationResult(success=bool(r["success"]),
                                           expectation_config=_configuration(r, suites),
                                           result=_gx_result(r))
               for r in rows]
    passed = sum(1 for r in rows if r["success"])
    blocking = any(not r["success"] and r["severity"] == CRITICAL for r in rows)
    run_id = RunIdentifier(run_name=batch_id, run_time=first["validated_at"])
    return run_id, ExpectationSuiteValidationResult(
        success=not blocking,
        results=results,
        suite_name=first["contract"],
        statistics={"evaluated_expectations": len(rows), "successful_expectations": passed,
                    "unsuccessful_expectations": len(rows) - passed,
                    "success_percent": 100 * passed / len(rows)},
        meta={"run_id": run_id,
              "batch_spec": {"batch": batch_id, "file": first["file_name"] or "-",
                             "file status": first["file_status"] or "-", "kind": first["kind"]},
              "active_batch_definition": {"datasource_name": "leadhub", "data_connector_name": "ops",
                                          "data_asset_name": first["contract"],
                                          "batch_identifiers": {}}},
    )


def _stored_rows(settings: Settings, max_batches: int) -> list[dict]:
    """The rows of the ``max_batches`` most recent validation runs, from ``ops.data_quality``."""
    import duckdb

    if not settings.warehouse_path.exists():
        raise LeadHubError(f"no warehouse at {settings.warehouse_path} yet: run 'leadhub ingest' first")
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        cur = con.execute("""
            WITH recent AS (
                SELECT batch_id, contract, max(validated_at) AS last_at FROM ops.data_quality
                GROUP BY ALL ORDER BY last_at DESC LIMIT ?)
            SELECT q.* FROM ops.data_quality q JOIN recent USING (batch_id, contract)
            ORDER BY q.validated_at, q.batch_id, q.kind, q.column_name NULLS FIRST, q.expectation
            """, [max_batches])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]


def build_docs(settings: Settings, max_batches: int = DEFAULT_MAX_BATCHES) -> Path:
    """(Re)build the static Data Docs site from the warehouse; returns its ``index.html``.

    The site is built next to the old one and swapped in, so a reader never sees a half-built
    site and pages of results no longer stored do not linger.
    """
    import great_expectations as gx
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier, ValidationResultIdentifier)

    rows = _stored_rows(settings, max_batches)
    target = docs_dir(settings)
    building = target.with_name(target.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True, mode=0o700)

    context = gx.get_context(mode="ephemeral")
    for name in list(context.list_data_docs_sites()):
        context.delete_data_docs_site(name)  # the default site writes to a temporary folder
    context.add_data_docs_site(SITE_NAME, {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(building)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    for name in load_contracts():
        stored = suite_for(name)
        context.suites.add(ExpectationSuite(name=stored["name"], expectations=stored["expectations"],
                                            meta=stored.get("meta")))

    by_run: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        by_run[(row["contract"], row["batch_id"])].append(row)
    suites: dict[str, dict] = {}
    for (contract, batch_id), run_rows in by_run.items():
        run_id, result = _validation_result(batch_id, run_rows, suites)
        key = ValidationResultIdentifier(ExpectationSuiteIdentifier(name=contract), run_id, batch_id)
        context.validation_results_store.set(key, result)
    context.build_data_docs(site_names=[SITE_NAME])

    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    building.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target / "index.html"


def recent_results(settings: Settings, limit: int = 50, failed_only: bool = False) -> list[dict]:
    """The latest rows of ``ops.data_quality``, newest first (what ``leadhub quality`` prints)."""
    import duckdb

    if not settings.warehouse_path.exists():
        raise LeadHubError(f"no warehouse at {settings.warehouse_path} yet: run 'leadhub ingest' first")
    where = "WHERE NOT success" if failed_only else ""
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        cur = con.execute(f"""
            SELECT validated_at, contract, batch_id, file_name, kind, severity, success,
                   expectation, column_name, observed
            FROM ops.data_quality {where}
            ORDER BY validated_at DESC, batch_id, success, severity, expectation, column_name
            LIMIT ?""", [limit])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]
