"""Pacing and key health shared in a real redis-server: the Pacer's and KeyPool's rules.

Each test module run starts its own ``redis-server`` on a free port of
127.0.0.1 in a temporary directory, and stops it afterwards.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from typing import Iterator

import pytest

import rawchat
from rawchat.errors import NoKeyAvailableError, PacingDeadlineError
from rawchat.policies import KeyPool, Pacer, Policies, RetryBudget
from rawchat.protocol.http import Headers
from rawchat.simulator import Simulator

redis = pytest.importorskip("redis", reason="the redis package is not installed")
if shutil.which("redis-server") is None:
    pytest.skip(
        "redis-server is not on PATH (apt-get install redis-server)", allow_module_level=True
    )

from rawchat.policies.shared_pacing import SharedKeyPool, SharedPacer, shared  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server of its own, without persistence, on ``port``."""

    def __init__(self, directory: str, port: int) -> None:
        self.directory = directory
        self.port = port
        self.process: subprocess.Popen = None  # type: ignore[assignment]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), *options, "--dir", self.directory],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                client.ping()
                return self
            except redis.exceptions.ConnectionError:
                time.sleep(0.025)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    server = RedisServer(str(tmp_path_factory.mktemp("redis")), free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def url(redis_server: RedisServer) -> str:
    redis.Redis.from_url(redis_server.url).flushall()
    return redis_server.url


def shared_pacer(url: str, *args, **kwargs) -> SharedPacer:
    return SharedPacer(*args, redis_url=url, server_time=False, **kwargs)


# -- the Pacer's rules -------------------------------------------------------------


def test_requests_queue_for_their_slots_first_come_first_served(url):
    pacer = shared_pacer(url, requests_per_minute=60, burst=2)
    assert [pacer.reserve("k", 0, now=0.0) for _ in range(5)] == [0.0, 0.0, 1.0, 2.0, 3.0]


def test_two_pacers_on_one_redis_share_the_queue(url):
    first, second = shared_pacer(url, 60, burst=2), shared_pacer(url, 60, burst=2)
    waits = [p.reserve("k", 0, now=0.0) for p in (first, second, first, second)]
    assert waits == [0.0, 0.0, 1.0, 2.0]


def test_keys_have_their_own_buckets(url):
    pacer = shared_pacer(url, requests_per_minute=60, burst=1)
    assert [pacer.reserve(k, 0, now=0.0) for k in ("a", "b", "a")] == [0.0, 0.0, 1.0]


def test_tokens_per_minute_paces_big_requests(url):
    pacer = shared_pacer(url, tokens_per_minute=6000)
    assert pacer.reserve("k", 5000, now=0.0) == 0.0
    assert pacer.reserve("k", 2000, now=0.0) == pytest.approx(10.0)


def test_a_burst_without_requests_per_minute_limits_no_requests(url):
    pacer = shared_pacer(url, tokens_per_minute=6000, burst=2)
    assert [pacer.reserve("k", 100, now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]


def test_reported_usage_corrects_the_estimate(url):
    pacer = shared_pacer(url, tokens_per_minute=6000)
    pacer.reserve("k", 1000, now=0.0)
    pacer.correct("k", estimated=1000, actual=4000, now=0.0)
    assert pacer.reserve("k", 3000, now=0.0) == pytest.approx(10.0)


def test_a_request_that_would_miss_its_deadline_fails_at_once_and_reserves_nothing(url):
    pacer = shared_pacer(url, requests_per_minute=60, burst=1)
    pacer.reserve("k", 0, now=0.0)
    with pytest.raises(
        PacingDeadlineError, match="needs a 1.00 s wait, more than the 0.50 s"
    ) as caught:
        pacer.reserve("k", 0, now=0.0, time_left=0.5)
    assert caught.value.wait == 1.0
    assert pacer.reserve("k", 0, now=0.0) == 1.0


def test_rate_limit_headers_tighten_the_bucket(url):
    pacer = shared_pacer(url, requests_per_minute=600)
    headers = Headers({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"})
    pacer.observe("k", headers, now=0.0)
    assert pacer.reserve("k", 0, now=0.0) == pytest.approx(2.0)


def test_the_bucket_refills_with_time(url):
    pacer = shared_pacer(url, requests_per_minute=60, burst=1)
    assert [pacer.reserve("k", 0, now=t) for t in (0.0, 0.0, 5.0)] == [0.0, 1.0, 0.0]


def test_redis_clock_by_default(url):
    pacer = SharedPacer(60, redis_url=url, burst=1)
    assert pacer.reserve("k", 0, now=123.0) == 0.0
    assert 0.9 < pacer.reserve("k", 0, now=999.0) <= 1.0  # the caller's clock is not used


def test_a_script_redis_forgot_is_sent_again(url):
    pacer = shared_pacer(url, requests_per_minute=60, burst=1)
    pacer.reserve("k", 0, now=0.0)
    redis.Redis.from_url(url).script_flush()
    assert pacer.reserve("k", 0, now=0.0) == 1.0


def test_a_share_outside_zero_to_one_is_refused(url):
    with pytest.raises(rawchat.ConfigError, match="fallback_share is 2"):
        shared_pacer(url, 60, fallback_share=2)


def test_without_the_redis_package_the_error_says_what_to_install(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_redis(name, *args, **kwargs):
        if name == "redis":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_redis)
    with pytest.raises(rawchat.ConfigError) as caught:
        SharedPacer(60, redis_url="redis://127.0.0.1:1/0")
    assert caught.value.hint == "pip install 'rawchat[redis]'"


# -- Redis unreachable ---------------------------------------------------------------


def test_without_redis_it_paces_in_process_at_its_share_and_logs_once(caplog):
    pacer = SharedPacer(120, redis_url=f"redis://127.0.0.1:{free_port()}/0", burst=2)
    with caplog.at_level("WARNING", logger="rawchat.pacing"):
        waits = [pacer.reserve("k", 0, now=0.0) for _ in range(3)]
    assert waits == [0.0, 1.0, 2.0]  # half of 120/min, a burst of one
    assert pacer.degraded
    assert pacer.fallback_calls == 3
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "rawchat: Redis is unreachable"
    ]


def test_it_recovers_when_redis_returns(tmp_path, caplog):
    server = RedisServer(str(tmp_path), free_port())
    pacer = SharedPacer(60, redis_url=server.url, burst=1, server_time=False, retry_interval=5.0)
    with caplog.at_level("WARNING", logger="rawchat.pacing"):
        assert pacer.reserve("k", 0, now=0.0) == 0.0  # in process
        server.start()
        try:
            assert pacer.reserve("k", 0, now=1.0) == 1.0  # still in process: not retried yet
            assert pacer.reserve("k", 0, now=6.0) == 0.0  # Redis again, a fresh bucket
            assert not pacer.degraded
            assert pacer.reserve("k", 0, now=6.0) == 1.0
        finally:
            server.stop()
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "rawchat: Redis is unreachable",
        "rawchat: Redis answers again; pacing is shared again",
    ]


# -- key health shared -----------------------------------------------------------------

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


def test_a_429_on_a_key_cools_it_down_in_every_process_for_its_retry_after(url):
    first, second = SharedKeyPool([A, B], redis_url=url), SharedKeyPool([A, B], redis_url=url)
    first.release(first.acquire(NOW, WALL), NOW, status=429, retry_after=30.0)
    assert picks(second, 2) == ["...bbbb", "...bbbb"]
    cooling = {p.fingerprint: p.cooling_until for p in second.keys}
    assert cooling["...aaaa"] == pytest.approx(NOW + 30.0, abs=1.0)
    assert cooling["...bbbb"] == float("-inf")


def test_a_cool_down_ends_for_every_process_at_once(url):
    first, second = SharedKeyPool([A], redis_url=url), SharedKeyPool([A], redis_url=url)
    first.release(first.acquire(NOW, WALL), NOW, status=429, retry_after=0.05)
    with pytest.raises(NoKeyAvailableError):
        second.acquire(NOW, WALL)
    time.sleep(0.1)  # past the cool-down, by Redis's clock
    assert picks(second, 1) == ["...aaaa"]


def test_a_later_429_sets_the_cool_down_again_as_in_one_pool(url):
    first, second = SharedKeyPool([A], redis_url=url), SharedKeyPool([A], redis_url=url)
    first.release(first.acquire(NOW, WALL), NOW, status=429, retry_after=30.0)
    second.release(second.keys[0], NOW, status=429, retry_after=2.0)
    with pytest.raises(NoKeyAvailableError) as caught:
        first.acquire(NOW, WALL)
    assert caught.value.retry_in == pytest.approx(2.0, abs=1.0)


def test_a_refused_key_leaves_rotation_in_every_process_and_each_says_so(url, caplog):
    first, second = SharedKeyPool([A, B], redis_url=url), SharedKeyPool([A, B], redis_url=url)
    with caplog.at_level("WARNING", logger="rawchat.policies.keys"):
        first.release(first.acquire(NOW, WALL), NOW, status=401)
        assert picks(second, 3) == ["...bbbb"] * 3
    assert second.status() == {"...aaaa": "refused (401)", "...bbbb": "active"}
    assert caplog.messages == [
        "key ...aaaa taken out of rotation: refused (401)",
        "key ...aaaa taken out of rotation by another process: refused (401)",
    ]


def test_a_process_started_later_never_tries_a_retired_key(url):
    first = SharedKeyPool([A, B], redis_url=url)
    first.release(first.acquire(NOW, WALL), NOW, status=429, code="insufficient_quota")
    assert picks(SharedKeyPool([A, B], redis_url=url), 2) == ["...bbbb", "...bbbb"]


def test_the_first_reason_a_key_was_retired_for_stays(url):
    first, second = SharedKeyPool([A, B], redis_url=url), SharedKeyPool([A, B], redis_url=url)
    first.release(first.keys[0], NOW, status=403)
    second.release(second.keys[0], NOW, status=429, code="insufficient_quota")
    assert SharedKeyPool([A, B], redis_url=url).acquire(NOW, WALL).fingerprint == "...bbbb"
    store = redis.Redis.from_url(url)
    assert [store.get(name) for name in store.keys("rawchat:keys:*")] == [b"refused (403)"]


def test_redis_holds_a_hash_of_each_key_never_the_key(url):
    pool = SharedKeyPool([A, B], redis_url=url)
    pool.release(pool.acquire(NOW, WALL), NOW, status=429, retry_after=30.0)
    pool.release(pool.acquire(NOW, WALL), NOW, status=401)
    names = sorted(name.decode() for name in redis.Redis.from_url(url).keys("*"))
    assert [name.rsplit(":", 1)[1] for name in names] == ["cooling", "retired"]
    assert not any(secret[-12:] in name for name in names for secret in (A, B))
    assert "sk-key" not in repr(pool)


def test_selection_and_in_flight_counts_stay_in_each_process(url):
    first = SharedKeyPool([A, B, C], redis_url=url, selection="fewest_in_flight")
    second = SharedKeyPool([A, B, C], redis_url=url, selection="fewest_in_flight")
    assert first.acquire(NOW, WALL).fingerprint == "...aaaa"  # stays in flight
    assert second.acquire(NOW, WALL).fingerprint == "...aaaa"


def test_without_redis_key_health_stays_in_process_and_is_logged_once(caplog):
    pool = SharedKeyPool([A, B], redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with caplog.at_level("WARNING", logger="rawchat.policies.keys"):
        pool.release(pool.acquire(NOW, WALL), NOW, status=429, retry_after=30.0)
        assert picks(pool, 2, now=NOW + 1) == ["...bbbb", "...bbbb"]
    assert pool.degraded
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "rawchat: Redis is unreachable"
    ]
    assert (
        caplog.records[0]
        .getMessage()
        .endswith("key health is kept in this process until it answers")
    )


def test_key_health_is_shared_again_when_redis_returns(tmp_path, caplog):
    server = RedisServer(str(tmp_path), free_port())
    pool = SharedKeyPool([A, B], redis_url=server.url, retry_interval=5.0)
    with caplog.at_level("WARNING", logger="rawchat.policies.keys"):
        assert picks(pool, 1) == ["...aaaa"]  # in process
        server.start()
        try:
            other = SharedKeyPool([A, B], redis_url=server.url)
            other.release(other.acquire(NOW, WALL), NOW, status=401)
            assert picks(pool, 2, now=NOW + 1) == ["...bbbb", "...aaaa"]  # not asked yet
            assert picks(pool, 2, now=NOW + 6) == ["...bbbb", "...bbbb"]
            assert not pool.degraded
        finally:
            server.stop()
    assert caplog.messages[0].startswith("rawchat: Redis is unreachable (")
    assert caplog.messages[1:] == [
        "key ...aaaa taken out of rotation: refused (401)",
        "rawchat: Redis answers again; key health is shared again",
        "key ...aaaa taken out of rotation by another process: refused (401)",
    ]


def test_a_retirement_shorter_than_a_second_is_refused(url):
    with pytest.raises(rawchat.ConfigError, match="retired_for is 0.5"):
        SharedKeyPool([A], redis_url=url, retired_for=0.5)


def test_clients_in_two_processes_share_what_a_revoked_key_taught_one(url):
    with Simulator(api_keys=[B]) as sim:
        for _ in range(2):  # two clients, as two processes would have
            client = rawchat.Client(
                base_url=sim.base_url,
                policies=Policies(keys=SharedKeyPool([A, B], redis_url=url)),
                clock=rawchat.Clock(sleep=lambda s: None),
            )
            client.chat([{"role": "user", "content": "hi"}], model="gpt-4o-mini")
        assert sim.requests_by_key == {"...aaaa": 1, "...bbbb": 2}


def test_a_rate_limited_key_is_skipped_by_the_other_clients_until_its_retry_after(url):
    with Simulator() as sim:
        alone = rawchat.Client(
            base_url=sim.base_url,
            policies=Policies(keys=SharedKeyPool([A], redis_url=url)),
            max_retries=0,
        )
        with pytest.raises(rawchat.errors.RateLimitError):
            alone.chat(
                [{"role": "user", "content": "hi"}],
                model="gpt-4o-mini",
                extra_headers={"X-Rawchat-Fault": "429=30"},
            )
        other = rawchat.Client(
            base_url=sim.base_url, policies=Policies(keys=SharedKeyPool([A, B], redis_url=url))
        )
        for _ in range(2):
            other.chat([{"role": "user", "content": "hi"}], model="gpt-4o-mini")
        assert sim.requests_by_key == {"...aaaa": 1, "...bbbb": 2}


# -- the policies of a client, shared --------------------------------------------------


def test_shared_turns_a_pacer_and_a_key_pool_into_their_shared_forms(url):
    policies = Policies(
        keys=KeyPool([A, (B, WALL)], selection="least_recently_used"),
        pacer=Pacer(500, 200_000, burst=8),
        retry_budget=RetryBudget(),
    )
    result = shared(policies, url, fallback_share=0.25)
    pacer, keys = result.pacer, result.keys
    assert isinstance(pacer, SharedPacer) and isinstance(keys, SharedKeyPool)
    assert (pacer.requests_per_minute, pacer.tokens_per_minute, pacer.burst) == (500, 200_000, 8)
    assert pacer.fallback_share == 0.25
    assert [(p.fingerprint, p.expires) for p in keys.keys] == [("...aaaa", None), ("...bbbb", WALL)]
    assert keys.selection == "least_recently_used"
    assert result.retry_budget is policies.retry_budget


def test_shared_leaves_absent_and_already_shared_policies_as_they_are(url):
    assert shared(Policies(), url) == Policies()
    pacer = SharedPacer(60, redis_url=url)
    assert shared(Policies(pacer=pacer), url).pacer is pacer
