"""The published LEAD report: one self-contained HTML file plus one CSV per table.

Only aggregates leave the warehouse: every table here is computed from marts
and ops, never from person-level rows, and counts from 1 to 10 are suppressed
(shown as "<11") because small cells can identify people in a program this
size. Values that would let a suppressed count be worked back out (per-person
means, shares, odds ratios and their intervals) are withheld with it. The HTML
carries its CSS and charts inline so it can be emailed or archived as one file
and opened without network access.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import shutil
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy.special import expit

from connectors.contracts import load_contracts
from leadhub.errors import LeadHubError
from leadhub.settings import Settings
from leadhub.warehouse import connect

SMALL_CELL_MAX = 10
SUPPRESSED = "<11"          # a count from 1 to SMALL_CELL_MAX
WITHHELD = "suppressed"     # a derived value that would reveal such a count
NOT_APPLICABLE = "-"
Z_95 = 1.959963984540054
RE_ARREST_WINDOW = 365

# 42 CFR 2.32(a)(2), the short form allowed on every disclosure of Part 2 records.
PART2_NOTICE = "42 CFR part 2 prohibits unauthorized use or disclosure of these records."
TREATMENT = "treatment"

REFERRAL_TYPES = ("arrest_diversion", "social_contact", "community")
COHORT_LABELS = {"lead": "LEAD", "comparison": "Comparison"}
MEASURES = (("arrests", "Arrests"), ("bookings", "Jail bookings"), ("jail_days", "Jail days"))


# ---------------------------------------------------------------- statistics

def odds_ratio_woolf(a: int, b: int, c: int, d: int, z: float = Z_95) -> tuple[float, float, float]:
    """Odds ratio of the 2x2 table [[a, b], [c, d]] with Woolf's (log) confidence interval.

    Rows are the groups compared (first row in the numerator), columns are
    outcome yes / no. Woolf's interval is undefined when a cell is zero.
    """
    if min(a, b, c, d) <= 0:
        raise ValueError("the Woolf interval needs every cell of the 2x2 table above zero")
    log_or = math.log(a * d / (b * c))
    se = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    return math.exp(log_or), math.exp(log_or - z * se), math.exp(log_or + z * se)


@dataclass(frozen=True)
class LogisticFit:
    coef: np.ndarray
    se: np.ndarray
    converged: bool
    iterations: int


def fit_logistic(X: np.ndarray, y: np.ndarray, max_iter: int = 50, tol: float = 1e-10) -> LogisticFit:
    """Maximum-likelihood logistic regression by iteratively reweighted least squares.

    X must already hold the intercept column. Convergence is judged on the
    relative change in deviance (as R's glm does), so a covariate with
    separated data cannot stall the fit of the others; standard errors come
    from the inverse Fisher information at the estimate.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    beta = np.zeros(X.shape[1])
    deviance = math.inf
    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):
        p = expit(X @ beta)
        w = np.clip(p * (1 - p), 1e-12, None)
        information = X.T @ (X * w[:, None])
        beta = beta + np.linalg.solve(information, X.T @ (y - p))
        p = np.clip(expit(X @ beta), 1e-15, 1 - 1e-15)
        new_deviance = -2 * float(np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)))
        if abs(new_deviance - deviance) / (abs(new_deviance) + 0.1) < tol:
            converged = True
            break
        deviance = new_deviance
    p = expit(X @ beta)
    information = X.T @ (X * (p * (1 - p))[:, None])
    se = np.sqrt(np.diag(np.linalg.inv(information)))
    return LogisticFit(coef=beta, se=se, converged=converged, iterations=iteration)


def adjusted_odds_ratio(lead: list[int], outcome: list[int], prior_arrests: list[int],
                        age: list[float | None], sex: list[str | None],
                        z: float = Z_95) -> tuple[float, float, float, int] | None:
    """LEAD vs comparison odds ratio adjusted for prior arrests, age and sex.

    Complete cases only; sex enters as indicators against the most common
    value. Returns (odds ratio, low, high, people used), or None when the
    model cannot be estimated (too few people, no variation, no convergence).
    """
    keep = [i for i in range(len(lead)) if age[i] is not None and sex[i] is not None]
    if len(keep) < 10:
        return None
    sexes = [sex[i] for i in keep]
    levels = sorted(set(sexes), key=lambda s: (-sexes.count(s), s))
    columns = [np.ones(len(keep)),
               np.array([lead[i] for i in keep], dtype=float),
               np.array([prior_arrests[i] for i in keep], dtype=float),
               np.array([age[i] for i in keep], dtype=float)]
    columns += [np.array([s == level for s in sexes], dtype=float) for level in levels[1:]]
    y = np.array([outcome[i] for i in keep], dtype=float)
    if len(set(y)) < 2 or len(set(columns[1])) < 2:
        return None
    try:
        fit = fit_logistic(np.column_stack(columns), y)
    except np.linalg.LinAlgError:
        return None
    b, se = fit.coef[1], fit.se[1]
    if not (fit.converged and math.isfinite(b) and math.isfinite(se)):
        return None
    return math.exp(b), math.exp(b - z * se), math.exp(b + z * se), len(keep)


