"""The key pool: selection, cool-downs, retirement, expiry, rotation."""

from __future__ import annotations

import logging

import pytest

import rawchat
from rawchat.errors import AuthenticationError, ConfigError
from rawchat.policies import Policies
from rawchat.policies.keys import KeyPool, NoKeyAvailableError, parse_keys
from rawchat.simulator import Simulator

A, B, C = "sk-key-a-000000000aaaa", "sk-key-b-000000000bbbb", "sk-key-c-000000000cccc"
NOW = 100.0
WALL = 1_800_000_000.0  # 2027-01-15


def picks(pool, count, now=NOW):
    chosen = []
    for _ in range(count):
        key = pool.acquire(now, WALL)
        chosen.append(key.fingerprint)
        pool.release(key, now)
    return chosen


def test_round_robin_takes_turns():
    assert picks(KeyPool([A, B, C]), 4) == ["...aaaa", "...bbbb", "...cccc", "...aaaa"]


def test_least_recently_used():
    pool = KeyPool([A, B], selection="least_recently_used")
    first = pool.acquire(1.0, WALL)
    pool.release(first, 1.0)
    assert pool.acquire(2.0, WALL).fingerprint == "...bbbb"


def test_fewest_in_flight():
    pool = KeyPool([A, B], selection="fewest_in_flight")
    busy = pool.acquire(NOW, WALL)  # A stays in flight
    assert busy.fingerprint == "...aaaa"
    assert [pool.acquire(NOW, WALL).fingerprint for _ in range(2)] == ["...bbbb", "...aaaa"]


def test_a_429_cools_a_key_down_for_its_retry_after():
    pool = KeyPool([A, B])
    key = pool.acquire(NOW, WALL)
    pool.release(key, NOW, status=429, retry_after=5.0)
    assert picks(pool, 2, now=NOW + 1) == ["...bbbb", "...bbbb"]
    assert picks(pool, 2, now=NOW + 5) == ["...aaaa", "...bbbb"]


def test_401_403_and_insufficient_quota_retire_a_key_with_a_warning(caplog):
    pool = KeyPool([A, B, C])
    with caplog.at_level(logging.WARNING, logger="rawchat.policies.keys"):
        for status, code in ((401, None), (403, None), (429, "insufficient_quota")):
            pool.release(pool.acquire(NOW, WALL), NOW, status=status, code=code)
    assert pool.status() == {
        "...aaaa": "refused (401)",
        "...bbbb": "refused (403)",
        "...cccc": "out of quota",
    }
    assert caplog.messages[0] == "key ...aaaa taken out of rotation: refused (401)"
    with pytest.raises(
        NoKeyAvailableError, match=r"no API key is usable \(\.\.\.aaaa: refused \(401\)"
    ):
        pool.acquire(NOW, WALL)


def test_an_expired_key_is_never_used():
    pool = KeyPool(parse_keys(f"{A}@2026-12-31,{B}"))
    assert picks(pool, 2) == ["...bbbb", "...bbbb"]


def test_all_cooling_says_when_to_retry():
    pool = KeyPool([A])
    pool.release(pool.acquire(NOW, WALL), NOW, status=429, retry_after=3.0)
    with pytest.raises(NoKeyAvailableError) as caught:
        pool.acquire(NOW + 1, WALL)
    assert caught.value.retry_in == pytest.approx(2.0)


def test_rotation_adds_the_new_key_and_retires_the_old_while_in_flight():
    pool = KeyPool([A])
    in_flight = pool.acquire(NOW, WALL)
    pool.replace([B])
    assert picks(pool, 2) == ["...bbbb", "...bbbb"]
    pool.release(in_flight, NOW)  # the old request still finishes
    assert [k.fingerprint for k in pool.keys] == ["...bbbb"]


def test_keys_reload_from_a_file(tmp_path):
    path = tmp_path / "keys.txt"
    path.write_text(f"# production keys\n{A}\n{B}\n")
    pool = KeyPool([C])
    pool.reload_file(str(path))
    assert list(pool.status()) == ["...aaaa", "...bbbb"]


@pytest.mark.parametrize(
    "text, message", [("", "holds no keys"), (f"{A}@next-week", "not YYYY-MM-DD")]
)
def test_bad_key_lists_are_config_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_keys(text)


def test_the_client_fails_over_to_the_next_key_when_one_is_revoked():
    with Simulator(api_keys=[B]) as sim:
        client = rawchat.Client(
            base_url=sim.base_url,
            policies=Policies(keys=[A, B]),
            clock=rawchat.Clock(sleep=lambda s: None),
        )
        done = client.chat([{"role": "user", "content": "hi"}], model="gpt-4o-mini")
        assert done.retries_taken == 1
        assert client.policies.keys.status() == {"...aaaa": "refused (401)", "...bbbb": "active"}
        assert sim.requests_by_key == {"...aaaa": 1, "...bbbb": 1}
        client.chat([{"role": "user", "content": "again"}], model="gpt-4o-mini")
        assert sim.requests_by_key["...aaaa"] == 1  # never tried again


class FakeTime:
    def __init__(self):
        self.now, self.slept = 0.0, []

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_a_429_storm_is_spread_across_keys_each_cooling_for_its_wait(sim):
    fake = FakeTime()
    client = rawchat.Client(
        base_url=sim.base_url,
        policies=Policies(keys=[A, B, C]),
        max_retries=3,
        clock=rawchat.Clock(sleep=fake.sleep, monotonic=lambda: fake.now),
    )
    fault = {"X-Rawchat-Fault": "429=2"}  # once per key
    done = client.chat(
        [{"role": "user", "content": "hi"}], model="gpt-4o-mini", extra_headers=fault
    )
    assert done.retries_taken == 3
    assert fake.slept == [2.0, 2.0, 2.0]  # the server's wait is kept, never skipped
    assert sim.requests_by_key == {"...aaaa": 2, "...bbbb": 1, "...cccc": 1}


def test_when_every_key_is_refused_the_last_error_says_so():
    with Simulator(api_keys=["sk-other-00000000zzzz"]) as sim:
        client = rawchat.Client(
            base_url=sim.base_url,
            policies=Policies(keys=[A, B]),
            clock=rawchat.Clock(sleep=lambda s: None),
        )
        with pytest.raises(AuthenticationError) as caught:
            client.chat([{"role": "user", "content": "hi"}], model="gpt-4o-mini")
    assert "the key from the key pool (ending ...bbbb)" in caught.value.hint
