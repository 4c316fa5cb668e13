"""The import layers (issue 16): wire <- spec <- mocks <- conformance, no cycles, no hidden imports.

`wire` (the primitives both sides speak) imports none of the others; `spec` (the profile store
and the registry) builds on `wire` only; the mocks build on both and never import the suite;
the suite imports only the mocks' public face, each name from the module's `__all__`.

Every module is read with `ast`, never imported. An import under `if TYPE_CHECKING:` counts for
the layers but not for cycles (it never runs); `from package import module` imports that
module; and importing `a.b.c` runs `a/b/__init__` too, so a cycle through a package's
`__init__` is found like any other.

The graph has no cycle at all, and no module imports inside a function except an optional
dependency or what is deliberately loaded late (`LATE_IMPORTS`, each with its reason; an entry
whose import is gone fails as stale). A cycle is broken, never allow-listed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("wire", "spec", "conformance", "mocks")

MAY_IMPORT = {
    "wire": {"wire"},
    "spec": {"wire", "spec"},
    "mocks": {"wire", "spec", "mocks"},
    "conformance": {"wire", "spec", "mocks", "conformance"},
}
"""Which of the four packages each may import (the layers point downward only)."""

MOCKS_PUBLIC = frozenset(
    {
        "mocks",
        "mocks.agent",
        "mocks.cli",
        "mocks.faults",
        "mocks.hosting",
        "mocks.orchestrator",
        "mocks.provider",
        "mocks.resource_server",
        "mocks.sandbox",
    }
)
"""The mocks' public face: what `conformance` may import, each name from the module's `__all__`."""

LATE_IMPORTS = {
    ("conformance.consent", "playwright.async_api"): "Playwright is the optional [browser] "
    "extra: only consent = 'browser' needs it, and its absence is reported as a usage error",
    ("conformance._pytest_engine", "allure"): "allure's labels are added only when "
    "allure-pytest is importable; a missing one is tolerated",
    ("conformance.fuzz", "schemathesis"): "schemathesis and hypothesis cost ~0.25 s at "
    "import; only a run with fuzzing on generates cases",
    ("conformance.fuzz", "schemathesis.core.result"): "as above",
    ("conformance.fuzz", "hypothesis"): "as above",
    ("conformance.fuzz", "hypothesis.errors"): "as above",
    ("conformance._launch", "conformance.cli"): "`provspec orchestrator …` runs once per "
    "command of an agent or a run; it starts without loading the suite (about 0.3 s each)",
    ("mocks.hosting", "resource"): "a Unix-only module: elsewhere the open-file limit "
    "falls back to 1024",
    ("mocks.agent.__main__", "httpx"): "the mock agent runs as a process per task; only a task "
    "that reaches a resource pays for importing httpx",
    ("mocks.agent.scripted", "httpx"): "the mock agent runs as a process per task; only a "
    "task that reaches a resource pays for importing httpx",
}
"""Imports inside functions that stay there, with the reason."""


# --- reading the imports ----------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    source: str
    """The importing module."""
    target: str
    """The imported module: one of the four packages' modules, or any other (`external`)."""
    names: tuple[str, ...]
    """For `from target import a, b`: the names; empty for `import target`."""
    line: int
    in_function: bool
    type_only: bool
    """Under `if TYPE_CHECKING:`: read by type checkers, never run."""

    @property
    def package(self) -> str:
        return self.target.split(".")[0]


