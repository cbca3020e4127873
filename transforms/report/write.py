"""Writing the report folder: the HTML, one CSV per table, and the swap into place."""

from __future__ import annotations

import shutil
from datetime import date, datetime
from pathlib import Path

from leadhub.core.agreements import AgreementError, agreement_for
from leadhub.core.exports import write_csv
from leadhub.core.errors import LeadHubError
from leadhub.core.files import replace_dir
from leadhub.core.settings import Settings
from leadhub.core.warehouse import connect, table_exists, utcnow
from transforms.notices import PART2_NOTICE
from transforms.report.coverage import data_coverage
from transforms.report.demo import planted_effect, planted_effect_text
from transforms.report.linkage import linkage_model
from transforms.report.model import TREATMENT, Table, fetch_dicts
from transforms.report.render import ReportContext, needs_part2_notice, render_html
from transforms.report.source import report_source
from transforms.report.suppression import small_cell_threshold
from transforms.report.tables import JUSTICE_COUNTS_MARTS, build_tables, marts_present, rearrest_estimates


def csv_rows(table: Table) -> list[list[str]]:
    """The CSV body: the rows, then the Part 2 notice as a last line when treatment records were used.

    The notice travels inside the file because a CSV is easily sent on alone;
    its first cell starts with "Notice:" so a reader can drop it.
    """
    rows = [list(r) for r in table.rows]
    if TREATMENT in table.sources:
        rows.append([f"Notice: {PART2_NOTICE}"] + [""] * (len(table.header) - 1))
    return rows


def _write_csv(path: Path, table: Table) -> None:
    """Through the shared exporter, which escapes cells a spreadsheet would run as formulas."""
    write_csv(path, table.header, csv_rows(table))


def drawn_agreements(con, today: date) -> list[dict]:
    """The data-sharing agreements the report draws on, each still in force on ``today`` and
    permitting evaluation; AgreementError naming the agency otherwise.

    A snapshot lists the agreements it was published under (ops.agreements) and holds no data of
    other agencies. The warehouse itself holds every agency's data: read only when every agency
    with data has an agreement that permits evaluation.
    """
    from transforms.publish import evaluation_agreements

    if table_exists(con, "ops", "agreements"):
        agencies = [a for (a,) in con.execute("SELECT agency FROM ops.agreements ORDER BY agency").fetchall()]
    else:
        drawn, left_out = evaluation_agreements(con)
        if left_out:
            raise AgreementError(f"agency {sorted(left_out)[0]}: its agreement does not permit evaluation; "
                                 "report from a published snapshot (leadhub build), which leaves its data out")
        agencies = sorted(drawn)
    found = [agreement_for(agency, today) for agency in agencies]
    for agreement in found:
        if not agreement.permits("evaluation"):
            raise AgreementError(f"agency {agreement.agency}: agreement {agreement.describe()} no longer "
                                 "permits evaluation; publish a new snapshot (leadhub build)")
    return [{"reference": a.reference, "agency": a.agency, "effective": a.effective, "end": a.end,
             "purposes": a.purposes, "small_cell_threshold": a.small_cell_threshold} for a in found]


def withheld_marts(agreements: list[dict]) -> frozenset[str]:
    """The Justice Counts marts built from an agency drawn on whose agreement does not permit
    justice_counts. (Agencies not drawn on sent nothing, or their marts are not in the snapshot.)"""
    from transforms.publish import model_agencies

    refused = {a["agency"] for a in agreements if "justice_counts" not in a["purposes"]}
    return frozenset(table for (schema, table), agencies in model_agencies().items()
                     if schema == "marts" and table in JUSTICE_COUNTS_MARTS and agencies & refused)


def write_report(settings: Settings, today: date | None = None) -> dict[str, str]:
    """Write reports/lead_report_<date>/ (HTML + CSVs) and refresh reports/latest/.

    Returns {'html': path, '<table name>': csv path, ...} for the dated folder.

    Reads the published snapshot when there is one: it holds exactly the last
    committed build (marts and the batches they were built from agree), and a
    reader of the snapshot never holds up a load. Without a snapshot (a
    warehouse built before publication existed) it reads the warehouse itself.
    """
    source = report_source(settings)
    if source is None:
        raise LeadHubError(f"no warehouse at {settings.warehouse_path}; run ingest and build first")
    effect = planted_effect(settings)
    with connect(source, read_only=True) as con:
        present = marts_present(con)
        if not present:
            raise LeadHubError("the warehouse has no marts yet; run build before report")
        agreements = drawn_agreements(con, today or utcnow().date())
        # The largest small-cell threshold any agreement drawn on requires (never below the usual).
        threshold = max((a["small_cell_threshold"] for a in agreements), default=0)
        with small_cell_threshold(threshold):
            coverage = data_coverage(con)
            tables = build_tables(con, coverage, withheld_marts(agreements))
        as_of = con.execute("SELECT max(received_at)::DATE FROM ops.batches").fetchone()[0]
        evaluation = fetch_dicts(con, "SELECT * FROM core.evaluation_settings")
        demo_note = (planted_effect_text(rearrest_estimates(con), effect)
                     if effect and {"outcomes", "cohort"} <= present else None)
        linkage = linkage_model(con, settings.data_dir)
    ctx = ReportContext(latest_received=as_of, generated_at=datetime.now(),
                        settings=evaluation[0] if evaluation else {}, coverage=coverage,
                        demo_note=demo_note, linkage=linkage, agreements=agreements)

    reports = Path(settings.reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    name = f"lead_report_{(today or date.today()).isoformat()}"
    staging = reports / f".{name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    with small_cell_threshold(threshold):
        (staging / "lead_report.html").write_text(render_html(tables, ctx), encoding="utf-8")
    for t in tables:
        _write_csv(staging / f"{t.name}.csv", t)
    if needs_part2_notice(tables):
        (staging / "PART2_NOTICE.txt").write_text(PART2_NOTICE + "\n", encoding="utf-8")

    final = reports / name
    latest_staging = reports / ".latest.partial"
    if latest_staging.exists():
        shutil.rmtree(latest_staging)
    shutil.copytree(staging, latest_staging)
    replace_dir(staging, final)
    replace_dir(latest_staging, reports / "latest")

    paths = {"html": str(final / "lead_report.html")}
    paths.update({t.name: str(final / f"{t.name}.csv") for t in tables})
    return paths
