"""The Chinese notebooks (notebooks/zh/) are twins of the English ones: same code, translated prose.

A twin keeps its English notebook's code cells byte for byte, so that both
languages teach the same bytes and show the same outputs. When an English
notebook changes, the twin test fails; to see what to carry over, run

    python tests/test_notebooks_zh.py notebooks/01-a-chat-request-by-hand.ipynb

which lists the English code cells that the twin lacks, has changed or has
in excess, with the cell numbers of both notebooks.
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path
from typing import List, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENGLISH = ROOT / "notebooks"
CHINESE = sorted((ENGLISH / "zh").glob("*.ipynb"))
HAN = re.compile("[\u4e00-\u9fff]")
FENCE = re.compile(r"^```[a-z]*\n.*?^```$", re.DOTALL | re.MULTILINE)


def read(path: Path):
    import nbformat

    return nbformat.read(str(path), as_version=4)


def code_cells(notebook) -> List[Tuple[int, str]]:
    """The code cells as (cell number in the notebook, source)."""
    return [(n, cell.source) for n, cell in enumerate(notebook.cells) if cell.cell_type == "code"]


def code_drift(english_path: Path, chinese_path: Path) -> List[str]:
    """What the twin must change to have the English notebook's code cells, one line each.

    Each English code cell the twin lacks or has changed is listed with the
    English prose around it, which the twin then needs translated too.
    """
    notebook = read(english_path)
    english, chinese = code_cells(notebook), code_cells(read(chinese_path))
    matcher = difflib.SequenceMatcher(
        a=[source for _, source in english], b=[source for _, source in chinese], autojunk=False
    )
    lines = []
    for tag, e1, e2, c1, c2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if tag == "replace":
            where = "Chinese cells " + ", ".join(str(n) for n, _ in chinese[c1:c2])
        else:
            where = f"after Chinese cell {chinese[c1 - 1][0]}" if c1 else "at the start"
        start = english[e1 - 1][0] + 1 if e1 else 0
        stop = english[e2][0] if e2 < len(english) else len(notebook.cells)
        for n in range(start, stop):
            cell = notebook.cells[n]
            if cell.cell_type == "code" and any(n == m for m, _ in english[e1:e2]):
                verb = "changed" if tag == "replace" else "missing"
                lines.append(f"English cell {n} (code) {verb} ({where}): {first_line(cell)}")
            elif cell.cell_type == "markdown":
                lines.append(f"English cell {n} (prose, around it): {first_line(cell)}")
        for n, _ in chinese[c1:c2] if tag == "delete" else ():
            lines.append(f"Chinese cell {n} (code) has no English counterpart")
    return lines


def first_line(cell) -> str:
    return cell.source.splitlines()[0] if cell.source else ""


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def broken_links(text: str, base: Path) -> List[str]:
    """The relative link targets of a markdown text that do not exist under base."""
    targets = [t for t in LINK.findall(text) if "://" not in t]
    return [t for t in targets if not (base / t).exists()]


def test_every_chinese_notebook_is_the_twin_of_an_english_one():
    names = {path.name for path in CHINESE}
    assert {"01-a-chat-request-by-hand.ipynb", "03-parsing-the-answer.ipynb"} <= names
    assert {"09-the-responses-api.ipynb", "10-what-memory-forgets.ipynb"} <= names
    assert [name for name in names if not (ENGLISH / name).exists()] == []


@pytest.mark.parametrize("path", CHINESE, ids=lambda p: p.stem)
def test_a_chinese_notebook_has_the_code_cells_of_its_english_twin(path):
    pytest.importorskip("nbformat")
    assert code_drift(ENGLISH / path.name, path) == []


@pytest.mark.parametrize("path", CHINESE, ids=lambda p: p.stem)
def test_a_chinese_notebook_translates_every_paragraph_of_its_twin(path):
    pytest.importorskip("nbformat")
    english = [c.source for c in read(ENGLISH / path.name).cells if c.cell_type == "markdown"]
    chinese = [c.source for c in read(path).cells if c.cell_type == "markdown"]
    assert len(chinese) == len(english)
    assert [text for text in chinese if text in english or not HAN.search(text)] == []


@pytest.mark.parametrize("path", CHINESE, ids=lambda p: p.stem)
def test_a_chinese_notebook_opens_with_what_it_teaches(path):
    pytest.importorskip("nbformat")
    markdown = [c.source for c in read(path).cells if c.cell_type == "markdown"]
    assert "**你将学到：**" in markdown[0]


@pytest.mark.parametrize("path", CHINESE, ids=lambda p: p.stem)
def test_a_chinese_notebook_links_to_notebooks_that_exist(path):
    pytest.importorskip("nbformat")
    markdown = "\n".join(c.source for c in read(path).cells if c.cell_type == "markdown")
    assert broken_links(markdown, path.parent) == []


@pytest.mark.parametrize("path", CHINESE, ids=lambda p: p.stem)
def test_a_chinese_notebook_runs_cleanly(path, monkeypatch):
    from .test_notebooks import test_a_notebook_runs_cleanly as runs_cleanly

    runs_cleanly(path, monkeypatch)


def test_the_chinese_readme_has_the_code_blocks_of_the_english_one():
    english = (ROOT / "README.md").read_text(encoding="utf-8")
    chinese = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")
    assert FENCE.findall(chinese) == FENCE.findall(english)


def test_the_chinese_readme_links_to_files_that_exist():
    chinese = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")
    assert "notebooks/zh/01-a-chat-request-by-hand.ipynb" in chinese
    assert broken_links(chinese, ROOT) == []


if __name__ == "__main__":
    for name in sys.argv[1:]:
        english_path = Path(name)
        twin = english_path.parent / "zh" / english_path.name
        print(f"{english_path.name}:")
        if not twin.exists():
            print("  no Chinese twin yet")
            continue
        for line in code_drift(english_path, twin) or ["in step"]:
            print("  " + line)
