"""The structure the code promises, checked by reading it: layers point one way, no import
cycles inside a package, small modules and functions, one copy of each two-sample estimator."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGES = ("simulators", "cluster", "emulators", "inference", "pipelines")
# What each package may import from the others (pipelines -> cluster, emulators, inference ->
# simulators), as DESIGN.md draws the layers.
ALLOWED = {
    "simulators": set(),
    "cluster": {"simulators"},
    "emulators": {"simulators"},
    "inference": {"simulators"},
    "pipelines": {"simulators", "cluster", "emulators", "inference"},
}


def _modules(package: str) -> dict[str, ast.Module]:
    return {
        f"{package}.{path.stem}": ast.parse(path.read_text())
        for path in sorted((ROOT / package).glob("*.py"))
        if path.stem != "__init__"
    }


def _imports(tree: ast.Module) -> set[str]:
    """Every module imported anywhere in the file (inside functions too)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_layers_point_one_way(package: str) -> None:
    for name, tree in _modules(package).items():
        others = {i.split(".")[0] for i in _imports(tree)} & set(PACKAGES) - {package}
        assert others <= ALLOWED[package], f"{name} imports {sorted(others - ALLOWED[package])}"


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles_inside_a_package(package: str) -> None:
    modules = _modules(package)
    graph = {
        name: {i for i in _imports(tree) if i in modules} - {name} for name, tree in modules.items()
    }
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])


def test_inference_modules_stay_small() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in (ROOT / "inference").glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 400} == {}


@pytest.mark.parametrize("package", ["inference", "pipelines"])
def test_functions_stay_short(package: str) -> None:
    long = []
    for name, tree in _modules(package).items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > 80:
                    long.append(f"{name}.{node.name}: {length} lines")
    assert long == []


def test_one_copy_of_each_two_sample_estimator_and_of_splitmix() -> None:
    sources = {
        str(path.relative_to(ROOT)): path.read_text()
        for package in (*PACKAGES, "benchmarks")
        for path in (ROOT / package).glob("*.py")
    }

    def where(needle: str) -> list[str]:
        return sorted(name for name, text in sources.items() if needle in text)

    assert where("0xBF58476D1CE4E5B9") == ["simulators/seeding.py"]  # splitmix64's multiplier
    assert where("def c2st") == ["inference/c2st.py"]
    assert where("def mmd(") == ["inference/mmd.py"]
    assert where("torch.manual_seed(") == ["inference/seeds.py"]  # no global reseeding elsewhere
