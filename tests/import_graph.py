"""The project's import graph, read from the source with `ast` (nothing is imported): which project
module imports which. Shared by the layout test and the GPU bundle test."""

from __future__ import annotations

import ast
from pathlib import Path

from repo_paths import REPO_ROOT

TOP_LEVEL = ("repo_paths", "scheduler", "runtime", "engine", "predictor", "openai_server", "door", "deploy", "workloads",
             "simulator", "loadtest", "benchmarks", "tools", "model_repository")


def source_files() -> list[Path]:
    files = [REPO_ROOT / "repo_paths.py"]
    for top in TOP_LEVEL[1:]:
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
