"""The architecture as the import graph shows it: each package imports only the layers below it
(docs/ARCHITECTURE.md, "Where things live"), and no module imports itself round a circle."""

from __future__ import annotations

from tests.import_graph import TOP_LEVEL, import_graph

# Bottom to top: a package may import only packages listed before it.
LAYERS = ("repo_paths", "scheduler", "runtime", "engine", "predictor", "openai_server", "door", "deploy", "workloads",
          "simulator", "loadtest", "benchmarks")
# The Triton python models sit on top of what ships into a model (and the CPU stand-in's engine);
# never the predictor's training code (what serving runs of it is runtime.length_predictor).
MODEL_REPOSITORY_MAY_IMPORT = {"repo_paths", "scheduler", "runtime", "engine"}


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
    """Guards the two tests above against a parser that finds nothing, and every top-level folder
    the graph reads against having no rule."""
    assert set(TOP_LEVEL) == set(LAYERS) | {"tools", "model_repository"}
    graph = import_graph()
    assert "scheduler.queue" in graph["scheduler.admission"]
    assert "runtime.relay" in graph["model_repository.ltr_scheduler.1.model"]
    assert "repo_paths" in graph["deploy.repository"]