@cache
def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _resolve(source: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_package = modules()[source].name == "__init__.py"
    base = source.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _imports_of(source: str) -> Iterator[Import]:
    tree = ast.parse(modules()[source].read_text(encoding="utf-8"))

    def walk(node: ast.AST, in_function: bool, type_only: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                yield from walk(child, True, type_only)
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                yield from (
                    item for stmt in child.body for item in walk_one(stmt, in_function, True)
                )
                for stmt in child.orelse:
                    yield from walk_one(stmt, in_function, type_only)
            else:
                yield from walk_one(child, in_function, type_only)

    def walk_one(node: ast.AST, in_function: bool, type_only: bool) -> Iterator[Import]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(source, alias.name, (), node.lineno, in_function, type_only)
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(source, node)
            plain = tuple(a.name for a in node.names if f"{module}.{a.name}" not in modules())
            for alias in node.names:  # `from package import module`
                if f"{module}.{alias.name}" in modules():
                    target = f"{module}.{alias.name}"
                    yield Import(source, target, (), node.lineno, in_function, type_only)
            if plain:
                yield Import(source, module, plain, node.lineno, in_function, type_only)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from walk(node, True, type_only)
        else:
            yield from walk(node, in_function, type_only)

    yield from walk(tree, False, False)


@cache
def all_imports() -> tuple[Import, ...]:
    return tuple(item for source in modules() for item in _imports_of(source))


def internal(item: Import) -> bool:
    return item.package in PACKAGES and item.target in modules()


def _runs(item: Import) -> list[str]:
    """What importing `item.target` runs: the target, and each package above it that is not
    above the importer (those are running already). `a.b.c` runs `a/b/__init__` first, so
    an import of a module is an import of its package too."""
    parts = item.target.split(".")
    above = {".".join(item.source.split(".")[:n]) for n in range(1, item.source.count(".") + 2)}
    chain = [".".join(parts[:n]) for n in range(1, len(parts) + 1)]
    return [name for name in chain if name not in above and name in modules()]


def graph(*, when_loaded: bool = False) -> dict[str, set[str]]:
    """Module -> the modules it imports when it runs (type-only imports left out);
    `when_loaded`: only those imported while the module itself loads (not in a function)."""
    edges: dict[str, set[str]] = {name: set() for name in modules()}
    for item in all_imports():
        if not internal(item) or item.type_only or (when_loaded and item.in_function):
            continue
        edges[item.source].update(_runs(item))
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


@cache
def exports(module: str) -> frozenset[str]:
    """A module's `__all__`, read from its source."""
    tree = ast.parse(modules()[module].read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                assert node.value is not None
                return frozenset(ast.literal_eval(node.value))
    return frozenset()


def function_imports() -> set[tuple[str, str]]:
    """(module, imported module) of every import made inside a function."""
    return {(item.source, item.target) for item in all_imports() if item.in_function}


# --- the tests ----------------------------------------------------------------------------


def test_the_walk_sees_every_package() -> None:
    names = set(modules())
    assert {"wire.jose", "spec.registry", "conformance.cli", "mocks.sandbox"} <= names
    assert len(all_imports()) > 500


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_only_the_layers_below_it(package: str) -> None:
    wrong = sorted(
        f"{item.source}:{item.line} imports {item.target}"
        for item in all_imports()
        if item.source.split(".")[0] == package
        and item.package in PACKAGES
        and item.package not in MAY_IMPORT[package]
    )
    assert not wrong, f"{package} may import only {sorted(MAY_IMPORT[package])}:\n" + "\n".join(
        wrong
    )


def test_the_suite_imports_only_the_mocks_public_face() -> None:
    wrong = []
    for item in all_imports():
        if item.source.split(".")[0] != "conformance" or item.package != "mocks":
            continue
        if item.target not in MOCKS_PUBLIC:
            wrong.append(f"{item.source}:{item.line} imports {item.target}, not public")
            continue
        missing = sorted(set(item.names) - exports(item.target))
        if missing:
            wrong.append(f"{item.source}:{item.line}: {missing} not in {item.target}.__all__")
    assert not wrong, "\n".join(wrong)


def test_the_suites_signer_stays_independent_of_the_mocks_signing_code() -> None:
    """Issue 13: a bug shared by the suite's signer and the mocks' verifier would cancel out
    in the self-test, so conformance/client/_signing.py uses JOSE primitives only."""
    shared = {"wire.stripe_signature", "wire.attestation"}
    used = {item.target for item in all_imports() if item.source == "conformance.client._signing"}
    assert not used & shared, sorted(used & shared)


def test_every_public_mock_module_says_what_it_exports() -> None:
    assert all(exports(name) for name in MOCKS_PUBLIC), [
        name for name in sorted(MOCKS_PUBLIC) if not exports(name)
    ]


def test_no_import_cycle() -> None:
    remaining = cycles(graph())
    assert not remaining, "import cycles (break them; do not allow-list them):\n" + "\n".join(
        " <-> ".join(component) for component in remaining
    )


def test_no_module_imports_itself_while_loading() -> None:
    """Counting only the imports that run while a module loads: no module can find another
    one half-initialised, whatever is imported first."""
    assert not cycles(graph(when_loaded=True))


def test_wire_spec_and_mocks_have_no_cycle_at_all() -> None:
    lower = [c for c in cycles(graph()) if not c[0].startswith("conformance")]
    assert not lower, lower


def test_no_import_inside_a_function_but_the_listed_ones() -> None:
    found = function_imports()
    new = sorted(found - set(LATE_IMPORTS))
    stale = sorted(set(LATE_IMPORTS) - found)
    assert not new, "imports inside functions (move them to the top of the module):\n" + (
        "\n".join(f"{source} imports {target}" for source, target in new)
    )
    assert not stale, f"remove these from LATE_IMPORTS, they are gone: {stale}"


def test_wire_spec_and_mocks_import_inside_functions_only_what_loads_late() -> None:
    lower = {
        pair
        for pair in function_imports()
        if not pair[0].startswith("conformance") and pair not in LATE_IMPORTS
    }
    assert not lower, sorted(lower)
