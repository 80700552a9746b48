"""The layout keeps its promises: no import cycles in the library (imports inside functions count too), every DAG
task calls exactly one function of one library module, and no stage repeats the cached-stage boilerplate."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "include"


def module_name(path: Path) -> str:
    parts = path.relative_to(LIBRARY).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The cinedex modules `path` imports anywhere in it (`from cinedex.x import y` counts y when y is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
    return found & modules


def library_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in LIBRARY.rglob("*.py")}
    return {name: imports_of(path, set(paths)) - {name} for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_library_has_no_import_cycles():
    graph = library_graph()
    assert "cinedex.index.embedded" in graph and "cinedex.pipeline.vision.prompt" in graph
    assert cycles(graph) == []


def test_the_core_depends_on_nothing_else_and_the_pipeline_not_on_the_page():
    graph = library_graph()
    for name, targets in graph.items():
        if name.startswith("cinedex.core."):
            assert all(t == "cinedex" or t.startswith("cinedex.core") for t in targets), (name, targets)
        if name.startswith(("cinedex.pipeline", "cinedex.index")):
            assert not any(t.startswith(("cinedex.page", "cinedex.orchestration")) for t in targets), (name, targets)


def dag_tasks(path: Path) -> dict[str, list[str]]:
    """Each @task function of a DAG file -> the library calls (`module.function`) in its body."""
    tree = ast.parse(path.read_text())
    library_names = {alias.asname or alias.name for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cinedex")
                     for alias in node.names}
    tasks = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and any("task" in ast.unparse(d) for d in node.decorator_list):
            calls = {ast.unparse(call.func) for call in ast.walk(node) if isinstance(call, ast.Call)
                     and isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name)
                     and call.func.value.id in library_names}
            tasks[node.name] = sorted(calls)
    return tasks


@pytest.mark.parametrize("dag_file", ["cinedex_index_video.py", "cinedex_daily_ingest.py"])
def test_every_dag_task_calls_one_library_function(dag_file):
    tasks = dag_tasks(ROOT / "dags" / dag_file)
    assert tasks
    for name, calls in tasks.items():
        stage_calls = [c for c in calls if not c.endswith(("model_validate", "model_dump"))]
        assert len(stage_calls) == 1, (name, calls)


def test_no_stage_repeats_the_cache_boilerplate():
    for path in (LIBRARY / "cinedex").rglob("*.py"):
        if path.name == "artifacts.py":
            continue
        text = path.read_text()
        assert ".complete" not in text and "log_cached" not in text and ".writing()" not in text, path
