"""Shared pacing against a real redis-server: the Pacer's rules, across processes.

Each test module run starts its own ``redis-server`` on a free port of
127.0.0.1 in a temporary directory, and stops it afterwards.
"""

from __future__ import annotations

import multiprocessing
import shutil
import socket
import subprocess
import time
from typing import Iterator, Tuple

import pytest

import rawchat
from rawchat.errors import PacingDeadlineError
from rawchat.policies import Pacer, Policies
from rawchat.protocol.http import Headers
from rawchat.simulator import Simulator

redis = pytest.importorskip("redis", reason="the redis package is not installed")
if shutil.which("redis-server") is None:
    pytest.skip(
        "redis-server is not on PATH (apt-get install redis-server)", allow_module_level=True
    )

from rawchat.policies.shared_pacing import SharedPacer  # noqa: E402

WORKERS = 4


def _free_port() -> int:
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
    server = RedisServer(str(tmp_path_factory.mktemp("redis")), _free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def url(redis_server: RedisServer) -> str:
    redis.Redis.from_url(redis_server.url).flushall()
    return redis_server.url


def shared(url: str, *args, **kwargs) -> SharedPacer:
    return SharedPacer(*args, redis_url=url, server_time=False, **kwargs)


# -- the Pacer's rules -------------------------------------------------------------


def test_requests_queue_for_their_slots_first_come_first_served(url):
    pacer = shared(url, requests_per_minute=60, burst=2)
    assert [pacer.reserve("k", 0, now=0.0) for _ in range(5)] == [0.0, 0.0, 1.0, 2.0, 3.0]


def test_two_pacers_on_one_redis_share_the_queue(url):
    first, second = shared(url, 60, burst=2), shared(url, 60, burst=2)
    waits = [p.reserve("k", 0, now=0.0) for p in (first, second, first, second)]
    assert waits == [0.0, 0.0, 1.0, 2.0]


def test_keys_have_their_own_buckets(url):
    pacer = shared(url, requests_per_minute=60, burst=1)
    assert [pacer.reserve(k, 0, now=0.0) for k in ("a", "b", "a")] == [0.0, 0.0, 1.0]


def test_tokens_per_minute_paces_big_requests(url):
    pacer = shared(url, tokens_per_minute=6000)
    assert pacer.reserve("k", 5000, now=0.0) == 0.0
    assert pacer.reserve("k", 2000, now=0.0) == pytest.approx(10.0)


def test_reported_usage_corrects_the_estimate(url):
    pacer = shared(url, tokens_per_minute=6000)
    pacer.reserve("k", 1000, now=0.0)
    pacer.correct("k", estimated=1000, actual=4000, now=0.0)
    assert pacer.reserve("k", 3000, now=0.0) == pytest.approx(10.0)


def test_a_request_that_would_miss_its_deadline_fails_at_once_and_reserves_nothing(url):
    pacer = shared(url, requests_per_minute=60, burst=1)
    pacer.reserve("k", 0, now=0.0)
    with pytest.raises(
        PacingDeadlineError, match="needs a 1.00 s wait, more than the 0.50 s"
    ) as caught:
        pacer.reserve("k", 0, now=0.0, time_left=0.5)
    assert caught.value.wait == 1.0
    assert pacer.reserve("k", 0, now=0.0) == 1.0


def test_rate_limit_headers_tighten_the_bucket(url):
    pacer = shared(url, requests_per_minute=600)
    headers = Headers({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"})
    pacer.observe("k", headers, now=0.0)
    assert pacer.reserve("k", 0, now=0.0) == pytest.approx(2.0)


def test_the_bucket_refills_with_time(url):
    pacer = shared(url, requests_per_minute=60, burst=1)
    assert [pacer.reserve("k", 0, now=t) for t in (0.0, 0.0, 5.0)] == [0.0, 1.0, 0.0]


def test_redis_clock_by_default(url):
    pacer = SharedPacer(60, redis_url=url, burst=1)
    assert pacer.reserve("k", 0, now=123.0) == 0.0
    assert 0.9 < pacer.reserve("k", 0, now=999.0) <= 1.0  # the caller's clock is not used


def test_a_script_redis_forgot_is_sent_again(url):
    pacer = shared(url, requests_per_minute=60, burst=1)
    pacer.reserve("k", 0, now=0.0)
    redis.Redis.from_url(url).script_flush()
    assert pacer.reserve("k", 0, now=0.0) == 1.0


def test_a_share_outside_zero_to_one_is_refused(url):
    with pytest.raises(rawchat.ConfigError, match="fallback_share is 2"):
        shared(url, 60, fallback_share=2)


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
    pacer = SharedPacer(120, redis_url=f"redis://127.0.0.1:{_free_port()}/0", burst=2)
    with caplog.at_level("WARNING", logger="rawchat.pacing"):
        waits = [pacer.reserve("k", 0, now=0.0) for _ in range(3)]
    assert waits == [0.0, 1.0, 2.0]  # half of 120/min, a burst of one
    assert pacer.degraded
    assert pacer.fallback_calls == 3
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "rawchat: Redis is unreachable"
    ]


def test_it_recovers_when_redis_returns(tmp_path, caplog):
    server = RedisServer(str(tmp_path), _free_port())
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


# -- several processes against one rate limit -----------------------------------------

RPM = 600  # ten a second
BURST = 4
PER_WORKER = 10


def _worker(base_url: str, redis_url: str, share: float, count: int) -> Tuple[int, int, int]:
    """``count`` chats through one pacer; (answered, failed, calls paced in process)."""
    if redis_url:
        pacer = SharedPacer(RPM, redis_url=redis_url, burst=BURST, fallback_share=share)
    else:
        pacer = Pacer(RPM, burst=BURST)
    client = rawchat.Client(
        "sk-test-shared-0123456789",
        base_url,
        max_retries=20,
        policies=Policies(pacer=pacer),
    )
    answered = failed = 0
    for _ in range(count):
        try:
            client.chat([{"role": "user", "content": "hi"}], model="gpt-4o-mini")
            answered += 1
        except rawchat.RawchatError:
            failed += 1
    return answered, failed, getattr(pacer, "fallback_calls", 0)


def _run_workers(sim: Simulator, redis_url: str, count: int = PER_WORKER, during=None):
    # A provider's bucket for a key exists before these workers do; the
    # simulator makes one at a key's first request. Made now, it is full
    # again long before the workers have started (a tenth of a second).
    rawchat.Client("sk-test-shared-0123456789", sim.base_url).models()
    context = multiprocessing.get_context("spawn")
    with context.Pool(WORKERS) as pool:
        jobs = [
            pool.apply_async(_worker, (sim.base_url, redis_url, 1 / WORKERS, count))
            for _ in range(WORKERS)
        ]
        if during is not None:
            during()
        return [job.get(timeout=120) for job in jobs]


def test_workers_sharing_redis_stay_under_the_limit_with_no_429s(url):
    with Simulator(requests_per_minute=RPM, burst=BURST) as sim:
        results = _run_workers(sim, url)
        assert sim.app.rate_limited == 0
    assert results == [(PER_WORKER, 0, 0)] * WORKERS


def test_the_same_workers_pacing_in_process_draw_429s(url):
    with Simulator(requests_per_minute=RPM, burst=BURST) as sim:
        results = _run_workers(sim, "")
        assert sim.app.rate_limited > 0
    assert [answered for answered, _, _ in results] == [PER_WORKER] * WORKERS  # retried


def test_redis_killed_mid_run_workers_go_on_at_their_share_and_lose_nothing(tmp_path):
    server = RedisServer(str(tmp_path), _free_port()).start()
    count = 20
    with Simulator(requests_per_minute=RPM, burst=BURST) as sim:

        def kill_when_started() -> None:
            deadline = time.monotonic() + 60
            while sim.request_count < 2 * WORKERS and time.monotonic() < deadline:
                time.sleep(0.01)
            server.stop()

        try:
            results = _run_workers(sim, server.url, count, during=kill_when_started)
        finally:
            server.stop()
        rate_limited = sim.app.rate_limited
    assert [(answered, failed) for answered, failed, _ in results] == [(count, 0)] * WORKERS
    assert all(in_process > 0 for _, _, in_process in results)
    assert rate_limited < WORKERS * count  # the shares keep most of them clear
