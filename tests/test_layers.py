"""The modules depend on each other one way (docs/ARCHITECTURE.md, "Layers"): no import cycle, no import that
reaches up a layer, and module names that say what they are (none shadows the standard library, no two differ
by a suffix only)."""

import ast
import sys
from itertools import combinations
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGES = ("robot6", "bench")
# What each layer may import besides itself. The commands (robot6.train, robot6.evaluate, ...) sit on top;
# ``robot6`` itself (its __init__) registers the envs; ``robot6.errors`` is below everything.
ALLOWED = {
    "errors": set(),
    "envs": {"errors"},
    "learn": {"errors"},
    "run": {"errors", "envs", "learn"},
    "commands": {"errors", "envs", "learn", "run"},
    "package": {"errors", "envs"},
    "script": {"commands"},
    "bench": {"errors", "envs", "learn", "run", "commands", "package", "bench"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] in ("bench", "Train_Robot6"):
        return "bench" if parts[0] == "bench" else "script"
    if module == "robot6":
        return "package"
    if parts[1] in ("envs", "learn", "run", "errors"):
        return parts[1]
    return "commands"


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


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``"A -> B"`` for every import of a module B whose layer A's layer may not use."""
    return [f"{a} -> {b}" for a, deps in sorted(graph.items()) for b in sorted(deps)
            if layer_of(b) != layer_of(a) and layer_of(b) not in ALLOWED[layer_of(a)]]


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


def test_every_layer_is_there():
    layers = {layer_of(m) for m in project_imports()}
    assert layers == set(ALLOWED)


def test_no_module_imports_a_layer_above_its_own():
    assert upward_imports(project_imports()) == []


@pytest.mark.parametrize("module, dep", [
    ("robot6.learn.agent", "robot6.run.checkpoint"),  # the learner knows no files
    ("robot6.learn.her", "robot6.envs.goals"),  # nor envs
    ("robot6.envs.tasks.push", "robot6.learn.networks"),  # envs know no learner
    ("robot6.envs.factory", "robot6.run.config"),
    ("robot6.run.loop", "robot6.evaluate"),  # a run knows no command
    ("robot6.errors", "robot6.run.config"),
])
def test_an_import_up_a_layer_is_caught(module, dep):
    graph = project_imports()
    assert module in graph and dep in graph
    assert upward_imports({**graph, module: graph[module] | {dep}}) == [f"{module} -> {dep}"]


def module_names() -> list[str]:
    """The last part of every module and package name of robot6."""
    return sorted({module_name(p).rsplit(".", 1)[-1] for p in (ROOT / "robot6").rglob("*.py")})


def test_no_module_is_named_like_the_standard_library():
    assert [n for n in module_names() if n in sys.stdlib_module_names] == []


def differ_by_a_suffix_only(a: str, b: str) -> bool:
    """``checkpoint``/``checkpointer``, ``evaluate``/``evaluation``, ``replay``/``replay_store``: one name starts
    the other, or both share a stem of at least 4 letters and differ in at most 3 letters after it."""
    if a.startswith(b) or b.startswith(a):
        return True
    stem = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return stem >= 4 and max(len(a), len(b)) - stem <= 3


def test_no_two_modules_differ_by_a_suffix_only():
    assert differ_by_a_suffix_only("evaluate", "evaluation") and differ_by_a_suffix_only("checkpoint", "checkpointer")
    names = [n for n in module_names() if n != "robot6"]
    assert [(a, b) for a, b in combinations(names, 2) if differ_by_a_suffix_only(a, b)] == []
