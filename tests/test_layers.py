"""The folders are the layers: who may import whom, no circles, a pure protocol.

Every import counts, wherever it is written: at the top of a module, inside
a function, or under ``if TYPE_CHECKING:`` (a type-checking import is still
a dependency a reader has to follow).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, Set

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "rawchat"

#: Each layer, and the layers it may import (itself included).
ALLOWED: Dict[str, Set[str]] = {
    "base": {"base"},
    "protocol": {"base", "protocol"},
    "policies": {"base", "protocol", "policies"},
    "client": {"base", "protocol", "policies", "client"},
    "conversation": {"base", "protocol", "policies", "client", "conversation"},
    "cli": {"base", "protocol", "policies", "client", "conversation", "simulator", "cli"},
    "simulator": {"base", "protocol", "simulator"},
}
#: ``rawchat/__init__.py`` and ``__main__.py`` are the front door: they may
#: name anything (lazily), and nothing imports them but users.
FRONT = {"rawchat", "rawchat.__main__"}

#: What the protocol layer must not import, directly or through any module
#: of rawchat it imports: the network, the clock, randomness, the OS.
IMPURE = {
    "asyncio",
    "concurrent",
    "datetime",
    "email",
    "http",
    "logging",
    "os",
    "random",
    "requests",
    "secrets",
    "select",
    "selectors",
    "shutil",
    "socket",
    "ssl",
    "subprocess",
    "tempfile",
    "threading",
    "time",
    "urllib3",
    "uuid",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 2 and parts[1] in ("errors", "version", "storage"):
        return "base"
    if len(parts) >= 2 and parts[1] in ALLOWED:
        return parts[1]
    raise AssertionError(f"{module} is in no layer: put it in one of the folders")


def imports_of(module: str) -> Iterator[str]:
    """Every module ``module`` imports, absolute; rawchat's resolved to real modules."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{alias.name}" for alias in node.names]
            submodules = [name for name in names if name in MODULES]
            yield from submodules or [target]


def rawchat_imports(module: str) -> Set[str]:
    return {name for name in imports_of(module) if name.split(".")[0] == "rawchat"}


@pytest.mark.parametrize("module", sorted(set(MODULES) - FRONT))
def test_a_module_imports_only_its_own_layer_and_the_layers_below(module):
    layer = layer_of(module)
    wrong = {
        target: layer_of(target)
        for target in rawchat_imports(module)
        if target not in FRONT and layer_of(target) not in ALLOWED[layer]
    }
    assert wrong == {}, f"{module} ({layer}) imports upward"
    assert not rawchat_imports(module) & FRONT, f"{module} imports the front door"


def test_there_are_no_import_circles():
    graph = {module: rawchat_imports(module) & set(MODULES) for module in MODULES}
    # Tarjan's strongly connected components: any component of two or more
    # modules (or a module importing itself) is a circle.
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: list = []
    on_stack: Set[str] = set()
    circles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
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
            if len(component) > 1 or node in graph[node]:
                circles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    assert circles == []


def closure(module: str) -> Set[str]:
    """``module`` and every rawchat module importing it runs, packages included."""
    seen: Set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current in seen or current in FRONT:  # the front door's names are lazy
            continue
        seen.add(current)
        parts = current.split(".")
        todo += [".".join(parts[:n]) for n in range(1, len(parts))]  # the packages
        todo += [m for m in rawchat_imports(current) if m in MODULES]
    return seen


PROTOCOL = sorted(m for m in MODULES if m.startswith("rawchat.protocol"))


@pytest.mark.parametrize("module", PROTOCOL)
def test_the_protocol_layer_imports_no_io_clock_or_randomness_even_indirectly(module):
    found = {
        (via, name)
        for via in closure(module)
        for name in imports_of(via)
        if name.split(".")[0] in IMPURE
    }
    assert found == set()


def test_a_protocol_module_that_reached_os_through_another_would_be_caught():
    # The check above follows rawchat's own imports: settings -> os would fail it.
    assert "rawchat.protocol.settings" in closure("rawchat.protocol.request")


def test_importing_the_whole_protocol_layer_loads_no_network_clock_or_random_module():
    code = (
        "import sys; before = set(sys.modules); "
        + "; ".join(f"import {m}" for m in PROTOCOL)
        + "; print(' '.join(sorted(set(sys.modules) - before)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert {m for m in loaded if m.split(".")[0] in IMPURE - {"os"}} == set()


def test_only_the_transport_imports_requests():
    users = {m for m in MODULES if any(n.split(".")[0] == "requests" for n in imports_of(m))}
    assert users == {"rawchat.client.transport"}
