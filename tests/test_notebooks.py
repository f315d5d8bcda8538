"""Every teaching notebook runs top to bottom, offline, with no error or warning output."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_the_series_is_numbered_from_one_without_repeats():
    numbers = [int(path.name[:2]) for path in NOTEBOOKS]
    assert numbers[:8] == list(range(1, 9)) and numbers == sorted(set(numbers))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_runs_cleanly(path, monkeypatch):
    # The optional "real endpoint" cells must stay offline here.
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    notebook = nbformat.read(str(path), as_version=4)
    nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    problems = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.output_type == "error"
        or (output.output_type == "stream" and output.name == "stderr")
    ]
    assert problems == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_opens_with_what_it_teaches_and_closes_with_a_recap(path):
    notebook = nbformat.read(str(path), as_version=4)
    markdown = [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]
    assert "**What you will learn:**" in markdown[0]
    assert markdown[-1].startswith("## Recap")
