"""The architecture as the import graph shows it: each package imports only the layers below it
(docs/ARCHITECTURE.md, "Where things live"), and no module imports itself round a circle."""

from __future__ import annotations

import ast
from pathlib import Path

from repo_paths import REPO_ROOT

# Bottom to top: a package may import only packages listed before it.
LAYERS = ("repo_paths", "scheduler", "runtime", "engine", "predictor", "deploy", "workloads", "simulator",
          "loadtest", "benchmarks")
# The Triton python models sit on top of what ships into a model (and the CPU stand-in's engine).
MODEL_REPOSITORY_MAY_IMPORT = {"repo_paths", "scheduler", "runtime", "engine", "predictor"}
PROJECT = set(LAYERS) | {"tools"}


def source_files() -> list[Path]:
    files = [REPO_ROOT / "repo_paths.py"]
    for top in sorted(PROJECT - {"repo_paths"}) + ["model_repository"]:
        files += sorted((REPO_ROOT / top).rglob("*.py"))
    return [f for f in files if "__pycache__" not in f.parts]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Project modules `path` imports (at any depth of the file, type-checking imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in known:  # `from pkg import symbol` counts as importing pkg
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(f): f for f in source_files()}
    known = set(files)
    return {name: imported_modules(path, known) - {name} for name, path in files.items()}


def test_packages_import_only_the_layers_below() -> None:
    wrong = []
    for module, imports in import_graph().items():
        top = module.split(".")[0]
        if top == "model_repository":
            allowed = MODEL_REPOSITORY_MAY_IMPORT
        elif top == "tools":
            allowed = set(LAYERS)
        else:
            allowed = set(LAYERS[: LAYERS.index(top) + 1])
        wrong += [f"{module} -> {target}" for target in imports if target.split(".")[0] not in allowed]
    assert wrong == []


def test_no_module_imports_itself_round_a_circle() -> None:
    graph = import_graph()
    # A package's __init__ re-exports its modules, and its modules may import siblings through it:
    # that is no circle of ideas, so edges into a package's own __init__ from inside it are left out.
    edges = {m: {t for t in targets if not m.startswith(t + ".")} for m, targets in graph.items()}
    circles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                circles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_the_graph_sees_real_imports() -> None:
    """Guards the two tests above against a parser that finds nothing."""
    graph = import_graph()
    assert "scheduler.queue" in graph["scheduler.admission"]
    assert "runtime.relay" in graph["model_repository.ltr_scheduler.1.model"]
    assert "repo_paths" in graph["deploy.repository"]
