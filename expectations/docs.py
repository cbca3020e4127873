"""Great Expectations Data Docs, built from the validation results stored in the warehouse.

The hub never keeps GX's own result objects: they can quote cell values.
What it keeps is ``ops.validation_results`` (names, severities, counts), read
here through ``ops.data_quality``. This module turns those rows back into GX
validation results whose only observed values are the stored counts (typed columns) and
their text, and
lets GX's site builder render them, with one page per suite, into a static
site under ``<data dir>/docs``. So the site holds exactly what the warehouse
holds and nothing of the data itself.

Checks that are not GX expectations (history, build and schema-drift checks)
are drawn with the GX expectation closest in meaning, labelled with the hub's
own description; the stored check name stays in the expectation's meta.

GX's page templates load jQuery, Bootstrap, Vega and Font Awesome from public
CDNs, and GX offers no setting for that. A county network may have no way out,
so the site ships its own copies (``expectations/static/vendor``, unmodified
distribution files) and every generated page is pointed at them; a page that
would still load anything from the network stops the build.
"""

from __future__ import annotations

import os

os.environ["GX_ANALYTICS_ENABLED"] = "False"

import re  # noqa: E402
import shutil  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

from leadhub.core.contracts import load_contracts  # noqa: E402
from expectations.build_checks import BUILD_CHECKS  # noqa: E402
from expectations.history import NULL_SHARE_CHECK, ROW_COUNT_CHECK  # noqa: E402
from expectations.suites import CRITICAL, suite_for  # noqa: E402
from expectations.validate import BIRTH_DATE_CHECK  # noqa: E402
from leadhub.core.errors import LeadHubError  # noqa: E402
from leadhub.core.files import replace_dir  # noqa: E402
from leadhub.core.settings import Settings  # noqa: E402

SITE_NAME = "leadhub"
DEFAULT_MAX_BATCHES = 500
SCHEMA_DRIFT = "schema_drift"
VENDOR_DIR = Path(__file__).with_name("static") / "vendor"

# Every network address GX 1.24's templates write into a page -> its copy under static/.
CDN_ASSETS = {
    "https://code.jquery.com/jquery-3.7.1.min.js": "vendor/jquery-3.7.1/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js":
        "vendor/popper.js-1.12.9/popper.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css":
        "vendor/bootstrap-4.3.1/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js":
        "vendor/bootstrap-4.3.1/bootstrap.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        "vendor/bootstrap-table-1.19.1/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        "vendor/bootstrap-table-1.19.1/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.css":
        "vendor/bootstrap-table-1.19.1/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.css":
        "vendor/bootstrap-table-1.19.1/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.js":
        "vendor/bootstrap-table-1.19.1/bootstrap-table-filter-control.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
    "bootstrap-datepicker.min.css": "vendor/bootstrap-datepicker-1.9.0/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
    "bootstrap-datepicker.min.js": "vendor/bootstrap-datepicker-1.9.0/bootstrap-datepicker.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/"
    "bootstrap-prefers-dark.css": "vendor/bootstrap-dark-1.1.0/bootstrap-prefers-dark.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "vendor/fontawesome-free-6.6.0/css/all.min.css",
    "https://cdn.jsdelivr.net/npm/vega@5": "vendor/vega-5.33.1/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vendor/vega-lite-5.23.0/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vendor/vega-embed-6.29.0/vega-embed.min.js",
    # GX's logos, which it also ships in static/images (the dark-mode logo it does not).
    "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png":
        "images/logo-long.png",
    "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/full_logo_dark.png":
        "images/logo-long.png",
}
# An address in an attribute or a CSS url(), with GX's cache-busting "?d=..." query.
_ADDRESS = re.compile(r"""(?P<url>(?:https?:)?//[^"'()\s?]+)(?P<query>\?d=[^"'()\s]*)?""")
# Subresource-integrity and CORS attributes: meaningless for a local copy, and a file:// page
# asking for a CORS load of a file:// script is refused by the browser.
_INTEGRITY = re.compile(r"""\s+(?:integrity|crossorigin)=(?:"[^"]*"|'[^']*'|[^\s>]+)""")
_TAG = re.compile(r"<(?:script|link|img|source|iframe|embed|object)\b[^>]*>", re.IGNORECASE)
_RESOURCE_ATTR = re.compile(r"""\b(?:src|href|data|srcset)\s*=\s*["']?\s*(?:https?:)?//""",
                            re.IGNORECASE)
