"""Completion values: what the wire's ``usage`` counts are trusted to say."""

from __future__ import annotations

import pytest

from rawchat.protocol.completion import Usage


def test_sane_counts_are_read_as_sent():
    usage = Usage.from_wire({"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12})
    assert usage == Usage(9, 3, 12)


# Each total is what a server doing the sum on its bad count would send.
@pytest.mark.parametrize(
    "prompt, total, expected",
    [
        (-1_000_000, -999_997, Usage(0, 3, 3)),
        (-10, 12, Usage(0, 3, 3)),
        (True, 4, Usage(0, 3, 3)),
        (10**12, 10**12 + 3, Usage(0, 3, 3)),
        (10**9, 10**9 + 3, Usage(10**9, 3, 10**9 + 3)),
        ("9", 12, Usage(0, 3, 3)),
    ],
    ids=["negative", "negative, sane total", "bool", "absurd", "the largest trusted", "text"],
)
def test_an_impossible_count_reads_as_zero_and_the_total_is_recomputed(prompt, total, expected):
    usage = Usage.from_wire(
        {"prompt_tokens": prompt, "completion_tokens": 3, "total_tokens": total}
    )
    assert usage == expected


@pytest.mark.parametrize(
    "total", [-5, 1, True, 10**15], ids=["negative", "short", "bool", "absurd"]
)
def test_a_total_below_its_parts_or_impossible_is_their_sum(total):
    usage = Usage.from_wire({"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": total})
    assert usage == Usage(9, 3, 12)


def test_a_total_above_its_parts_is_kept():
    # Some providers count hidden thinking in the total only.
    usage = Usage.from_wire({"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 20})
    assert usage == Usage(9, 3, 20)


def test_impossible_cached_and_reasoning_counts_read_as_zero():
    usage = Usage.from_wire(
        {
            "prompt_tokens": 9,
            "completion_tokens": 3,
            "prompt_tokens_details": {"cached_tokens": -9},
            "completion_tokens_details": {"reasoning_tokens": 10**10},
        }
    )
    assert usage == Usage(9, 3, 12, cached_tokens=0, reasoning_tokens=0)


def test_negative_counts_cannot_shrink_a_metered_total():
    usage = Usage.from_wire({"prompt_tokens": 50, "completion_tokens": -1_000_000})
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (50, 0, 50)
