"""Write justice_counts_reference.json: the published Justice Counts definitions the export is
checked against, read from a checkout of Recidiviz's pulse-data repository.

Run by hand when the definitions move on (the tests never fetch anything):

    python tests/transforms/make_justice_counts_reference.py /path/to/pulse-data.git [COMMIT]

The Python source is parsed, never imported: for each system the hub reports for, every metric
file (canonical file name, metric key, default reporting frequency, breakdown column) and the
category labels of every dimension those files use, exactly as the uploader matches them.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

JC = "recidiviz/justice_counts"
SCHEMA = "recidiviz/persistence/database/schema/justice_counts/schema.py"
# System enum name -> the module name under metrics/ and metricfiles/.
SYSTEMS = {"LAW_ENFORCEMENT": "law_enforcement", "PROSECUTION": "prosecution", "JAILS": "jails"}
OUT = Path(__file__).with_name("justice_counts_reference.json")


def show(repo: Path, commit: str, path: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "show", f"{commit}:{path}"], check=True,
                          capture_output=True, text=True).stdout


def enums(source: str) -> dict[str, dict[str, str]]:
    """{class name: {member: value}} for every class whose body assigns string constants."""
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef):
            members = {t.id: stmt.value.value for stmt in node.body if isinstance(stmt, ast.Assign)
                       for t in stmt.targets if isinstance(t, ast.Name)
                       and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)}
            if members:
                found[node.name] = members
    return found


def keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def metric_definitions(source: str) -> dict[str, dict]:
    """{variable name: {metric_type, reporting_frequencies}} of every MetricDefinition(...)."""
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) \
                and getattr(node.value.func, "id", None) == "MetricDefinition":
            call = node.value
            frequencies = keyword(call, "reporting_frequencies")
            found[node.targets[0].id] = {
                "metric_type": keyword(call, "metric_type").attr,
                "reporting_frequencies": [e.attr for e in frequencies.elts],
            }
    return found


def metric_files(source: str) -> list[dict]:
    """Every MetricFile(...) of a metricfiles module, in order."""
    files = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "MetricFile":
            disaggregation = keyword(node, "disaggregation")
            column = keyword(node, "disaggregation_column_name")
            files.append({
                "canonical_filename": keyword(node, "canonical_filename").value,
                "definition": keyword(node, "definition").attr,
                "disaggregation": disaggregation.id if disaggregation is not None else None,
                "disaggregation_column_name": column.value if column is not None else None,
            })
    return files


def build(repo: Path, commit: str) -> dict:
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", commit], check=True,
                            capture_output=True, text=True).stdout.strip()
    schema = enums(show(repo, commit, SCHEMA))
    metric_type_values, system_values = schema["MetricType"], schema["System"]
    dimension_sources = [f"{JC}/dimensions/{name}.py" for name in
                         ("offense", "person", "common", "prosecution", "jails", "law_enforcement")]
    dimensions: dict[str, list[str]] = {}
    for path in dimension_sources:
        for name, members in enums(show(repo, commit, path)).items():
            dimensions.setdefault(f"{Path(path).stem}.{name}", list(members.values()))
    systems = {}
    used: set[str] = set()
    for system, module in SYSTEMS.items():
        definitions = metric_definitions(show(repo, commit, f"{JC}/metrics/{module}.py"))
        files = []
        for f in metric_files(show(repo, commit, f"{JC}/metricfiles/{module}.py")):
            definition = definitions[f["definition"]]
            key = f"{system_values[system]}_{metric_type_values[definition['metric_type']]}"
            dimension = None
            if f["disaggregation"]:
                # Resolve the class by name: a system's own module before the shared ones.
                candidates = [d for d in dimensions if d.endswith(f".{f['disaggregation']}")]
                own = [d for d in candidates if d.startswith(f"{module}.")]
                dimension = (own or candidates)[0]
                used.add(dimension)
            files.append({"canonical_filename": f["canonical_filename"], "metric_key": key,
                          "reporting_frequency": definition["reporting_frequencies"][0],
                          "disaggregation": dimension,
                          "disaggregation_column_name": f["disaggregation_column_name"]})
        systems[system] = files
    return {
        "source": {"repository": "https://github.com/Recidiviz/pulse-data", "commit": commit,
                   "paths": [SCHEMA, *dimension_sources,
                             *(f"{JC}/{kind}/{m}.py" for m in SYSTEMS.values()
                               for kind in ("metrics", "metricfiles"))]},
        "upload_columns": {"year": "year", "month": "month (monthly metrics only)", "value": "value"},
        "systems": systems,
        "dimensions": {name: dimensions[name] for name in sorted(used)},
    }


def main(argv: list[str]) -> int:
    repo = Path(argv[1])
    reference = build(repo, argv[2] if len(argv) > 2 else "HEAD")
    OUT.write_text(json.dumps(reference, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT} from {reference['source']['commit']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
