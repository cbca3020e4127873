"""Trained linkage models as artifacts: versioned files beside the warehouse, summaries and charts.

A model is Splink's JSON settings dict (comparison levels with their m and u,
the prior, the blocking rules) plus a ``leadhub`` entry: version (timestamp and
content hash), when it was trained, on how many records, with which settings
version, and the threshold. Models live in ``<data dir>/linkage/models/`` (0700,
files 0600) with a ``current`` pointer file; never in the analysts' snapshot.
A build uses the current model and never trains; without one it uses the
default model shipped in the package (``linkage_default_model.json``, written
by ``python -m transforms.linkage_store`` from the documented priors in
``linkage_settings.json``, not from any data).
"""

from __future__ import annotations

import hashlib
import html
import json
import math
from datetime import datetime, timezone
from pathlib import Path

from leadhub.core.errors import LeadHubError
from leadhub.core.files import atomic_write_text, make_private_dir
from transforms.encodings import load_settings

DEFAULT_MODEL_PATH = Path(__file__).with_name("linkage_default_model.json")
# The warehouse's linkage fields (leadhub.core.warehouse.ENCODING_COLUMNS); kept here as data so
# the default model can be written without a warehouse.
WAREHOUSE_FIELDS = ("first_name", "first_name_canon", "middle_name", "last_name", "dob", "ssn")


def models_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "linkage" / "models"


def write_private(path: Path, text: str) -> None:
    """Write a 0600 file atomically, in a 0700 folder."""
    make_private_dir(path.parent)
    atomic_write_text(path, text)


def _rounded(value):
    """Probabilities to 4 significant digits, so the file has no run of more than 7 digits.

    A float printed with 17 digits holds 8- and 9-digit runs in which some
    birth date or SSN turns up by chance, and a byte scan would flag it.
    """
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def stamp(model: dict, trained_on: dict, settings: dict, trained_at: datetime | None = None) -> dict:
    """Give a Splink model its ``leadhub`` entry; the version hashes the (rounded) parameters."""
    body = _rounded({k: v for k, v in model.items() if k != "leadhub"})
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
    when = (trained_at or datetime.now(timezone.utc)).replace(microsecond=0)
    body["leadhub"] = {"version": f"{when:%Y%m%dT%H%M%SZ}-{digest}", "trained_at": when.isoformat(),
                       "trained_on": trained_on, "settings_version": settings.get("version"),
                       "threshold": settings["threshold"]}
    return body


def save_model(data_dir: Path, model: dict) -> Path:
    """Store a stamped model and make it current."""
    version = model["leadhub"]["version"]
    path = models_dir(data_dir) / f"{version}.json"
    write_private(path, json.dumps(model, indent=1, sort_keys=True) + "\n")
    write_private(models_dir(data_dir) / "current", version + "\n")
    return path


def default_model() -> dict:
    return json.loads(DEFAULT_MODEL_PATH.read_text())


def current_model(data_dir: Path) -> dict:
    """The model the steward made current, else the shipped default."""
    pointer = models_dir(data_dir) / "current"
    if not pointer.exists():
        return default_model()
    version = pointer.read_text().strip()
    path = models_dir(data_dir) / f"{version}.json"
    try:
        model = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise LeadHubError(f"the current linkage model {version} cannot be read ({e.__class__.__name__}); "
                           f"restore {path} or train again with 'leadhub linkage train'") from None
    if model.get("leadhub", {}).get("version") != version:
        raise LeadHubError(f"{path} does not hold linkage model {version}: the models folder was edited")
    return model


def model_version(data_dir: Path, version: str) -> dict:
    """A stored model (or the shipped default) by its version."""
    default = default_model()
    if version == version_of(default):
        return default
    path = models_dir(data_dir) / f"{version}.json"
    if not path.exists():
        raise LeadHubError(f"linkage model {version} is not in {models_dir(data_dir)}")
    return json.loads(path.read_text())


def version_of(model: dict) -> str:
    return model.get("leadhub", {}).get("version", "unversioned")


def write_default_model() -> Path:
    """The shipped default: the documented priors for the warehouse fields, no data involved."""
    from transforms.linkage_model import model_for

    settings = load_settings()
    model = model_for(list(WAREHOUSE_FIELDS), settings, "dedupe_only")
    stamped = stamp(model, {"records": 0, "source": "documented priors in linkage_settings.json"}, settings,
                    trained_at=datetime(2026, 12, 1, tzinfo=timezone.utc))
    DEFAULT_MODEL_PATH.write_text(json.dumps(stamped, indent=1, sort_keys=True) + "\n")
    return DEFAULT_MODEL_PATH


# -- what a model says ---------------------------------------------------------------------------

def _weight(m, u) -> float | None:
    return math.log2(m / u) if m and u else None


