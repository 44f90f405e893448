"""Imports run one way: the layers of the README's "Layers" section, read off the import graph.

Every ``.py`` file under ``prime_science/``, ``experiments/`` and ``benchmarks/`` is parsed
with :mod:`ast` (nothing is imported); every ``import`` statement counts, at module level or
inside a function, and so does ``importlib.import_module("name")`` with a literal name, so an
import deferred to call time cannot hide an upward edge. Layers, low to high:

0. ``prime_science`` itself (its ``__init__``: the version) and ``prime_science.core``;
1. the science packages ``bandits``, ``priors``, ``choice``, ``layouts``, ``membership``,
   ``evaluation``, ``datasets``;
2. ``prime_science.sim``;
3. ``experiments``;
4. the tools ``prime_science.runner``, ``prime_science.report``, ``prime_science.bench``;
5. ``prime_science.cli``;
6. the ``benchmarks/`` scripts.

Rules: a module imports only from its own layer or lower ones; the three tools of layer 4 do
not import one another; no group of modules imports itself round in a cycle; and neither does
a group of packages (``prime_science.<name>``, ``experiments``, ``benchmarks``), so science
packages of one layer may use one another, but in one direction only (``layouts`` builds on
``bandits``, never the reverse). A new package needs a layer below.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("prime_science", "experiments", "benchmarks")
SCIENCE = ("bandits", "priors", "choice", "layouts", "membership", "evaluation", "datasets")
TOOLS = ("runner", "report", "bench")
LAYERS = {
    "prime_science.core": 0,
    **{f"prime_science.{package}": 1 for package in SCIENCE},
    "prime_science.sim": 2,
    "experiments": 3,
    **{f"prime_science.{tool}": 4 for tool in TOOLS},
    "prime_science.cli": 5,
    "benchmarks": 6,
}
"""Layer of each module-name prefix; the longest prefix that matches a module decides. The bare
``prime_science`` (layer 0) is matched exactly, so that a new module beside ``cli.py`` has no
layer until one is given to it."""


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every source file (``benchmarks/x.py`` is
    ``benchmarks.x``, though that folder is not a package)."""
    modules = {}
    for source in SOURCES:
        for path in sorted((root / source).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _imported_names(tree: ast.Module, module: str, is_package: bool) -> Iterator[str]:
    """Every dotted name an ``import`` or ``importlib.import_module("...")`` anywhere in ``tree``
    asks for; ``from a import b`` gives ``a.b`` (a submodule, or a name whose module is ``a``),
    relative imports resolved."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            yield from (f"{base}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the modules of the three source trees it imports (the longest known prefix of
    each imported name; imports from outside the trees are dropped)."""
    modules = module_files(root)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = set()
        for name in _imported_names(tree, module, path.name == "__init__.py"):
            parts = name.split(".")
            for end in range(len(parts), 0, -1):
                candidate = ".".join(parts[:end])
                if candidate in modules:
                    if candidate != module:
                        targets.add(candidate)
                    break
        graph[module] = targets
    return graph


def layer_of(module: str) -> int | None:
    """The layer of ``module`` (its longest prefix in :data:`LAYERS`), ``None`` if it has none."""
    if module == "prime_science":
        return 0
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in LAYERS:
            return LAYERS[prefix]
    return None


def _tool_of(module: str) -> str | None:
    """``runner``, ``report`` or ``bench`` for a module of that tool, else ``None``."""
    parts = module.split(".")
    if len(parts) > 1 and parts[0] == "prime_science" and parts[1] in TOOLS:
        return parts[1]
    return None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(start: str) -> None:
        # iterative depth-first search: (node, iterator over its successors)
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph.get(successor, ())))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
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
    return sorted(found)


