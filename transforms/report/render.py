"""The report as one self-contained HTML page, through the Jinja2 templates in transforms/templates.

CSS, charts (PNG as data URIs) and the linkage model's match-weight chart (SVG)
are inline, so the page can be emailed or archived as one file and opened
without network access. Autoescape is on: no value from the data becomes markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from transforms.rendering import render
from transforms.report.life_outcomes import CARRY_FORWARD_MONTHS, STATUS_MAX_DAYS
from transforms.report.linkage import LinkageModel
from transforms.report.model import TREATMENT, Table
from transforms.report.suppression import UNSTABLE_EVENTS, WITHHELD, small_cell_max, suppressed_label

EVALUATION_SETTINGS = ("comparison_precincts", "program_start", "program_end", "version")


@dataclass
class ReportContext:
    latest_received: date | None          # the newest accepted delivery, any extract
    generated_at: datetime
    settings: dict = field(default_factory=dict)
    coverage: list = field(default_factory=list)     # [Coverage], per extract
    demo_note: str | None = None          # only for the synthetic demo data
    linkage: LinkageModel = field(default_factory=LinkageModel)
    agreements: list = field(default_factory=list)   # [dict] the data-sharing agreements drawn on


def needs_part2_notice(tables: list[Table]) -> bool:
    """Part 2 requires the re-disclosure notice on anything drawn from treatment records."""
    return any(TREATMENT in t.sources for t in tables)


def _period(ctx: ReportContext) -> dict:
    """The months the events cover, the extract that ends earliest, and the latest receipt."""
    spans = [c for c in ctx.coverage if c.first_month and c.last_month]
    received = ctx.latest_received.isoformat() if ctx.latest_received else None
    if not spans:
        return {"title": "no data received" if received is None else f"data received {received}",
                "first": None, "received": received}
    first = min(c.first_month for c in spans)
    last = max(c.last_month for c in spans)
    earliest = min(spans, key=lambda c: (c.last_month, c.extract))
    ends_early = earliest.last_month < last
    return {"title": f"events {first:%Y-%m} to {last:%Y-%m}", "first": f"{first:%Y-%m}",
            "last": f"{last:%Y-%m}", "received": received,
            "earliest": earliest.extract if ends_early else None,
            "earliest_month": f"{earliest.last_month:%Y-%m}"}


def render_html(tables: list[Table], ctx: ReportContext) -> str:
    """The whole report as one HTML string: inline CSS and images, no external resources."""
    return render(
        "report.html.j2",
        tables=[{"name": t.name, "title": t.title, "header": t.header, "rows": t.rows, "note": t.note,
                 "chart_png": t.chart_png, "treatment": TREATMENT in t.sources} for t in tables],
        part2=needs_part2_notice(tables), period=_period(ctx),
        generated_at=ctx.generated_at.strftime("%Y-%m-%d %H:%M"), demo_note=ctx.demo_note,
        settings={k: ctx.settings.get(k) for k in EVALUATION_SETTINGS}, linkage=ctx.linkage,
        SMALL_CELL_MAX=small_cell_max(), SUPPRESSED=suppressed_label(), WITHHELD=WITHHELD,
        agreements=ctx.agreements,
        UNSTABLE_EVENTS=UNSTABLE_EVENTS, LIFE_CARRY_FORWARD_MONTHS=CARRY_FORWARD_MONTHS,
        LIFE_STATUS_MAX_DAYS=STATUS_MAX_DAYS)
