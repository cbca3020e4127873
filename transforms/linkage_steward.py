"""The steward's linkage commands: train a new model on staging, explain why records linked.

``train_model`` reads the current identity rows (keyed encodings only) from
the warehouse, estimates a model with Splink on a scratch connection, stores
it as the new current model (``transforms.linkage_store``) and writes its
match-weight chart; it is the only way a build's model changes.

``explain`` shows, for the pairs of records inside one person key (or one
pair of agency ids), each comparison's level and match weight — a waterfall
from the prior to the total — without any clear-text value, with the model
that linked the current build. It is audited
exactly like a crosswalk lookup: the entry is appended to the steward's
hash-chained log before anything is read.
"""

from __future__ import annotations

import getpass
import math

import pandas as pd

from leadhub.core.contracts import load_contracts
from leadhub.core.errors import LeadHubError
from leadhub.core.settings import Settings
from leadhub.core.warehouse import connect
from leadhub.core import audit
from transforms import linkage_model, linkage_store
from transforms.encodings import load_settings
from transforms.link import _require_one_key, identities, last_linkage_run


def _read_warehouse(settings: Settings):
    if not settings.warehouse_path.exists():
        raise LeadHubError(f"no warehouse at {settings.warehouse_path}; ingest and build first")
    return connect(settings.warehouse_path, read_only=True)


def _identity(con, link_settings: dict) -> tuple[pd.DataFrame, "linkage_model.Encoded"]:
    """The identity rows and their encodings, read as the build reads them."""
    _require_one_key(con)
    return identities(con, load_contracts(), link_settings)


def train_model(settings: Settings, link_settings: dict | None = None) -> dict:
    """Train on the current staging encodings, store the model as current; returns what changed."""
    link_settings = link_settings or load_settings()
    with _read_warehouse(settings) as con:
        rows, enc = _identity(con, link_settings)
    need = link_settings["training"]["min_records"]
    old = linkage_store.current_model(settings.data_dir)
    if len(rows) < need:
        raise LeadHubError(f"only {len(rows)} identity rows in staging, at least {need} are needed to train; "
                           f"builds keep using model {linkage_store.version_of(old)}")
    con = linkage_model.scratch()
    try:
        linkage_model.load_table(con, linkage_model.LEFT, enc, linkage_model.fields_of(link_settings))
        model = linkage_model.model_for(list(enc.fields), link_settings, "dedupe_only")
        trained = linkage_model.train(con, model, link_settings, two_inputs=False)
    finally:
        con.close()
    new = linkage_store.stamp(trained, {"records": len(rows), "source": "staging identity rows"}, link_settings)
    path = linkage_store.save_model(settings.data_dir, new)
    chart = path.with_suffix(".svg")
    linkage_store.write_private(chart, linkage_store.match_weight_chart_svg(new, previous=old))
    return {"old": old, "new": new, "path": path, "chart": chart}


# -- explain -------------------------------------------------------------------------------------

def _model_of_last_build(con, settings: Settings) -> dict:
    """The model that linked the current build (the current model if no build recorded one)."""
    run = last_linkage_run(con)
    if run is None:
        return linkage_store.current_model(settings.data_dir)
    return linkage_store.model_version(settings.data_dir, run[0])


def _parse_target(target: str) -> tuple[str | None, list[tuple[str, str]]]:
    """``pk_...`` -> (key, []); ``agency:token,agency:token`` -> (None, [two agency ids])."""
    if target.startswith("pk_") and "," not in target:
        return target, []
    parts = [p.strip() for p in target.split(",")]
    if len(parts) != 2 or not all(":" in p for p in parts):
        raise LeadHubError("explain needs a person key (pk_...) or a pair AGENCY:PERSON_TOKEN,AGENCY:PERSON_TOKEN")
    return None, [tuple(p.split(":", 1)) for p in parts]


def _labels(model: dict) -> dict[str, dict[int, str]]:
    """Per comparison: Splink's gamma value -> level label (-1 is the null level)."""
    out = {}
    for c in model["comparisons"]:
        levels = c["comparison_levels"]
        non_null = [lv for lv in levels if not lv.get("is_null_level")]
        labels = {-1: "missing"}
        for i, lv in enumerate(non_null):
            labels[len(non_null) - 1 - i] = lv.get("label_for_charts") or lv["sql_condition"]
        out[c["output_column_name"]] = labels
    return out


