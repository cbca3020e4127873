"""Every import points one way: entry points -> stages -> core.

Layers, top to bottom:

* entry points: the ``leadhub`` command and the functions the DAGs call
  (``leadhub.cli``, ``leadhub.pipeline``, ``leadhub.maintenance``,
  ``leadhub.airflow_local``) and ``dags``; they may import anything below;
* stages: ``connectors`` (intake, pulls), ``expectations`` (validation),
  ``transforms`` (linkage, models, publication, report) and ``synthetic`` (the
  demo county); a stage imports the core and itself, never another stage: the
  entry points hand one stage's work to the next;
* core: ``leadhub.core``, which imports nothing of the hub outside itself.

Imports inside functions count as much as those at the top of a module: a
lazy import is still a dependency. The walk reads the source (``ast``), so it
sees every import whether or not it runs.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("leadhub", "connectors", "expectations", "transforms", "synthetic", "dags")
STAGES = ("connectors", "expectations", "transforms", "synthetic")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(path: Path, name: str, is_package: bool) -> set[str]:
    """Hub modules ``path`` imports (absolute and relative, at any depth of the code)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {m for m in out if m.split(".")[0] in PACKAGES}


def layer(module: str) -> str:
    if module == "leadhub.core" or module.startswith("leadhub.core."):
        return "core"
    top = module.split(".")[0]
    if top in STAGES:
        return top
    return "entry"


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path, name, path.name == "__init__.py"):
            # `from pkg import name` names a module or an attribute: keep the longest module it is.
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def test_the_layer_rule_sees_every_package():
    graph = _graph()
    assert {layer(m) for m in graph} == {"core", "entry", *STAGES}
    assert {"leadhub.core.warehouse", "connectors.inbox", "transforms.link", "leadhub.cli"} <= set(graph)


def test_the_core_imports_no_stage_and_no_entry_point():
    bad = sorted(f"{m} -> {t}" for m, ts in _graph().items() if layer(m) == "core"
                 for t in ts if layer(t) != "core")
    assert bad == []


def test_a_stage_imports_only_the_core_and_itself():
    bad = sorted(f"{m} -> {t}" for m, ts in _graph().items() if layer(m) in STAGES
                 for t in ts if layer(t) not in ("core", layer(m)))
    assert bad == []


def test_nothing_below_imports_an_entry_point():
    bad = sorted(f"{m} -> {t}" for m, ts in _graph().items() if layer(m) != "entry"
                 for t in ts if layer(t) == "entry")
    assert bad == []


def test_there_is_no_import_loop_between_modules():
    """A loop means two modules each need the other: one of them does two jobs."""
    graph = _graph()
    index, low, stack, on_stack, loops = {}, {}, [], set(), []
    counter = [0]

    def strongconnect(v):  # Tarjan's strongly connected components, recursion depth = module count
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    assert loops == []


def test_the_walk_catches_an_upward_import(tmp_path):
    """The checker itself can fail: a core module importing a stage is seen, lazily or not."""
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from connectors.inbox import ingest_agency\n")
    assert "connectors.inbox" in _imports(source, "leadhub.core.mod", False)
    assert layer("connectors.inbox") == "connectors" and layer("leadhub.core.mod") == "core"


def test_layers_as_documented():
    """docs/architecture.md states the same rule the tests check."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    for name in ("leadhub/core/", "connectors/", "expectations/", "transforms/", "synthetic/", "dags/"):
        assert name in text, name


if __name__ == "__main__":  # print the package-level graph, for docs/architecture.md
    arrows = defaultdict(set)
    for m, ts in _graph().items():
        for t in ts:
            if layer(m) != layer(t):
                arrows[layer(m)].add(layer(t))
    for a in sorted(arrows):
        print(a, "->", ", ".join(sorted(arrows[a])))
