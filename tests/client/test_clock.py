"""The clock a client is given, and the deadline of one call on it."""

from __future__ import annotations

import dataclasses
import random
import time

import pytest

import rawchat
from rawchat.client.clock import Clock, Deadline


def test_the_default_clock_is_the_real_one():
    clock = Clock()
    assert (clock.sleep, clock.monotonic, clock.wall, clock.random) == (
        time.sleep,
        time.monotonic,
        time.time,
        random.random,
    )


def test_the_front_door_hands_out_the_same_clock():
    assert rawchat.Clock is Clock


def test_a_clock_is_a_value_changed_only_by_making_another():
    clock = Clock()
    with pytest.raises(dataclasses.FrozenInstanceError):
        clock.sleep = print  # type: ignore[misc]
    assert dataclasses.replace(clock, random=lambda: 0.5).random() == 0.5


@pytest.mark.parametrize(
    "seconds, now, deadline, left",
    [
        (5.0, 103.0, Deadline(5.0, 105.0), 2.0),
        (5.0, 106.0, Deadline(5.0, 105.0), -1.0),
        (None, 103.0, Deadline(None, None), None),
    ],
)
def test_a_deadline_counts_down_on_its_clock(seconds, now, deadline, left):
    made = Clock(monotonic=lambda: 100.0).deadline(seconds)
    assert (made, made.left(now)) == (deadline, left)


def test_a_fake_clock_can_move_only_when_slept_on():
    now = [0.0]
    clock = Clock(sleep=lambda s: now.__setitem__(0, now[0] + s), monotonic=lambda: now[0])
    deadline = clock.deadline(1.0)
    clock.sleep(0.75)
    assert deadline.left(clock.monotonic()) == 0.25
