"""The modules depend on each other one way (docs/ARCHITECTURE.md, "Layers"): no import cycle, and the
lower layers know nothing of the upper ones."""

import ast
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGES = ("sac", "envs", "bench")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports() -> dict[str, set[str]]:
    """Every project module -> the project modules it imports, at its top or inside a function."""
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")] + [ROOT / "Train_Robot6.py"]
    modules = {module_name(p): p for p in files}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names}
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def test_no_import_cycle():
    graph = project_imports()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(dep):] + [node, dep]) if dep in path
                            else f"import cycle through {node} -> {dep}")
            if dep not in state:
                visit(dep, path + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


@pytest.mark.parametrize("module, forbidden", [
    ("sac.replay", {"sac.her", "envs.goals", "sac.replay_store", "sac.checkpoint", "sac.training"}),
    ("sac.her", {"sac.training", "sac.checkpoint", "sac.agent"}),
    ("sac.networks", {"sac.agent", "sac.replay", "sac.checkpoint", "sac.training"}),
    ("sac.agent", {"sac.checkpoint", "sac.fileio", "sac.logger", "sac.training", "sac.her"}),
    ("sac.checkpoint", {"sac.training", "sac.agent", "sac.resume", "sac.checkpointer"}),
    ("sac.logger", {"sac.training", "sac.agent", "sac.checkpoint"}),
    ("envs.robot", {"sac", "sac.training", "envs.tasks.reach"}),
    ("envs.tasks.reach", {"sac", "sac.training"}),
])
def test_lower_layers_know_nothing_of_upper_ones(module, forbidden):
    assert not project_imports()[module] & forbidden