def package_of(module: str) -> str:
    """``prime_science.<name>`` for a module of the package, else the source tree's name."""
    parts = module.split(".")
    if parts[0] == "prime_science" and len(parts) > 1:
        return f"prime_science.{parts[1]}"
    return parts[0]


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Package -> the other packages its modules import."""
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        package = package_of(module)
        packages.setdefault(package, set()).update(
            package_of(target) for target in targets if package_of(target) != package
        )
    return packages


def _edges(graph: dict[str, set[str]]) -> Iterator[tuple[str, str]]:
    for module in sorted(graph):
        for target in sorted(graph[module]):
            yield module, target


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_sees_the_imports_it_must(graph):
    """A check of the checker: known edges at module level and inside functions are found."""
    assert "prime_science.core.experiment" in graph["experiments.cold_start"]
    assert "prime_science.bench.command" in graph["prime_science.cli"]
    assert "experiments" in graph["prime_science.cli"]  # imported inside known_experiments
    assert "prime_science.bench.registry" in graph["prime_science.bench.command"]
    assert "experiments.rust_bus" in graph["benchmarks.bellman"]  # inside a function


def test_every_module_has_a_layer(graph):
    unassigned = sorted(module for module in graph if layer_of(module) is None)
    assert not unassigned, (
        "modules outside every layer (give their package a layer in LAYERS and in the "
        f"README's Layers section): {', '.join(unassigned)}"
    )


def test_imports_point_down_the_layers(graph):
    upward = [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, target in _edges(graph)
        if None not in (layer_of(module), layer_of(target)) and layer_of(target) > layer_of(module)
    ]
    assert not upward, "imports from a higher layer:\n  " + "\n  ".join(upward)


def test_the_tools_do_not_import_one_another(graph):
    across = [
        f"{module} imports {target}"
        for module, target in _edges(graph)
        if None not in (_tool_of(module), _tool_of(target)) and _tool_of(module) != _tool_of(target)
    ]
    assert not across, "runner, report and bench import one another:\n  " + "\n  ".join(across)


def test_no_import_cycles(graph):
    found = cycles(graph)
    assert not found, "import cycles (each line: the modules of one cycle):\n  " + "\n  ".join(
        " <-> ".join(component) for component in found
    )


def test_no_cycles_between_packages(graph):
    found = cycles(package_graph(graph))
    edges = {
        (package_of(module), package_of(target)): f"{module} imports {target}"
        for module, target in _edges(graph)
    }
    lines = [
        " <-> ".join(component)
        + "".join(
            f"\n    {edges[a, b]}"
            for a in component
            for b in component
            if (a, b) in edges and a != b
        )
        for component in found
    ]
    assert not found, "packages that import one another:\n  " + "\n  ".join(lines)


def test_cycle_finder_on_a_small_graph():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e2"}, "e2": {"d"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({**graph, "d": {"e"}}) == [["a", "b", "c"], ["d", "e", "e2"]]


def private_imports(root: Path = ROOT) -> list[str]:
    """``from a.b import _c`` (or ``import a._b``) where the private name belongs to another
    package than the importing module's: a name with a leading underscore is its package's
    business, so code another package needs is given a public name."""
    modules = module_files(root)
    found = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for name in _imported_names(tree, module, path.name == "__init__.py"):
            parts = name.split(".")
            private = next((i for i, part in enumerate(parts) if part.startswith("_")), None)
            if private is None or parts[private].startswith("__"):
                continue
            owner = ".".join(parts[:private])
            if owner in modules and package_of(owner) != package_of(module):
                found.append(f"{module} imports {name}")
    return sorted(found)


def test_no_private_names_across_packages():
    found = private_imports()
    assert not found, "private names imported from another package:\n  " + "\n  ".join(found)


def test_private_import_finder_sees_one(tmp_path):
    for source in SOURCES:
        (tmp_path / source).mkdir()
    (tmp_path / "prime_science" / "priors").mkdir()
    (tmp_path / "prime_science" / "priors" / "moments.py").write_text("def _moments(): ...\n")
    (tmp_path / "experiments" / "meta_prior.py").write_text(
        "from prime_science.priors.moments import _moments, method_of_moments\n"
    )
    (tmp_path / "prime_science" / "priors" / "laplace.py").write_text(
        "from prime_science.priors.moments import _moments\n"  # same package: allowed
    )
    assert private_imports(tmp_path) == [
        "experiments.meta_prior imports prime_science.priors.moments._moments"
    ]
