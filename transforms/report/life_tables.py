"""The report's housing, employment and income tables: shares by month since referral, contacts,
and the within-person models (``life_outcomes``), protected like every other table.

Each month since referral is a separate group of people counts: participants in follow-up, those
with a known status, those housed. Months are not added up (one person is in every month of
their follow-up), so suppression protects each month's own counts: a published count and its
total may never leave a count from 1 to the threshold to be worked out by subtraction.
"""

from __future__ import annotations

from transforms.report.charts import share_chart
from transforms.report.life_outcomes import (CARRY_FORWARD_MONTHS, KINDS, LAST_MONTH, OUTCOMES, STATUS_MAX_DAYS,
                                             Fit, LifeModels, life_models)
from transforms.report.model import Table, fetch_dicts
from transforms.report.suppression import (NOT_APPLICABLE, UNSTABLE_EVENTS, WITHHELD, Cells,
                                           count_cell, derived_cell, is_small, part_cell, rate_cell,
                                           suppressed_label)

SOURCES = frozenset({"police", "treatment"})
KNOWN = {"housed": "housing_known", "employed": "employment_known",
         "income_or_benefits": "income_known"}
SHORT = {"housed": "housed", "employed": "employed", "income_or_benefits": "with income or benefits"}
TERMS = {"month_since_referral": "Per month since referral",
         "contacts": "Per case-management contact in the month",
         "housed_recent": "Per assessment in the 91 days before that found the participant housed",
         "employed_recent": "Per assessment in the 91 days before that found the participant employed"}


def month_label(m: int) -> str:
    return "Month before referral" if m == -1 else f"Month {m}"


def _cells(rows: list[dict]) -> Cells:
    """Every count of the share and contact tables, per month, with how they add up."""
    cells = Cells()
    for r in rows:
        m = r["month_since_referral"]
        cells.counts[("life", m, "participants")] = r["participants"]
        for outcome, known in KNOWN.items():
            cells.counts[("life", m, known)] = r[known]
            cells.counts[("life", m, outcome)] = r[outcome]
            cells.counts[("life", m, f"not_{outcome}")] = r[known] - r[outcome]
            cells.counts[("life", m, f"{known}_not")] = r["participants"] - r[known]
            cells.sums_to([("life", m, outcome), ("life", m, f"not_{outcome}")], ("life", m, known))
            cells.sums_to([("life", m, known), ("life", m, f"{known}_not")], ("life", m, "participants"))
        cells.counts[("life", m, "people_contacted")] = r["people_contacted"]
        cells.counts[("life", m, "people_not_contacted")] = r["participants"] - r["people_contacted"]
        cells.sums_to([("life", m, "people_contacted"), ("life", m, "people_not_contacted")],
                      ("life", m, "participants"))
    cells.resolve()
    return cells


def share_tables(rows: list[dict]) -> list[Table]:
    """Share housed, employed and with income or benefits per month since referral; contacts."""
    cells = _cells(rows)
    share_rows, contact_rows, series = [], [], {label: [] for label in SHORT.values()}
    for r in rows:
        m = r["month_since_referral"]
        line, flags = [month_label(m), cells.show(("life", m, "participants"))], []
        for outcome, known in KNOWN.items():
            yes, whole = ("life", m, outcome), ("life", m, known)
            share, unstable = rate_cell(r[outcome] / r[known] if r[known] else None, r[outcome],
                                        cells.is_hidden(yes) or cells.is_hidden(whole), "{:.1%}")
            line += [cells.show(whole), cells.show(yes), share]
            series[SHORT[outcome]].append(share)
            if unstable:
                flags.append(SHORT[outcome])
        share_rows.append(line + [", ".join(flags)])
        contacted = ("life", m, "people_contacted")
        per_person = derived_cell(r["contacts"] / r["participants"] if r["participants"] else None,
                                  (r["contacts"], r["participants"]), "{:.1f}")
        if cells.is_hidden(("life", m, "participants")):
            per_person = WITHHELD
        contact_rows.append([month_label(m), cells.show(("life", m, "participants")),
                             cells.show(contacted), count_cell(r["contacts"]), per_person,
                             "yes" if r["contacts"] < UNSTABLE_EVENTS and per_person not in
                             (WITHHELD, NOT_APPLICABLE) else ""])
    carried = (f"A month takes the latest case-manager assessment reporting on it, carried forward "
               f"up to {CARRY_FORWARD_MONTHS} months when the case manager did not reassess; "
               f"beyond that, or when the status was recorded as unknown, the month counts as not "
               f"known and is left out of the share.")
    shares = Table(
        name="life_outcomes_monthly",
        title="Housing, employment and income of LEAD participants by month since referral",
        header=["Month since referral", "Participants in follow-up", "Housing known", "Housed",
                "Share housed", "Employment known", "Employed", "Share employed", "Income known",
                "Income or benefits", "Share with income or benefits", "Unstable shares (under 20 people)"],
        rows=share_rows, sources=SOURCES,
        note=f"Month 0 starts on the first referral date; the month before referral is the baseline. "
             f"Housed: transitional or permanent housing; employed: part or full time; income or "
             f"benefits: legitimate income, public benefits or both. Shares are of participants "
             f"whose status is known that month. {carried} Participants are counted only in months "
             f"that ended by the latest assessment in the data, and only while their 42 CFR Part 2 "
             f"consent is active (others have no known status). \"{suppressed_label()}\" and "
             f"\"{WITHHELD}\": small-cell protection within each month.")
    if rows:
        shares.chart_png = share_chart(
            "Participants housed, employed, with income or benefits (gaps: suppressed)",
            [str(r["month_since_referral"]) for r in rows], series, "Months since referral")
    contacts = Table(
        name="life_contacts_monthly",
        title="Case-management contacts of LEAD participants by month since referral",
        header=["Month since referral", "Participants in follow-up", "Participants with a contact",
                "Contacts", "Contacts per participant", "Unstable (under 20 contacts)"],
        rows=contact_rows, sources=SOURCES,
        note="Case-management service contacts by contact date, of participants whose consent "
             "is active; the same participants and months as the table above.")
    return [shares, contacts]


