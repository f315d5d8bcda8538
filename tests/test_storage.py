"""Atomic writes: the old file or the new one, never a mix."""

from __future__ import annotations

import os

import pytest

from rawchat.storage import atomic_write


def test_a_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "conv.json"
    path.write_text("old")
    atomic_write(str(path), "new ✓")
    assert path.read_text(encoding="utf-8") == "new ✓"
    assert os.listdir(tmp_path) == ["conv.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "conv.json"
    path.write_text("old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(str(path), "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["conv.json"]
