"""The synthetic demo's planted effect, set beside the report's estimate."""

from __future__ import annotations

from pathlib import Path

from leadhub.core.settings import Settings
from leadhub.core.warehouse import connect
from transforms.report.model import RE_ARREST_WINDOW
from transforms.report.source import report_source
from transforms.report.tables import RearrestEstimates, marts_present, rearrest_estimates


TRUTH_FILE = "truth.json"


def planted_effect(settings: Settings) -> dict | None:
    """The effect planted in the synthetic demo data, or None when the data is not the demo.

    Only the demo generator writes ``<data dir>/answers/truth.json``; the report reads two
    numbers from it to label itself as demo output, and computes nothing from it.
    """
    import json

    path = Path(settings.answers_dir) / TRUTH_FILE
    if not path.is_file():
        return None
    truth = json.loads(path.read_text(encoding="utf-8"))
    planted = (truth.get("planted") or {}).get(f"odds_ratio_lead_any_rearrest_{RE_ARREST_WINDOW}")
    if planted is None:
        return None
    true_unadjusted = (truth.get("observed_unadjusted_odds_ratio") or {}).get(str(RE_ARREST_WINDOW))
    return {"planted": float(planted),
            "true_unadjusted": float(true_unadjusted) if true_unadjusted is not None else None}


def planted_effect_text(est: RearrestEstimates, effect: dict) -> str:
    """One paragraph: the planted odds ratio, the report's estimate and interval, and whether
    the interval covers it."""
    planted = effect["planted"]
    text = (f"Synthetic demo data: the generator planted an odds ratio of {planted:.2f} for any "
            f"re-arrest within {RE_ARREST_WINDOW} days, LEAD vs comparison, adjusted for prior "
            f"arrests, age and sex. ")
    if est.withheld:
        return text + "This report's estimate is withheld (small cells), so it cannot be compared."
    if est.adjusted is None:
        text += "This report's adjusted model could not be estimated. "
    else:
        ratio, low, high, _ = est.adjusted
        covers = "covers" if low <= planted <= high else "does not cover"
        text += (f"This report's adjusted estimate is {ratio:.2f} (95% CI {low:.2f} to "
                 f"{high:.2f}), an interval that {covers} it. ")
    if est.unadjusted is not None:
        text += (f"The unadjusted estimate, {est.unadjusted[0]:.2f}, compares cohorts that differ "
                 f"in prior arrests, age and sex")
        if effect.get("true_unadjusted") is not None:
            text += (f"; counted on the true people, without linkage errors, it would be "
                     f"{effect['true_unadjusted']:.2f}")
        text += "."
    return text.strip()


def planted_effect_line(settings: Settings) -> str | None:
    """What ``leadhub demo`` prints after the report: the planted effect against the estimate.

    None when the data is not the demo's or nothing has been built yet.
    """
    effect = planted_effect(settings)
    source = report_source(settings)
    if effect is None or source is None:
        return None
    with connect(source, read_only=True) as con:
        if "outcomes_summary" not in marts_present(con):
            return None
        return planted_effect_text(rearrest_estimates(con), effect)
