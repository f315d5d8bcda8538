"""The two plots of a memory evaluation, written as SVG by hand (no plotting library).

``tokens_chart``: facts kept (% of those planted) against prompt tokens per
request, one line per strategy through its budgets, the two bounds as lone
points. ``depth_chart``: facts kept at each depth (early, middle, recent),
one bar per strategy at one budget. SVG 1.1: https://www.w3.org/TR/SVG11/.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple
from xml.sax.saxutils import escape

from .survival import Row

__all__ = ["depth_chart", "tokens_chart"]

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
_W, _H, _LEFT, _RIGHT, _TOP, _BOTTOM = 640, 400, 60, 170, 30, 50


def _frame(title: str, x_label: str, x_ticks: List[Tuple[float, str]]) -> List[str]:
    """The canvas, the title, the axes, the y ticks (0 to 100 %) and the given x ticks."""
    bottom, right = _H - _BOTTOM, _W - _RIGHT
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" font-family="sans-serif" font-size="12">',
        f'<rect width="{_W}" height="{_H}" fill="white"/>',
        f'<text x="{_W / 2}" y="18" text-anchor="middle" font-size="14">{escape(title)}</text>',
        f'<line x1="{_LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="black"/>',
        f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{bottom}" stroke="black"/>',
        f'<text x="{(_LEFT + right) / 2}" y="{_H - 12}" text-anchor="middle">'
        f"{escape(x_label)}</text>",
        f'<text x="14" y="{(_TOP + bottom) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {(_TOP + bottom) / 2})">facts kept (%)</text>',
    ]
    for percent in range(0, 101, 25):
        y = _y(percent / 100)
        parts.append(f'<line x1="{_LEFT}" y1="{y}" x2="{right}" y2="{y}" stroke="#ddd"/>')
        parts.append(f'<text x="{_LEFT - 6}" y="{y + 4}" text-anchor="end">{percent}</text>')
    for x, label in x_ticks:
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{escape(label)}</text>'
        )
    return parts


def _y(share: float) -> float:
    return round(_H - _BOTTOM - share * (_H - _BOTTOM - _TOP), 1)


def _legend(names: Sequence[str]) -> List[str]:
    parts = []
    for i, name in enumerate(names):
        y = _TOP + 10 + 18 * i
        x = _W - _RIGHT + 14
        colour = _COLOURS[i % len(_COLOURS)]
        parts.append(f'<rect x="{x}" y="{y - 9}" width="12" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 18}" y="{y}">{escape(name)}</text>')
    return parts


def tokens_chart(rows: Sequence[Row]) -> str:
    """Facts kept against prompt tokens per request: a line per strategy."""
    most = max((r.tokens_per_request for r in rows), default=1.0) or 1.0
    span = _W - _RIGHT - _LEFT

    def x(tokens: float) -> float:
        return round(_LEFT + tokens / most * span, 1)

    ticks = [(x(most * i / 4), f"{most * i / 4:.0f}") for i in range(5)]
    parts = _frame("Facts kept vs prompt tokens", "prompt tokens per request", ticks)
    lines: Dict[str, List[Row]] = {}
    for row in rows:
        lines.setdefault(row.strategy, []).append(row)
    for i, points in enumerate(lines.values()):
        colour = _COLOURS[i % len(_COLOURS)]
        xy = [(x(r.tokens_per_request), _y(r.kept_share)) for r in points]
        if len(xy) > 1:
            path = " ".join(f"{a},{b}" for a, b in sorted(xy))
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
        for (a, b), row in zip(xy, points):
            tip = f"{row.label}: {row.kept}/{row.planted}, {row.tokens_per_request:.0f} tokens"
            parts.append(
                f'<circle cx="{a}" cy="{b}" r="4" fill="{colour}">'
                f"<title>{escape(tip)}</title></circle>"
            )
    return "\n".join(parts + _legend(list(lines)) + ["</svg>"])


def depth_chart(rows: Sequence[Row], share: float = 0.25) -> str:
    """Facts kept at each depth, a bar per strategy at budget ``share`` (bounds included)."""
    chosen = [r for r in rows if r.share is None or abs(r.share - share) < 1e-9]
    depths = [d for d, _, _ in chosen[0].by_depth] if chosen else []
    span = _W - _RIGHT - _LEFT
    group = span / max(len(depths), 1)
    bar = group * 0.8 / max(len(chosen), 1)
    ticks = [(_LEFT + group * (i + 0.5), d) for i, d in enumerate(depths)]
    parts = _frame(f"Facts kept by depth, budget {share:.0%}", "where the fact was said", ticks)
    for i, row in enumerate(chosen):
        colour = _COLOURS[i % len(_COLOURS)]
        for j, (depth, kept, planted) in enumerate(row.by_depth):
            value = kept / planted if planted else 0.0
            left = round(_LEFT + group * j + group * 0.1 + bar * i, 1)
            top = _y(value)
            tip = f"{row.label}, {depth}: {kept}/{planted}"
            parts.append(
                f'<rect x="{left}" y="{top}" width="{bar:.1f}" height="{_y(0) - top:.1f}" '
                f'fill="{colour}"><title>{escape(tip)}</title></rect>'
            )
    return "\n".join(parts + _legend([r.strategy for r in chosen]) + ["</svg>"])