def explain(settings: Settings, target: str, reason: str, who: str | None = None,
            link_settings: dict | None = None) -> dict:
    """Per pair of records in a person key (or one pair of agency ids): field, level, match weight."""
    if not reason or not reason.strip():
        raise LeadHubError("linkage explain needs a --reason; it is written to the audit log")
    person_key, pair = _parse_target(target)
    audit.verify_audit(settings)
    audit.append_audit(settings, who=who or getpass.getuser(), person_key=target, reason=reason.strip(),
                       action="linkage explain")
    link_settings = link_settings or load_settings()
    with _read_warehouse(settings) as con:
        rows, enc = _identity(con, link_settings)
        model = _model_of_last_build(con, settings)
        if person_key:
            nodes = {(a, t) for a, t in con.execute(
                "SELECT agency, person_token FROM core.person_link WHERE person_key = ?", [person_key]).fetchall()}
            if not nodes:
                raise LeadHubError(f"no person key {person_key} in the current build")
        else:
            nodes = set(pair)
    node_of_row = list(zip(rows["agency"], rows["person_token"]))
    members = [r for r, n in enumerate(node_of_row) if n in nodes]
    if pair and {node_of_row[r] for r in members} != nodes:
        raise LeadHubError("one of the two agency ids has no identity row in the current build")
    result = {"target": target, "model": linkage_store.version_of(model),
              "prior_weight": math.log2(model["probability_two_random_records_match"]
                                        / (1 - model["probability_two_random_records_match"])),
              "threshold": link_settings["threshold"], "agency_ids": len(nodes), "pairs": []}
    if len(members) < 2:
        return result
    ids = ", ".join(str(r) for r in members)
    probe = dict(model, blocking_rules_to_generate_predictions=[
        {"blocking_rule": f"l.unique_id IN ({ids}) AND r.unique_id IN ({ids})", "sql_dialect": "duckdb"}])
    con = linkage_model.scratch()
    try:
        linkage_model.load_table(con, linkage_model.LEFT, enc, linkage_model.fields_of(link_settings))
        # Term frequencies come from every identity row, as in the build.
        scored = linkage_model.predict(con, probe, threshold=None, two_inputs=False, explain=True)
    finally:
        con.close()
    labels = _labels(model)
    for rec in scored.sort_values("weight", ascending=False).to_dict("records"):
        a, b = node_of_row[int(rec["left"])], node_of_row[int(rec["right"])]
        if a == b:
            continue
        steps = []
        for field, names in labels.items():
            gamma = rec.get(f"gamma_{field}")
            gamma = -1 if gamma is None or pd.isna(gamma) else int(gamma)
            tf = rec.get(f"mw_tf_adj_{field}")
            tf = 0.0 if tf is None or pd.isna(tf) else float(tf)
            weight = rec.get(f"mw_{field}")
            weight = 0.0 if weight is None or pd.isna(weight) else float(weight)
            steps.append({"field": field, "level": names.get(gamma, str(gamma)), "weight": weight + tf,
                          "term_frequency": tf})
        result["pairs"].append({"left": f"{a[0]}:{a[1]}", "right": f"{b[0]}:{b[1]}",
                                "weight": float(rec["weight"]), "steps": steps})
    return result


def format_explanation(result: dict) -> str:
    lines = [f"{result['target']}: {result['agency_ids']} agency id(s), model {result['model']}, "
             f"threshold {result['threshold']:+.2f}"]
    if not result["pairs"]:
        lines.append("  no pair of records to compare")
    for p in result["pairs"]:
        lines.append(f"\n{p['left']}\n  ~ {p['right']}\n  match weight {p['weight']:+.2f} "
                     f"({'above' if p['weight'] >= result['threshold'] else 'below'} the threshold)")
        lines.append(f"  {'prior':<28} {result['prior_weight']:+8.2f}  {result['prior_weight']:+8.2f}")
        running = result["prior_weight"]
        for s in p["steps"]:
            running += s["weight"]
            tf = f"  (term frequency {s['term_frequency']:+.2f})" if s["term_frequency"] else ""
            lines.append(f"  {s['field'] + ': ' + s['level']:<28} {s['weight']:+8.2f}  {running:+8.2f}{tf}")
    return "\n".join(lines)


