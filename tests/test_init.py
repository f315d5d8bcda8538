"""The package's front door: every public name, each imported on first use."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import rawchat


def modules_after(code: str) -> set:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}; import sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


def test_importing_rawchat_loads_no_client_no_requests_and_no_typing():
    loaded = modules_after("import rawchat")
    assert {"rawchat", "rawchat.version"} <= loaded
    assert (
        loaded & {"requests", "rawchat.client", "rawchat.errors", "dataclasses", "typing"} == set()
    )


def test_the_sse_parser_alone_does_not_pull_in_requests():
    loaded = modules_after("from rawchat.sse import SSEParser")
    assert "rawchat.sse" in loaded
    assert "requests" not in loaded


def test_the_client_loads_requests_but_not_the_simulator_or_the_cli():
    loaded = modules_after("import rawchat; rawchat.Client")
    assert {"rawchat.client", "requests"} <= loaded
    assert loaded & {"rawchat.simulator", "rawchat.cli", "http.server"} == set()


@pytest.mark.parametrize("name", sorted(set(rawchat.__all__) - {"__version__"}))
def test_every_public_name_is_the_object_of_its_module(name):
    where = rawchat._EXPORTS.get(name, "errors")
    module = importlib.import_module(f"rawchat.{where}")
    expected = module if name == where else getattr(module, name)
    assert getattr(rawchat, name) is expected


def test_every_export_is_listed_in_all():
    assert set(rawchat._EXPORTS) | {"__version__"} <= set(rawchat.__all__)


def test_every_exception_class_of_the_tree_is_exported():
    from rawchat import errors

    classes = {n for n in errors.__all__ if isinstance(getattr(errors, n), type)}
    assert classes <= set(rawchat.__all__) - set(rawchat._EXPORTS)


def test_an_unknown_name_is_an_attribute_error_naming_it():
    with pytest.raises(AttributeError, match="no attribute 'Clinet'"):
        rawchat.Clinet


def test_dir_lists_the_lazy_names_too():
    assert {"Client", "SSEParser", "Simulator", "errors"} <= set(dir(rawchat))
