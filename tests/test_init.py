"""The package's front door: a short list of names, each imported on first use."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import rawchat
import rawchat.errors


def modules_loaded_by(code: str) -> set:
    """The modules ``code`` loads beyond what this interpreter loads doing nothing."""
    script = (
        "import sys; before = set(sys.modules); "
        f"{code}; print(' '.join(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def test_importing_rawchat_loads_only_its_version():
    assert modules_loaded_by("import rawchat") == {"rawchat", "rawchat.version"}


def test_the_sse_parser_alone_does_not_pull_in_requests():
    loaded = modules_loaded_by("from rawchat import SSEParser")
    assert "rawchat.protocol.sse" in loaded
    assert loaded & {"requests", "urllib3", "socket"} == set()


def test_the_client_loads_requests_but_not_the_simulator_or_the_cli():
    loaded = modules_loaded_by("import rawchat; rawchat.Client")
    assert {"rawchat.client.client", "requests"} <= loaded
    assert loaded & {"rawchat.simulator", "rawchat.cli.main", "http.server"} == set()


@pytest.mark.parametrize("name", sorted(set(rawchat.__all__) - {"__version__"}))
def test_every_public_name_is_the_object_of_its_home_module(name):
    home = rawchat._HOMES[name]
    module = importlib.import_module(f"rawchat.{home}")
    expected = module if name == home else getattr(module, name)
    assert getattr(rawchat, name) is expected


def test_the_front_door_lists_exactly_the_names_it_can_load():
    assert set(rawchat._HOMES) | {"__version__"} == set(rawchat.__all__)


def test_dir_shows_what_all_lists_and_nothing_else():
    import rawchat.client.client  # subpackages become attributes when imported
    import rawchat.protocol.sse

    assert dir(rawchat) == sorted(rawchat.__all__)


def test_every_error_of_the_tree_is_in_rawchat_errors():
    classes = [
        value
        for value in vars(rawchat.errors).values()
        if isinstance(value, type) and issubclass(value, Exception)
    ]
    assert {cls.__name__ for cls in classes} <= set(rawchat.errors.__all__)
    assert all(issubclass(cls, rawchat.errors.RawchatError) for cls in classes)


def test_the_errors_the_readme_catches_are_at_the_top_too():
    for name in ("RawchatError", "APIStatusError", "RateLimitError", "IncompleteStreamError"):
        assert getattr(rawchat, name) is getattr(rawchat.errors, name)


def test_an_unknown_name_is_an_attribute_error_naming_it():
    with pytest.raises(AttributeError, match="no attribute 'Clinet'"):
        rawchat.Clinet


def test_a_name_that_moved_out_of_the_front_door_is_not_found_there():
    with pytest.raises(AttributeError, match="no attribute 'KeyPool'"):
        rawchat.KeyPool
