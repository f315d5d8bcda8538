"""Tier A's rows (``survival.rows()``) as a text table, JSON, and two plots."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Any, Dict, List, Sequence

from ...storage import atomic_write
from .survival import Cell, Row, rows
from .svg import depth_chart, tokens_chart

__all__ = ["Row", "rows", "table", "to_json", "write"]


def table(summary: Sequence[Row]) -> str:
    """The rows as a fixed-width text table."""
    names = ("budget", "kept", "early", "middle", "recent", "stale", "tok/req", "prefix", "cost $")
    widths = (6, 9, 6, 6, 6, 5, 8, 6, 8)
    head = f"{'strategy':<22} " + " ".join(f"{n:>{w}}" for n, w in zip(names, widths))
    lines = [head, "-" * len(head)]
    for row in summary:
        depth = [f"{k}/{n}" for _, k, n in row.by_depth]
        budget = "-" if row.share is None else f"{row.share:.0%}"
        cost = "-" if row.cost is None else f"{row.cost:.4f}"
        lines.append(
            f"{row.strategy:<22} {budget:>6} {f'{row.kept}/{row.planted}':>9} "
            f"{depth[0]:>6} {depth[1]:>6} {depth[2]:>6} {row.stale:>5} "
            f"{row.tokens_per_request:>8.0f} {row.prefix_stability:>6.0%} {cost:>8}"
        )
    refused = [f"{r.label} ({r.refused})" for r in summary if r.refused]
    if refused:
        lines.append("requests refused as too large for the budget: " + ", ".join(refused))
    return "\n".join(lines)


def to_json(
    summary: Sequence[Row], cells: Sequence[Cell], settings: Dict[str, Any]
) -> Dict[str, Any]:
    """Everything measured: the run's settings, the rows, and each cell with its probes."""
    return {
        "format": "rawchat.eval-memory/1",
        "settings": settings,
        "rows": [dict(asdict(r), kept_share=r.kept_share) for r in summary],
        "cells": [asdict(c) for c in cells],
    }


def write(
    out: str, cells: Sequence[Cell], settings: Dict[str, Any], share: float = 0.25
) -> List[str]:
    """Write ``results.json``, ``table.txt``, ``facts-vs-tokens.svg`` and
    ``facts-by-depth.svg`` (at budget ``share``) into ``out``; return the paths."""
    os.makedirs(out, exist_ok=True)
    summary = rows(cells)
    files = {
        "results.json": json.dumps(to_json(summary, cells, settings), ensure_ascii=False, indent=1),
        "table.txt": table(summary),
        "facts-vs-tokens.svg": tokens_chart(summary),
        "facts-by-depth.svg": depth_chart(summary, share),
    }
    paths = []
    for name, text in files.items():
        path = os.path.join(out, name)
        atomic_write(path, text + "\n")
        paths.append(path)
    return paths
