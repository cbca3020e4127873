"""The published LEAD report: one self-contained HTML file plus one CSV per table.

Only aggregates leave the warehouse: every table is computed from marts and ops
(``tables``), and no person-level row is ever written out. Counts from 1 to 10
are suppressed and complementary suppression hides what a total would give away
(``suppression``); values derived from a hidden count are withheld with it and
rates resting on fewer than 20 events are flagged. Odds ratios and their
intervals come from ``statistics``, charts from ``charts``, the page from the
Jinja2 templates (``render``), and ``write`` puts the folder in place. Tables
drawn from treatment records carry the 42 CFR Part 2 re-disclosure notice in the
HTML and as the last line of their CSV. The methods name the linkage model the
build used and show its match weights (``linkage``).
"""

from transforms.notices import PART2_NOTICE
from transforms.report.demo import planted_effect, planted_effect_line, planted_effect_text
from transforms.report.model import Table
from transforms.report.render import ReportContext, render_html
from transforms.report.suppression import NOT_APPLICABLE, SUPPRESSED, WITHHELD, count_cell
from transforms.report.tables import RearrestEstimates
from transforms.report.write import write_report

__all__ = ["PART2_NOTICE", "planted_effect", "planted_effect_line", "planted_effect_text", "Table",
           "ReportContext", "render_html", "NOT_APPLICABLE", "SUPPRESSED", "WITHHELD", "count_cell",
           "RearrestEstimates", "write_report"]