def model_summary(model: dict) -> dict:
    """Version, training date, threshold, prior and per comparison level m, u and match weight."""
    meta = model.get("leadhub", {})
    prior = model.get("probability_two_random_records_match")
    comparisons = []
    for c in model["comparisons"]:
        levels = []
        for level in c["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            m, u = level.get("m_probability"), level.get("u_probability")
            levels.append({"label": level.get("label_for_charts") or level["sql_condition"], "m": m, "u": u,
                           "weight": _weight(m, u), "fixed": bool(level.get("fix_m_probability")),
                           "term_frequency": bool(level.get("tf_adjustment_column"))})
        comparisons.append({"field": c["output_column_name"], "levels": levels})
    return {"version": version_of(model), "trained_at": meta.get("trained_at"),
            "trained_on": meta.get("trained_on"), "settings_version": meta.get("settings_version"),
            "threshold": meta.get("threshold"), "probability_two_random_records_match": prior,
            "prior_weight": math.log2(prior / (1 - prior)) if prior else None, "comparisons": comparisons}


def parameter_changes(old: dict, new: dict) -> list[dict]:
    """Per comparison level: m, u and match weight in the old and the new model."""
    before = {(c["field"], lv["label"]): lv for c in model_summary(old)["comparisons"] for lv in c["levels"]}
    rows = []
    for c in model_summary(new)["comparisons"]:
        for lv in c["levels"]:
            o = before.get((c["field"], lv["label"]), {})
            rows.append({"field": c["field"], "level": lv["label"], "m_old": o.get("m"), "m_new": lv["m"],
                         "u_old": o.get("u"), "u_new": lv["u"], "weight_old": o.get("weight"),
                         "weight_new": lv["weight"]})
    return rows


def format_changes(old: dict, new: dict) -> str:
    def num(x, fmt):
        return format(x, fmt) if x is not None else "-"

    so, sn = model_summary(old), model_summary(new)
    lines = [f"model {sn['version']} (was {so['version']})",
             f"prior: probability two random records match {num(so['probability_two_random_records_match'], '.3g')}"
             f" -> {num(sn['probability_two_random_records_match'], '.3g')}",
             f"{'field':<12} {'level':<26} {'m old':>8} {'m new':>8} {'u old':>9} {'u new':>9} "
             f"{'weight old':>10} {'weight new':>10}"]
    for r in parameter_changes(old, new):
        lines.append(f"{r['field']:<12} {r['level'][:26]:<26} {num(r['m_old'], '8.4f')} {num(r['m_new'], '8.4f')} "
                     f"{num(r['u_old'], '9.5f')} {num(r['u_new'], '9.5f')} {num(r['weight_old'], '10.2f')} "
                     f"{num(r['weight_new'], '10.2f')}")
    return "\n".join(lines)


def match_weight_chart_svg(model: dict, previous: dict | None = None) -> str:
    """A self-contained SVG bar chart of each comparison level's match weight (no script, no network).

    With ``previous``, a black tick marks each level's weight in that model, so
    a steward sees at a glance what training changed.
    """
    s = model_summary(model)
    rows = [(c["field"], lv["label"], lv["weight"] or 0.0) for c in s["comparisons"] for lv in c["levels"]]
    before = ({(c["field"], lv["label"]): lv["weight"] or 0.0 for c in model_summary(previous)["comparisons"]
               for lv in c["levels"]} if previous else {})
    scale_max = max([abs(w) for _, _, w in rows] + [abs(w) for w in before.values()] + [1.0])
    label_w, bar_w, row_h, top = 300, 360, 18, 40
    mid = label_w + bar_w / 2
    height = top + row_h * (len(rows) + 1) + 20
    esc = html.escape
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 70}" height="{height}" '
           f'font-family="sans-serif" font-size="12" role="img">',
           f'<title>Match weights of linkage model {esc(s["version"])}</title>',
           f'<text x="4" y="16" font-weight="bold">Match weight (log2 Bayes factor) per comparison level, '
           f'model {esc(s["version"])}</text>',
           f'<line x1="{mid}" y1="{top - 8}" x2="{mid}" y2="{top + row_h * len(rows)}" stroke="#444"/>']
    last = None
    for k, (field, label, w) in enumerate(rows):
        y = top + k * row_h
        name, indent = (f"{field}: {label}", 4) if field != last else (label, 24)  # levels under their field
        last = field
        length = abs(w) / scale_max * (bar_w / 2)
        x = mid if w >= 0 else mid - length
        colour = "#2b7a3d" if w >= 0 else "#b03a2e"
        out.append(f'<text x="{indent}" y="{y + 12}">{esc(name)}</text>')
        out.append(f'<rect x="{x:.1f}" y="{y + 2}" width="{length:.1f}" height="{row_h - 5}" fill="{colour}"/>')
        out.append(f'<text x="{label_w + bar_w + 4}" y="{y + 12}">{w:+.2f}</text>')
        if (field, label) in before:
            tick = mid + before[(field, label)] / scale_max * (bar_w / 2)
            out.append(f'<line x1="{tick:.1f}" y1="{y}" x2="{tick:.1f}" y2="{y + row_h - 2}" stroke="#000" '
                       f'stroke-width="2"><title>previous model: {before[(field, label)]:+.2f}</title></line>')
    note = f"; black ticks: model {esc(version_of(previous))}" if previous else ""
    out.append(f'<text x="4" y="{height - 8}">prior (probability two random records match): '
               f'{(s["prior_weight"] or 0):+.2f}; threshold: {s["threshold"]}{note}</text>')
    out.append("</svg>")
    return "\n".join(out)


if __name__ == "__main__":
    print(write_default_model())
