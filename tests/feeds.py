"""The three ways every parser is fed: whole, one byte at a time, random splits."""

from __future__ import annotations

import random
from typing import Iterable, List


def whole(data: bytes) -> List[bytes]:
    return [data]


def byte_by_byte(data: bytes) -> List[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def random_splits(data: bytes, seed: int = 7) -> List[bytes]:
    rng = random.Random(seed)
    pieces, start = [], 0
    while start < len(data):
        end = start + rng.randint(0, 7)  # 0: empty reads happen too
        pieces.append(data[start:end])
        start = end
    return pieces


FEEDS = [whole, byte_by_byte, random_splits]


def split_at(data: bytes, points: Iterable[int]) -> List[bytes]:
    """``data`` cut at the given offsets (in any order, repeats giving empty reads)."""
    cuts = sorted(min(max(point, 0), len(data)) for point in points)
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