def _withheld(fit: Fit) -> bool:
    """A model resting on a count from 1 to the threshold is withheld like that count."""
    return any(is_small(n) for n in (fit.people, fit.events, fit.non_events))


def _estimate_cells(fit: Fit, term: str, fmt: str) -> list[str]:
    if _withheld(fit):
        return [WITHHELD] * 3
    if not fit.estimated:
        return [NOT_APPLICABLE] * 3
    e = fit.estimates[term]
    return [fmt.format(e.ratio), fmt.format(e.low), fmt.format(e.high)]


def _over_follow_up(fit: Fit, term: str) -> str:
    """A per-month odds ratio compounded over the 18 months of follow-up, with its interval."""
    if term != "month_since_referral" or _withheld(fit) or not fit.estimated:
        return ""
    e = fit.estimates[term]
    return f"{e.ratio ** LAST_MONTH:.2f} ({e.low ** LAST_MONTH:.2f} to {e.high ** LAST_MONTH:.2f})"


def _fit_note(fit: Fit, what: str) -> str:
    if _withheld(fit):
        return "withheld: rests on a suppressed count"
    if not fit.estimated:
        return f"not estimable: {fit.reason}"
    few = min(fit.events, fit.non_events) if fit.non_events else fit.events
    return f"unstable: under {UNSTABLE_EVENTS} {what}" if few < UNSTABLE_EVENTS else ""


def model_tables(models: LifeModels) -> list[Table]:
    """Odds ratios of each outcome per month since referral (alone and with contacts), within
    person and population-averaged; rate ratios of arrests after a housed or employed assessment."""
    rows = []
    for outcome, label in OUTCOMES:
        for kind, kind_label in KINDS.items():
            for fits, with_what in ((models.trend, "time since referral"),
                                    (models.contacts, "time since referral and contacts")):
                fit = fits[(outcome, kind)]
                for term in fit.terms:
                    rows.append([label, f"{kind_label}, {with_what}", TERMS[term],
                                 *_estimate_cells(fit, term, "{:.3f}"), _over_follow_up(fit, term),
                                 count_cell(fit.people),
                                 count_cell(fit.months), part_cell(fit.events, fit.months),
                                 _fit_note(fit, "months with or without the outcome")])
    odds = Table(
        name="life_outcome_models",
        title="Change in the odds of being housed, employed and having income or benefits "
              "after referral",
        header=["Outcome", "Model", "Term", "Odds ratio", "95% CI low", "95% CI high",
                f"Over {LAST_MONTH} months (95% CI)", "People", "Person-months",
                "Months with the outcome", "Note"],
        rows=rows, sources=SOURCES,
        note="Months from the month before referral to month 18 with an assessment made in them "
             "(carried-forward months repeat an earlier observation and are left out). An odds "
             f"ratio above 1 per month means the odds rise with each month since referral (over "
             f"{LAST_MONTH} months it is compounded {LAST_MONTH} times); per "
             "contact, with each case-management contact in the month, time since referral held "
             "fixed. Within-person: how a participant's own odds change (each person compared only "
             "with themselves; people whose status never changes add nothing). Population-averaged: "
             "how the odds across participants change; nearer 1 than the within-person ratio when "
             "people differ. 95% intervals are clustered by person: one participant's months are not "
             "taken as independent. See the methods for what each model assumes. An estimate "
             "resting on a suppressed count is withheld.")
    fit = models.arrests
    arrest_rows = [[TERMS[term], *_estimate_cells(fit, term, "{:.2f}"), count_cell(fit.people),
                    count_cell(fit.months), count_cell(fit.events), _fit_note(fit, "arrests")]
                   for term in fit.terms]
    arrests = Table(
        name="life_arrests_model",
        title="Arrests after assessments that found a participant housed or employed "
              "(within-person Poisson)",
        header=["Term", "Rate ratio", "95% CI low", "95% CI high", "People", "Person-days",
                "Arrests", "Note"],
        rows=arrest_rows, sources=SOURCES,
        note=f"Participants with an assessment, each day from referral to the end of month 18: "
             f"arrests per day on how many of the participant's assessments in the "
             f"{STATUS_MAX_DAYS} days before found them housed (or employed), the other status and "
             f"the month since referral held fixed. Each participant is compared only with "
             f"themselves, so people who are arrested more often in general do not make housing "
             f"look protective; 95% intervals are clustered by person. A rate ratio below 1 means "
             f"fewer arrests in the months after a housed (or employed) assessment. An association, "
             f"not proof that housing caused fewer arrests: what changes in a person's life along "
             f"with housing is not seen.")
    return [odds, arrests]


def life_outcome_tables(con) -> list[Table]:
    rows = fetch_dicts(con, "SELECT * FROM marts.life_outcomes_monthly ORDER BY month_since_referral")
    return [*share_tables(rows), *model_tables(life_models(con))]
