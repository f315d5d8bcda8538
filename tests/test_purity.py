"""The protocol core is sans-I/O: it imports no network, clock or randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rawchat

PURE = [
    "accumulate",
    "chunked",
    "chunks",
    "completion",
    "errors",
    "request",
    "response",
    "retry",
    "sse",
    "stream",
    "wire",
]
FORBIDDEN = {
    "requests",
    "urllib3",
    "socket",
    "time",
    "random",
    "os",
    "http",
    "subprocess",
    "threading",
}
PACKAGE = Path(rawchat.__file__).parent


def imported_modules(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_io_clock_or_randomness(module):
    assert set(imported_modules(PACKAGE / f"{module}.py")) & FORBIDDEN == set()


def test_the_simulator_app_and_model_are_pure_too():
    for name in ("app.py", "model.py"):
        assert (
            set(imported_modules(PACKAGE / "simulator" / name)) & (FORBIDDEN - {"threading"})
            == set()
        )


def test_only_the_transport_imports_requests():
    importers = sorted(
        path.name for path in PACKAGE.rglob("*.py") if "requests" in set(imported_modules(path))
    )
    assert importers == ["client.py", "transport.py"]


def test_nothing_imports_the_official_openai_package():
    for path in PACKAGE.rglob("*.py"):
        assert "openai" not in set(imported_modules(path)), path


def test_importing_rawchat_does_not_load_the_simulator_or_cli():
    import subprocess
    import sys

    code = (
        "import sys, rawchat; print(sorted(m for m in sys.modules "
        "if m in ('rawchat.cli', 'rawchat.simulator', 'http.server')))"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
        == "[]\n"
    )
