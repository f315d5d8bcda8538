"""Eight processes, one rate limit: pacing shared in Redis against pacing in each process.

The simulator limits one key to ``--rpm`` requests a minute (a bucket of
``--burst``), for all its clients together, as a provider limits an
organisation. ``--workers`` processes send chats over that key as fast as
their pacer lets them, for ``--seconds``, four ways:

    shared             one SharedPacer in Redis for all (a burst of --burst - 1)
    in process         a Pacer each with the whole limit: what each believes alone
    in process, 1/N    a Pacer each with 1/N of the limit: the static split
    Redis killed       shared, then Redis killed a third of the way through:
                       each process falls back to its 1/N share

The figures: the answers, the 429s the server sent (each retried), the
chats lost (begun, never answered), the rate achieved, and the share of
the allowed answers used. Allowed is what the server would have accepted
over the same time: its burst, and the refill from the first request to
the last.

    python benchmarks/shared_pacing.py [--rpm 1200] [--burst 4] [--workers 8] [--seconds 10]

Needs ``redis-server`` on PATH and the redis client (``pip install 'rawchat[redis]'``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, List, NamedTuple, Optional, Tuple

import rawchat
from rawchat.policies import Pacer, Policies
from rawchat.policies.shared_pacing import SharedPacer
from rawchat.simulator import Simulator

KEY = "sk-bench-shared-000000000000"
MODES = ("shared", "in process", "in process, 1/N", "Redis killed")


class Limit(NamedTuple):
    rpm: float
    burst: float
    workers: int


class Tally(NamedTuple):
    sent: int
    answered: int
    in_process: int
    failures: Tuple[str, ...] = ()  # why chats were lost, by error type
    error: str = ""


_start: Any = None  # the barrier where the workers and the conductor start


def _boot(start: Any) -> None:
    global _start
    _start = start


def _pacer(mode: str, limit: Limit, redis_url: str) -> Any:
    share = 1 / limit.workers
    paced_burst = limit.burst - 1  # headroom for a request a few ms quicker than the last
    if mode in ("shared", "Redis killed"):
        return SharedPacer(limit.rpm, redis_url=redis_url, burst=paced_burst, fallback_share=share)
    if mode == "in process":
        return Pacer(limit.rpm, burst=paced_burst)
    return Pacer(limit.rpm * share, burst=max(1.0, paced_burst * share))


def _worker(urls: Tuple[str, str], mode: str, limit: Limit, redis_url: str, seconds: float):
    sent = answered = 0
    failures: List[str] = []
    try:
        pacer = _pacer(mode, limit, redis_url)
        if isinstance(pacer, SharedPacer):
            pacer.reserve("warm-up", 0, time.monotonic())
        with rawchat.Client(KEY, urls[1]) as warm:  # first calls, on an unlimited server
            warm.chat([{"role": "user", "content": "hi"}], model="gpt-4o-mini", max_tokens=1)
        client = rawchat.Client(KEY, urls[0], max_retries=50, policies=Policies(pacer=pacer))
        _start.wait(timeout=60)
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            sent += 1
            try:
                client.chat([{"role": "user", "content": "hi"}], model="gpt-4o-mini", max_tokens=1)
                answered += 1
            except rawchat.RawchatError as exc:
                failures.append(type(exc).__name__)
    except Exception as exc:
        return Tally(sent, answered, 0, tuple(failures), repr(exc))
    return Tally(sent, answered, getattr(pacer, "fallback_calls", 0), tuple(failures))


class Arrivals:
    """The simulator's clock, noting when each request reached the rate limit."""

    def __init__(self) -> None:
        self.times: List[float] = []

    def __call__(self) -> float:
        now = time.monotonic()
        self.times.append(now)
        return now


class RedisServer:
    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.directory = tempfile.mkdtemp(prefix="rawchat-redis-")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def run(pool: Any, start: Any, mode: str, limit: Limit, seconds: float) -> str:
    redis: Optional[RedisServer] = RedisServer() if mode in ("shared", "Redis killed") else None
    try:
        sim = Simulator(requests_per_minute=limit.rpm, burst=limit.burst)
        with sim, Simulator() as warm:
            arrivals = Arrivals()
            sim.app.monotonic = arrivals
            args = ((sim.base_url, warm.base_url), mode, limit, redis.url if redis else "", seconds)
            jobs = [pool.apply_async(_worker, args) for _ in range(limit.workers)]
            start.wait(timeout=120)
            if mode == "Redis killed":
                assert redis is not None
                threading.Timer(seconds / 3, redis.stop).start()
            tallies = [job.get(timeout=seconds + 120) for job in jobs]
            rate_limited = sim.app.rate_limited
            answered = sim.request_count - rate_limited
    finally:
        if redis is not None:
            redis.stop()
    errors = [t.error for t in tallies if t.error]
    if errors:
        raise SystemExit(f"{mode}: a worker stopped: {errors[0]}")
    lost = sum(t.sent - t.answered for t in tallies)
    elapsed = max(arrivals.times) - min(arrivals.times)
    allowed = limit.burst + limit.rpm / 60.0 * elapsed
    paced_alone = sum(t.in_process for t in tallies)
    note = f" ({paced_alone} calls paced in process)" if mode == "Redis killed" else ""
    failures = sorted({name for t in tallies for name in t.failures})
    if failures:
        note += f" (lost: {', '.join(failures)})"
    return (
        f"| {mode}{note} | {answered} | {rate_limited} | {lost} | {elapsed:.2f} "
        f"| {answered / elapsed:.2f}/s | {allowed:.1f} | {answered / allowed:.1%} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rpm", type=float, default=1200, help="the key's limit (1200)")
    parser.add_argument("--burst", type=float, default=4, help="the server's bucket (4)")
    parser.add_argument("--workers", type=int, default=8, help="processes (8)")
    parser.add_argument("--seconds", type=float, default=10.0, help="each way's run (10)")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not on PATH (apt-get install redis-server)")
    limit = Limit(args.rpm, args.burst, args.workers)
    load = os.getloadavg()[0]
    print(
        f"Python {platform.python_version()}, {platform.system()} {platform.release()} "
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f}; "
        f"limit {args.rpm:g}/min (burst {args.burst:g}), {args.workers} processes, "
        f"{args.seconds:g} s each way",
        file=sys.stderr,
    )
    print("| pacing | answers | 429s | lost | seconds | achieved | allowed | share of allowed |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(args.workers + 1)
    with context.Pool(args.workers, initializer=_boot, initargs=(start,)) as pool:
        for mode in MODES:
            print(run(pool, start, mode, limit, args.seconds), flush=True)


if __name__ == "__main__":
    main()
