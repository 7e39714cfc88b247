"""The package's layers point one way: read from the source (ast), not from import side effects.

Bottom to top (docs/index.md, "Layers"): the wire codec (``flexconn._codec``, ``_structgen``),
the models, the protocol (sans-IO: codec, encode, decode, routing, channel names, signing), then
channels, auth, book and the other building blocks, the I/O layer (trio, transport, connection,
outbox, feeds), the facade ``flexconn``; the simulator and the command line sit beside the client
and only they import the simulator.

An edge is a module-level import (``if TYPE_CHECKING:`` blocks are not imports at run time);
``from pkg import name`` also counts ``pkg.name`` when that is a module, and importing a module of
another package also runs that package's ``__init__``, so it counts as an edge to the package (the
root ``flexconn`` package excepted: it is the facade every submodule import passes through).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "flexconn"

#: What the models and the protocol layer must never import, directly or through other modules.
FORBIDDEN_BELOW_IO = (
    "trio",
    "httpx",
    "flexconn.connection",
    "flexconn.outbox",
    "flexconn.channels",
    "flexconn.auth",
    "flexconn.feeds",
    "flexconn.sim",
)
LOW_LAYERS = ("flexconn.models", "flexconn.protocol")
#: The only places that may import the simulator.
SIM_USERS = ("flexconn.sim", "flexconn._cli")


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(body: list[ast.stmt], *, nested: bool) -> Iterator[ast.stmt]:
    """The statements that run (module level only unless ``nested``); TYPE_CHECKING skipped."""
    for node in body:
        yield node
        if isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _statements(node.body, nested=nested)
            yield from _statements(node.orelse, nested=nested)
        elif isinstance(node, ast.Try | ast.With):
            for block in ("body", "orelse", "finalbody"):
                yield from _statements(getattr(node, block, []), nested=nested)
            for handler in getattr(node, "handlers", []):
                yield from _statements(handler.body, nested=nested)
        elif nested and isinstance(
            node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.For | ast.While
        ):
            yield from _statements(node.body, nested=nested)


def imports_of(module: str, *, nested: bool = False) -> set[str]:
    """What ``module`` imports: flexconn modules by full name, others by top-level package."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _statements(ast.parse(path.read_text()).body, nested=nested):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
            # ``from pkg import submodule`` needs the submodule; ``pkg`` itself only for names
            # it defines (or, below, when the importer is outside it).
            targets = submodules if len(submodules) == len(node.names) else [base, *submodules]
        for target in targets:
            if not _within(target, "flexconn"):
                found.add(target.split(".")[0])
                continue
            while target not in MODULES:  # ``import flexconn.a.b`` of a name, not a module
                target = target.rpartition(".")[0]
            found.add(target)
            parts = target.split(".")
            for depth in range(2, len(parts)):  # the packages the import runs on its way
                ancestor = ".".join(parts[:depth])
                if not _within(module, ancestor):
                    found.add(ancestor)
    found.discard(module)
    return found


def graph(*, nested: bool = False) -> dict[str, set[str]]:
    """flexconn module -> the flexconn modules it imports."""
    return {
        module: {t for t in imports_of(module, nested=nested) if _within(t, "flexconn")}
        for module in MODULES
    }


def reachable(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(edges[module])
    return seen


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_imports() -> None:
    # The walker itself: absolute, relative, submodule and package edges; TYPE_CHECKING skipped.
    edges = graph()
    assert "flexconn._codec" in edges["flexconn.models.notices"]
    assert "flexconn.protocol.decode" in edges["flexconn.protocol"]
    assert {"flexconn.protocol", "flexconn.protocol.signing"} <= edges["flexconn.auth"]
    assert "trio" in imports_of("flexconn.connection")
    assert "flexconn.sim.ws_messages" in edges["flexconn.sim.exchange"]
    assert "flexconn.sim" not in edges["flexconn.sim.exchange"]  # its own package
    assert "flexconn.sim" in edges["flexconn._cli.demo"]
    assert all(_within(t, "flexconn") for targets in edges.values() for t in targets)


@pytest.mark.parametrize("layer", LOW_LAYERS)
def test_models_and_protocol_import_nothing_above_them(layer: str) -> None:
    # Every import counts here, lazy ones in functions included, and so does what they import.
    edges = graph(nested=True)
    modules = [m for m in MODULES if _within(m, layer)]
    reached = set().union(*(reachable(m, edges) for m in modules))
    third_party = set().union(*(imports_of(m, nested=True) for m in reached))
    bad = sorted(m for m in reached | third_party if any(_within(m, f) for f in FORBIDDEN_BELOW_IO))
    assert bad == []


def test_the_models_do_not_import_the_protocol() -> None:
    # The converter is below the models (flexconn._codec); the protocol imports the models.
    edges = graph(nested=True)
    reached = set().union(*(reachable(m, edges) for m in MODULES if _within(m, "flexconn.models")))
    assert sorted(m for m in reached if _within(m, "flexconn.protocol")) == []
    assert "flexconn._codec" in reached


def test_only_the_simulator_and_the_command_line_import_the_simulator() -> None:
    edges = graph(nested=True)
    bad = sorted(
        (module, target)
        for module, targets in edges.items()
        if not any(_within(module, user) for user in SIM_USERS)
        for target in targets
        if _within(target, "flexconn.sim")
    )
    assert bad == []


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_cycles() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_channel_grammar_names_every_channel_the_client_knows() -> None:
    # The protocol owns the channel names; flexconn.channels adds what each yields.
    from flexconn import channels
    from flexconn.protocol.channel_names import CHANNEL_NAMES

    assert set(channels._FIXED) == CHANNEL_NAMES