# ---------------------------------------------------------------- suppression

def is_small(n: int | None) -> bool:
    return n is not None and 1 <= n <= SMALL_CELL_MAX


def count_cell(n: int) -> str:
    """A published count: 1 to 10 become "<11"; zero is shown."""
    return SUPPRESSED if is_small(n) else str(int(n))


def derived_cell(value: float | None, counts: tuple[int, ...], fmt: str = "{:.2f}") -> str:
    """A value computed from counts: withheld when any of those counts is suppressed."""
    if any(is_small(n) for n in counts):
        return WITHHELD
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NOT_APPLICABLE
    return fmt.format(value)


def _part_cell(part: int, whole: int) -> str:
    """A count published beside its total: withheld when the remainder is suppressed."""
    if is_small(part):
        return SUPPRESSED
    return WITHHELD if is_small(whole - part) else str(int(part))


# ---------------------------------------------------------------- tables

@dataclass
class Table:
    """One published table: its CSV name, the rows as displayed, and its sources."""
    name: str
    title: str
    header: list[str]
    rows: list[list[str]]
    sources: frozenset[str]
    note: str = ""
    chart_png: str | None = None


@dataclass
class ReportContext:
    data_as_of: date | None
    generated_at: datetime
    settings: dict = field(default_factory=dict)