_CSS_REMOTE = re.compile(r"""(?:url\(\s*["']?|@import\s+["'])\s*(?:https?:)?//""", re.IGNORECASE)

# Checks GX has no expectation for: (GX type used to draw it, description).
CARRIERS = {
    ROW_COUNT_CHECK: ("expect_table_row_count_to_be_between",
                      "row count near the median of the last deliveries"),
    NULL_SHARE_CHECK: ("expect_column_proportion_of_non_null_values_to_be_between",
                       "share of empty values near its history"),
    SCHEMA_DRIFT: ("expect_table_columns_to_match_set",
                   "schema drift: the header differs from the contract (added, removed or "
                   "renamed columns)"),
    BIRTH_DATE_CHECK: ("expect_column_values_to_be_between",
                       "birth date not after the event (age at the event is not negative)"),
    **{name: ("expect_column_pair_values_a_to_be_greater_than_b" if "," in column
              else "expect_column_values_to_not_be_null", description)
       for name, (_, column, description, _) in BUILD_CHECKS.items()},
}


def docs_dir(settings: Settings) -> Path:
    return settings.data_dir / "docs"


def index_path(settings: Settings) -> Path:
    return docs_dir(settings) / "index.html"


def remote_resources(page_html: str) -> list[str]:
    """What a page would load from the network: scripts, styles, images, frames, CSS url()s.

    Links a reader may click (``<a href>``) are not loads and are left alone.
    """
    found = [tag for tag in _TAG.findall(page_html) if _RESOURCE_ATTR.search(tag)]
    found += [m.group(0) for m in _CSS_REMOTE.finditer(page_html)]
    return found


def _localize_page(page: Path, site: Path) -> None:
    """Point one generated page at the site's own copies of GX's CDN assets.

    Raises ``LeadHubError`` naming the page and the resource when a load from the network is
    left (an asset a newer GX adds): the build fails rather than publish a page that is blank
    offline.
    """
    static = os.path.relpath(site / "static", page.parent).replace(os.sep, "/")

    def local(match: re.Match) -> str:
        target = CDN_ASSETS.get(match.group("url"))
        return f"{static}/{target}" if target else match.group(0)

    def tag(match: re.Match) -> str:
        rewritten = _ADDRESS.sub(local, match.group(0))
        return _INTEGRITY.sub("", rewritten) if rewritten != match.group(0) else rewritten

    text = page.read_text(encoding="utf-8")
    text = _TAG.sub(tag, text)
    text = re.sub(r"url\(\s*['\"]?[^'\")]*['\"]?\s*\)",
                  lambda m: _ADDRESS.sub(local, m.group(0)), text)
    left = remote_resources(text)
    if left:
        raise LeadHubError(f"data docs page {page.relative_to(site)} would load {left[0]!r} from "
                           f"the network; add a copy to {VENDOR_DIR} and to CDN_ASSETS")
    page.write_text(text, encoding="utf-8")


def _localize_site(site: Path) -> None:
    """Copy the vendored assets into the site and rewrite every page to use them."""
    shutil.copytree(VENDOR_DIR, site / "static" / "vendor")
    for page in sorted(site.rglob("*.html")):
        _localize_page(page, site)


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


def _known_to_gx(type_: str) -> bool:
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import get_expectation_impl

    try:
        get_expectation_impl(type_)
    except ExpectationNotFoundError:
        return False
    return True


def _carrier_kwargs(type_: str, column: str | None) -> dict:
    if type_ == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = column.split(",", 1)
        return {"column_A": a, "column_B": b}
    if type_ == "expect_table_columns_to_match_set":
        return {"column_set": []}
    if type_ == "expect_column_values_to_be_between":   # the only one: age at the event >= 0
        return {"column": column, "min_value": 0}
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
        if not _known_to_gx(type_):  # a hub check GX cannot draw: drawn as the nearest GX one
            type_ = ("expect_column_values_to_not_be_null" if row["column_name"]
                     else "expect_table_row_count_to_be_between")
            description = description or row["expectation"]
            kwargs = _carrier_kwargs(type_, row["column_name"])
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
        "show_how_to_buttons": False,  # GX's tutorial pop-ups, pointing at its online docs
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
    _localize_site(building)

    replace_dir(building, target)
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
