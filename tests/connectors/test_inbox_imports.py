"""Intake is a stage before pseudonymization and validation: it imports none of the later
stages (the pipeline hands them over as ``IntakeStages``), lazily or not."""

import ast
from pathlib import Path

import connectors.inbox
import connectors.inbox_files

LATER_STAGES = ("expectations", "transforms", "dags", "leadhub.pipeline", "leadhub.cli",
                "leadhub.maintenance", "leadhub.airflow_local")


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module)
    return names


def test_intake_imports_no_later_stage_anywhere_in_its_modules():
    imported = _imported(Path(connectors.inbox.__file__)) | _imported(Path(connectors.inbox_files.__file__))
    assert "leadhub.warehouse" in imported  # the walk sees the module's own imports
    later = sorted(n for n in imported if any(n == s or n.startswith(s + ".") for s in LATER_STAGES))
    assert later == []
