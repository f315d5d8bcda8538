"""Every example in a docstring runs: doctest over every module of the package."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import rawchat

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(rawchat.__path__, prefix="rawchat.")
    if not info.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_in_the_docstrings_run(name, monkeypatch):
    # The examples run offline: a client made with no settings talks to nothing.
    for variable in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RAWCHAT_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_there_are_examples_to_run():
    examples = 0
    finder = doctest.DocTestFinder()
    for name in MODULES:
        for test in finder.find(importlib.import_module(name)):
            examples += len(test.examples)
    assert examples >= 10