def _fetch(con, sql: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _months(first: date, last: date) -> list[date]:
    months, m = [], first.replace(day=1)
    while m <= last:
        months.append(m)
        m = date(m.year + (m.month == 12), m.month % 12 + 1, 1)
    return months


def suppress_grid(counts: dict) -> dict:
    """Display values for a table of counts whose grand total is known elsewhere.

    Counts from 1 to 10 become "<11". If that leaves a single suppressed cell,
    the grand total (about the number of LEAD participants, published in the
    outcomes table) minus the shown cells would give it away, so the smallest
    other non-zero cell is withheld too.
    """
    shown = {k: count_cell(n) for k, n in counts.items()}
    if sum(is_small(n) for n in counts.values()) == 1:
        others = [(n, k) for k, n in counts.items() if n > SMALL_CELL_MAX]
        if others:
            shown[min(others, key=lambda pair: pair[0])[1]] = WITHHELD
    return shown


def referrals_table(con) -> Table:
    """Referrals per calendar month by referral type (all precincts)."""
    rows = _fetch(con, """SELECT month, referral_type, sum(referrals)::BIGINT AS n
                          FROM marts.referrals_monthly GROUP BY ALL ORDER BY ALL""")
    types = list(REFERRAL_TYPES) + sorted({r["referral_type"] for r in rows} - set(REFERRAL_TYPES))
    found = {(r["month"], r["referral_type"]): r["n"] for r in rows}
    months = _months(min(r["month"] for r in rows), max(r["month"] for r in rows)) if rows else []
    shown = suppress_grid({(m, t): found.get((m, t), 0) for m in months for t in types})
    table = Table(
        name="referrals_monthly", title="LEAD referrals per month, by referral type",
        header=["Month"] + types,
        rows=[[m.strftime("%Y-%m")] + [shown[m, t] for t in types] for m in months],
        sources=frozenset({"police"}),
        note="Referrals counted by referral date. No totals are shown, and a second cell is "
             "withheld when only one is suppressed, so that no suppressed cell can be "
             "recovered by subtraction.")
    if months:
        fig = Figure(figsize=(8, 3.2))
        ax = fig.add_subplot()
        for t in types:
            values = [shown[m, t] for m in months]
            ax.plot(range(len(months)), [int(v) if v.isdigit() else math.nan for v in values],
                    marker="o", label=t)
        step = max(1, len(months) // 12)
        ax.set_xticks(range(0, len(months), step),
                      [m.strftime("%Y-%m") for m in months[::step]], rotation=45, fontsize=8)
        ax.set_ylabel("Referrals")
        ax.set_ylim(bottom=0)
        ax.legend(frameon=False, fontsize=8)
        ax.set_title("Referrals per month (gaps: suppressed counts)", fontsize=10)
        table.chart_png = _png(fig)
    return table


def outcomes_table(con) -> Table:
    """Arrests, bookings and jail days before vs after the index date, per cohort and window."""
    summary = _fetch(con, "SELECT * FROM marts.outcomes_summary ORDER BY window_days, cohort DESC")
    rows = []
    for s in summary:
        n = s["n_people"]
        for measure, label in MEASURES:
            before, after = s[f"{measure}_before_sum"], s[f"{measure}_after_sum"]
            rows.append([
                f"{s['window_days']} days", label, COHORT_LABELS.get(s["cohort"], s["cohort"]),
                count_cell(n), _part_cell(s["n_followup_complete"], n),
                count_cell(before), count_cell(after),
                derived_cell(s[f"{measure}_before_mean"], (n, before)),
                derived_cell(s[f"{measure}_after_mean"], (n, after)),
            ])
    table = Table(
        name="outcomes", title="Outcomes before and after the index date, LEAD vs comparison",
        header=["Window", "Measure", "Cohort", "People", "People with full follow-up",
                "Total before", "Total after", "Per person before", "Per person after"],
        rows=rows, sources=frozenset({"police", "jail"}),
        note="Before = [index - window, index); after = (index, index + window]; events on the "
             "index day are in neither. \"Full follow-up\": the whole after-window ends on or "
             "before the latest arrest date in the data; the others are counted as observed.")
    if summary:
        table.chart_png = _outcomes_chart(summary)
    return table


def _outcomes_chart(summary: list[dict]) -> str:
    """Per-person means before vs after; suppressed values are left out and marked "s"."""
    windows = sorted({s["window_days"] for s in summary})
    fig = Figure(figsize=(9, 2.8 * len(windows)))
    axes = fig.subplots(len(windows), len(MEASURES), squeeze=False)
    for i, window in enumerate(windows):
        groups = [s for s in summary if s["window_days"] == window]
        for j, (measure, label) in enumerate(MEASURES):
            ax = axes[i][j]
            for k, (when, color) in enumerate((("before", "#9aa9bd"), ("after", "#2f5d8c"))):
                xs = [g + (k - 0.5) * 0.4 for g in range(len(groups))]
                shown = [derived_cell(s[f"{measure}_{when}_mean"],
                                      (s["n_people"], s[f"{measure}_{when}_sum"])) for s in groups]
                heights = [0.0 if v in (WITHHELD, NOT_APPLICABLE) else float(v) for v in shown]
                ax.bar(xs, heights, width=0.38, color=color, label=when)
                for x, v in zip(xs, shown):
                    if v == WITHHELD:
                        ax.text(x, 0, "s", ha="center", va="bottom", fontsize=8)
            ax.set_xticks(range(len(groups)),
                          [COHORT_LABELS.get(s["cohort"], s["cohort"]) for s in groups])
            ax.set_title(f"{label} per person, {window} days", fontsize=9)
            if i == 0 and j == 0:
                ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return _png(fig)


def rearrest_tables(con) -> list[Table]:
    """The 2x2 table of any re-arrest within 365 days and the LEAD vs comparison odds ratio."""
    people = _fetch(con, """
        SELECT o.cohort, o.any_rearrest_after::INTEGER AS rearrest, c.prior_arrests_365,
               c.age_at_index, c.sex
        FROM marts.outcomes o JOIN marts.cohort c USING (person_key)
        WHERE o.window_days = ?""", [RE_ARREST_WINDOW])
    cells = {(cohort, r): sum(1 for p in people if p["cohort"] == cohort and p["rearrest"] == r)
             for cohort in ("lead", "comparison") for r in (1, 0)}
    a, b, c, d = cells["lead", 1], cells["lead", 0], cells["comparison", 1], cells["comparison", 0]
    small = (a, b, c, d)

    counts = Table(
        name="rearrest_2x2", title=f"Any re-arrest within {RE_ARREST_WINDOW} days after the index date",
        header=["Cohort", "People", "Re-arrested", "Not re-arrested", "Share re-arrested"],
        rows=[[COHORT_LABELS[k], count_cell(yes + no),
               _part_cell(yes, yes + no), _part_cell(no, yes + no),
               derived_cell(yes / (yes + no) if yes + no else None, (yes, no), "{:.1%}")]
              for k, yes, no in (("lead", a, b), ("comparison", c, d))],
        sources=frozenset({"police"}))

    def estimate_row(label: str, result: tuple | None, n: int, why: str) -> list[str]:
        if any(is_small(x) for x in small):
            return [label, WITHHELD, WITHHELD, WITHHELD, WITHHELD]
        if result is None:
            return [label, NOT_APPLICABLE, NOT_APPLICABLE, NOT_APPLICABLE, why]
        ratio, low, high = result
        return [label, f"{ratio:.2f}", f"{low:.2f}", f"{high:.2f}", str(n)]

    try:
        unadjusted = odds_ratio_woolf(a, b, c, d)
    except ValueError:
        unadjusted = None
    adjusted = adjusted_odds_ratio(
        [int(p["cohort"] == "lead") for p in people], [p["rearrest"] for p in people],
        [p["prior_arrests_365"] for p in people], [p["age_at_index"] for p in people],
        [p["sex"] for p in people])
    odds = Table(
        name="rearrest_odds_ratio",
        title=f"Odds ratio of any re-arrest within {RE_ARREST_WINDOW} days, LEAD vs comparison",
        header=["Model", "Odds ratio", "95% CI low", "95% CI high", "People"],
        rows=[estimate_row("Unadjusted (Woolf interval)", unadjusted, a + b + c + d,
                           "not estimable: a cell of the 2x2 table is zero"),
              estimate_row("Adjusted for prior arrests (365 days), age and sex (logistic regression)",
                           adjusted[:3] if adjusted else None, adjusted[3] if adjusted else 0,
                           "not estimable: too few people or the model did not converge")],
        sources=frozenset({"police"}),
        note="An odds ratio below 1 means lower odds of re-arrest for LEAD participants. The "
             "cohorts are not randomized; the adjusted model accounts only for the listed "
             "covariates (complete cases). Estimates are withheld when any cell of the 2x2 "
             "table is suppressed, because the ratio and its interval would reveal it.")
    return [counts, odds]


def lineage_table(con) -> Table:
    """Batches received per extract and the latest receipt: which deliveries this report reflects."""
    found = {r["contract"]: r for r in _fetch(con, """
        SELECT contract, count(*) AS batches, max(received_at) AS latest_received
        FROM ops.batches GROUP BY contract""")}
    rows = []
    for name in load_contracts():
        r = found.get(name)
        rows.append([name, str(r["batches"]) if r else "0",
                     r["latest_received"].strftime("%Y-%m-%d %H:%M") if r else "none received"])
    return Table(name="batch_lineage", title="Data lineage: batches loaded per extract",
                 header=["Extract", "Batches", "Latest received"], rows=rows,
                 sources=frozenset())


def build_tables(con) -> list[Table]:
    return [referrals_table(con), outcomes_table(con), *rearrest_tables(con), lineage_table(con)]


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


# ---------------------------------------------------------------- rendering

CSS = """
body { font-family: Georgia, 'Times New Roman', serif; max-width: 960px; margin: 2em auto;
       padding: 0 1em; color: #1d1d1d; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 2em; }
.meta { color: #555; } .note { font-size: .9em; color: #444; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #bbb; padding: .25em .6em; text-align: right; }
th { background: #eef1f5; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; } .notice { border: 2px solid #8c2f2f; padding: .6em 1em; }
footer { margin-top: 3em; font-size: .85em; color: #444; border-top: 1px solid #ccc; }
"""


def needs_part2_notice(tables: list[Table]) -> bool:
    """Part 2 requires the re-disclosure notice on anything drawn from treatment records."""
    return any(TREATMENT in t.sources for t in tables)


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in t.rows)
    if not t.rows:
        body = f'<tr><td colspan="{len(t.header)}">No data yet.</td></tr>'
    parts = [f"<h2>{html.escape(t.title)}</h2>",
             f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"]
    if t.note:
        parts.append(f'<p class="note">{html.escape(t.note)}</p>')
    if t.chart_png:
        parts.append(f'<img alt="{html.escape(t.title)}" src="data:image/png;base64,{t.chart_png}">')
    return "\n".join(parts)


def _methods(ctx: ReportContext) -> str:
    s = ctx.settings
    precincts = html.escape(", ".join(s.get("comparison_precincts") or []))
    items = [
        "<b>LEAD cohort</b>: every person with a police LEAD referral; the index date is the "
        "first referral date.",
        f"<b>Comparison cohort</b>: people never referred to LEAD who had an arrest with a "
        f"LEAD-eligible charge in a comparison precinct ({precincts}) "
        f"between {s.get('program_start')} and {s.get('program_end')}; the index date is the first "
        f"such arrest. A person who meets both definitions is counted as LEAD.",
        "<b>Windows</b>: for a window of W days, \"before\" is [index &minus; W, index) and "
        "\"after\" is (index, index + W]; events on the index day count in neither.",
        "<b>Arrests</b>: distinct police arrests by arrest date. <b>Bookings</b>: distinct jail "
        "bookings by booking date. <b>Jail days</b>: calendar days from booking date to release "
        "date, both included, summed over those bookings; people still in custody are counted up "
        "to the latest booking or release date in the jail data.",
        "<b>Re-arrest</b>: at least one arrest in the after-window. The odds ratio compares the "
        "odds of re-arrest within 365 days, LEAD vs comparison, with Woolf's 95% interval; the "
        "adjusted estimate is a logistic regression on cohort, prior arrests in the 365 days "
        "before the index date, age at the index date and sex.",
        "<b>People</b> are linked across agencies on pseudonymized identifiers; no names, "
        "identifiers or pseudonyms appear in this report. Treatment records are used for a "
        "person only while their 42 CFR Part 2 consent is active.",
        f"<b>Small cells</b>: counts from 1 to {SMALL_CELL_MAX} are shown as "
        f"\"{html.escape(SUPPRESSED)}\"; counts, means, shares and ratios that would reveal such "
        f"a count are shown as \"{WITHHELD}\".",
        f"Cohort definitions: transforms/evaluation.yaml version {s.get('version')}.",
    ]
    return "<h2>Methods</h2><ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def render_html(tables: list[Table], ctx: ReportContext) -> str:
    """The whole report as one HTML string: inline CSS and images, no external resources."""
    as_of = ctx.data_as_of.isoformat() if ctx.data_as_of else "no data received"
    notice = (f'<p class="notice"><b>Notice:</b> {html.escape(PART2_NOTICE)}</p>'
              if needs_part2_notice(tables) else "")
    body = "\n".join(_html_table(t) for t in tables)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>LEAD evaluation report, data as of {as_of}</title>
<style>{CSS}</style>
</head>
<body>
<h1>LEAD evaluation report</h1>
<p class="meta">Data as of {as_of} (latest delivery received). Generated
{ctx.generated_at.strftime("%Y-%m-%d %H:%M")}.</p>
{notice}
{body}
{_methods(ctx)}
<footer><p>Small-cell protection: counts from 1 to {SMALL_CELL_MAX} are shown as
"{html.escape(SUPPRESSED)}"; values that would reveal them are shown as "{WITHHELD}".
Person-level tables are never published.</p></footer>
</body>
</html>
"""


def _write_csv(path: Path, table: Table) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(table.header)
        writer.writerows(table.rows)


def _replace_dir(source: Path, target: Path) -> None:
    """Put a finished folder in place, so readers never see a half-written report."""
    if target.exists():
        shutil.rmtree(target)
    source.rename(target)


def write_report(settings: Settings, today: date | None = None) -> dict[str, str]:
    """Write reports/lead_report_<date>/ (HTML + CSVs) and refresh reports/latest/.

    Returns {'html': path, '<table name>': csv path, ...} for the dated folder.
    """
    if not Path(settings.warehouse_path).exists():
        raise LeadHubError(f"no warehouse at {settings.warehouse_path}; run ingest and build first")
    with connect(settings.warehouse_path, read_only=True) as con:
        built = con.execute("""SELECT count(*) FROM duckdb_tables()
            WHERE schema_name = 'marts' AND table_name = 'outcomes_summary'""").fetchone()[0]
        if not built:
            raise LeadHubError("the warehouse has no marts yet; run build before report")
        tables = build_tables(con)
        as_of = con.execute("SELECT max(received_at)::DATE FROM ops.batches").fetchone()[0]
        evaluation = _fetch(con, "SELECT * FROM core.evaluation_settings")
    ctx = ReportContext(data_as_of=as_of, generated_at=datetime.now(),
                        settings=evaluation[0] if evaluation else {})

    reports = Path(settings.reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    name = f"lead_report_{(today or date.today()).isoformat()}"
    staging = reports / f".{name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
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
    _replace_dir(staging, final)
    _replace_dir(latest_staging, reports / "latest")

    paths = {"html": str(final / "lead_report.html")}
    paths.update({t.name: str(final / f"{t.name}.csv") for t in tables})
    return paths
