"""Eight worker processes, one rate limit: pacing shared in Redis against pacing alone.

The simulator limits one key to ``RPM`` requests a minute (a bucket of
``BURST``), for all its clients together, as a provider limits an
organisation. Eight processes send requests over that key as fast as their
pacer lets them. With a ``SharedPacer`` they use the limit and no more: no
429, and as many answers as the limit allows over the time they took (the
burst, and the refill from the first request to the last) to within 2 %.
With a ``Pacer`` each, every worker believes it owns the limit, and the
server refuses some. With Redis killed mid-run, every worker paces itself
at its share and no request is lost.

The workers are spawned once for the module; what is asserted is counted
(answers, 429s, calls paced in process), never timed.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any, Callable, Iterator, List, NamedTuple, Optional, Tuple

import pytest

import rawchat
from rawchat.policies import Pacer, Policies
from rawchat.policies.shared_pacing import SharedPacer
from rawchat.simulator import Simulator

from .test_shared_pacing import RedisServer, free_port

WORKERS = 8
RPM = 1200  # twenty a second
BURST = 4
#: The workers keep one request of headroom: a request takes a few
#: milliseconds more or less from its slot to the server, and without it a
#: quick one after a slow one would come a little early.
PACED_BURST = BURST - 1
KEY = "sk-test-shared-0123456789"


class Tally(NamedTuple):
    """One worker's run: chats begun, answered, failed; calls paced in process."""

    sent: int
    answered: int
    failed: int
    in_process: int
    error: str = ""  # what stopped the worker, if anything did


#: Set in each worker by ``_boot``: all workers and the test start together.
_start: Any = None


def _boot(start: Any) -> None:
    global _start
    _start = start


def _worker(urls: Tuple[str, str], redis_url: str, seconds: float) -> Tally:
    """Chats over ``KEY`` as fast as the pacer allows, for ``seconds`` from the start.

    ``urls``: the rate-limited simulator, and one to warm up on: a first
    request is slower than the next (imports, first calls), and made in the
    paced run it would skew the times of the ones after it.
    """
    sent = answered = failed = 0
    try:
        base_url, warm_up_url = urls
        if redis_url:
            pacer = SharedPacer(
                RPM, redis_url=redis_url, burst=PACED_BURST, fallback_share=1 / WORKERS
            )
            pacer.reserve("warm-up", 0, time.monotonic())
        else:
            pacer = Pacer(RPM, burst=PACED_BURST)
        with rawchat.Client(KEY, warm_up_url) as warm:
            warm.chat([{"role": "user", "content": "hi"}], model="gpt-4o-mini", max_tokens=1)
        client = rawchat.Client(KEY, base_url, max_retries=50, policies=Policies(pacer=pacer))
        _start.wait(timeout=60)
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            sent += 1
            try:
                client.chat([{"role": "user", "content": "hi"}], model="gpt-4o-mini", max_tokens=1)
                answered += 1
            except rawchat.RawchatError:
                failed += 1
    except Exception as exc:  # the pool cannot send every exception back
        return Tally(sent, answered, failed, 0, repr(exc))
    return Tally(sent, answered, failed, getattr(pacer, "fallback_calls", 0))


class Arrivals:
    """The simulator's clock, noting when each request reached its rate limit."""

    def __init__(self) -> None:
        self.times: List[float] = []

    def __call__(self) -> float:
        now = time.monotonic()
        self.times.append(now)
        return now


class Run(NamedTuple):
    tallies: List[Tally]
    answered: int  # as the simulator counted them
    rate_limited: int
    allowed: float  # the burst, and the refill from the first arrival to the last


@pytest.fixture(scope="module")
def pool() -> Iterator[Tuple[Any, Any]]:
    """Eight worker processes, and the barrier where they and the test start."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(WORKERS + 1)
    with context.Pool(WORKERS, initializer=_boot, initargs=(start,)) as workers:
        yield workers, start


def run_workers(
    pool: Tuple[Any, Any],
    redis_url: str,
    seconds: float,
    during: Optional[Callable[[], None]] = None,
) -> Run:
    workers, start = pool
    with Simulator(requests_per_minute=RPM, burst=BURST) as sim, Simulator() as warm_up:
        arrivals = Arrivals()
        sim.app.monotonic = arrivals
        urls = (sim.base_url, warm_up.base_url)
        jobs = [workers.apply_async(_worker, (urls, redis_url, seconds)) for _ in range(WORKERS)]
        # Each job takes a worker of its own: none ends before all have started.
        start.wait(timeout=60)
        if during is not None:
            during()
        tallies = [job.get(timeout=60) for job in jobs]
        rate_limited = sim.app.rate_limited
        answered = sim.request_count - rate_limited
    allowed = BURST + RPM / 60.0 * (max(arrivals.times) - min(arrivals.times))
    return Run(tallies, answered, rate_limited, allowed)


@pytest.fixture
def redis_url(tmp_path) -> Iterator[str]:
    server = RedisServer(str(tmp_path), free_port()).start()
    yield server.url
    server.stop()


def test_workers_sharing_redis_use_the_limit_to_within_2_percent_with_no_429s(pool, redis_url):
    run = run_workers(pool, redis_url, 6.0)
    assert [t.error for t in run.tallies] == [""] * WORKERS
    assert run.rate_limited == 0
    assert [(t.failed, t.in_process) for t in run.tallies] == [(0, 0)] * WORKERS
    assert sum(t.answered for t in run.tallies) == run.answered
    assert 0.98 * run.allowed <= run.answered <= run.allowed


def test_the_same_workers_pacing_alone_draw_429s(pool):
    run = run_workers(pool, "", 2.0)
    assert [t.error for t in run.tallies] == [""] * WORKERS
    assert run.rate_limited > 0


def test_with_redis_killed_mid_run_workers_go_on_at_their_share_and_lose_nothing(pool, tmp_path):
    server = RedisServer(str(tmp_path), free_port()).start()

    def kill_soon() -> None:
        threading.Timer(1.5, server.stop).start()

    try:
        run = run_workers(pool, server.url, 4.0, during=kill_soon)
    finally:
        server.stop()
    assert [t.error for t in run.tallies] == [""] * WORKERS
    assert [t.sent - t.answered for t in run.tallies] == [0] * WORKERS
    assert all(t.in_process > 0 for t in run.tallies)
    assert sum(t.answered for t in run.tallies) == run.answered
