"""The package layout holds: no import cycle, pure rooms free of Kafka, Faust and Prometheus,
no private attribute of another object assigned, and the README's map names every room."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("streams", "metrics")
PURE_ROOMS = ("streams.config", "streams.events", "streams.windows", "streams.attribution",
              "streams.flow", "streams.stages", "streams.planning")
PURE_MODULES = ("metrics.kpis", "metrics.names")
IMPURE_LIBRARIES = ("faust", "mode", "aiokafka", "prometheus_client")


def module_files() -> dict[str, Path]:
    """Every module of the product by dotted name (a package by its ``__init__``)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported_names(path: Path) -> Iterator[str]:
    """Every module an import statement anywhere in the file names (type-checking-only
    and function-local imports included: they are edges of the design all the same)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: {target for target in imported_names(path)
                   if target in modules and target != name
                   and not name.startswith(target + ".")}  # a package's own __init__
            for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 60  # every module was read
    assert "streams.worker.agents" in graph["streams.worker.app"]
    assert cycles(graph) == []


def pure_modules() -> list[str]:
    return [name for name in module_files()
            if name in PURE_MODULES or any(name == room or name.startswith(room + ".")
                                           for room in PURE_ROOMS)]


def test_pure_rooms_import_nothing_from_kafka_faust_or_prometheus() -> None:
    modules = pure_modules()
    assert "streams.stages.counting" in modules and "metrics.kpis" in modules
    # In a fresh interpreter, so what the test suite imported does not count.
    probe = (f"import sys\nfor m in {modules!r}: __import__(m)\n"
             f"print(sorted({{n.split('.')[0] for n in sys.modules}} & {set(IMPURE_LIBRARIES)!r}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"


def test_the_purity_probe_sees_an_impure_import() -> None:
    probe = ("import sys\n__import__('streams.worker.faust_app')\n"
             "print('faust' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    assert done.stdout.strip() == "True"


def private_assignments(path: Path) -> list[str]:
    """``x._name = ...`` where x is not self or cls: patching another object's insides."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setattr":
            name = node.args[1] if len(node.args) > 1 else None
            if isinstance(name, ast.Constant) and str(name.value).startswith("_"):
                found.append(f"{path.name}:{node.lineno}")
        for target in targets:
            if (isinstance(target, ast.Attribute) and target.attr.startswith("_")
                    and not target.attr.startswith("__")
                    and not (isinstance(target.value, ast.Name)
                             and target.value.id in ("self", "cls"))):
                found.append(f"{path.name}:{node.lineno}")
    return found


def test_no_product_module_assigns_another_objects_private_attribute() -> None:
    assert private_assignments(Path(__file__).with_name("layout_sample.txt")) == [
        "layout_sample.txt:2", "layout_sample.txt:3"]
    found = [spot for path in module_files().values() for spot in private_assignments(path)]
    assert found == []


def test_the_readme_maps_every_room() -> None:
    readme = (ROOT / "README.md").read_text()
    mapped = set(re.findall(r"^\| `(streams/\w+|metrics)/` \|", readme, flags=re.M))
    rooms = {f"streams/{path.parent.name}" for path in (ROOT / "streams").glob("*/__init__.py")}
    assert mapped == rooms | {"metrics"}
