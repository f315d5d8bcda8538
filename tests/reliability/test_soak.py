"""Soak: many threads, random faults; nothing lost, nothing leaked.

CI runs a short soak; ``RAWCHAT_SOAK=5000`` runs a long one. Loopback only,
bounded in count and time.
"""

from __future__ import annotations

import gc
import json
import os
import random
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import rawchat
from rawchat.cli.batch import run_batch
from rawchat.simulator import Simulator

from .matrix import SHORT_SLEEPS, sockets_open

REQUESTS = int(os.environ.get("RAWCHAT_SOAK", "400"))
# A fault ending in * fires on every request that asks for it; the others once
# per key, so they are usually absorbed by a retry.
FAULTS = [
    "",
    "",
    "",
    "",
    "500",
    "503*",
    "429=0.01",
    "drop",
    "drop*",
    "truncate=3*",
    "drop-after=3*",
    "error-mid*",
    "bad-json*",
    "keepalive*",
    "crlf,split*",
    "html*",
    "400*",
]


def one_call(client, number):
    rng = random.Random(number)
    fault = rng.choice(FAULTS)
    headers = {"X-Rawchat-Fault": fault} if fault else None
    messages = [{"role": "user", "content": f"n{number}"}]
    try:
        if number % 2:
            done = client.chat(messages, model="gpt-4o-mini", extra_headers=headers)
        else:
            with client.stream(messages, model="gpt-4o-mini", extra_headers=headers) as stream:
                "".join(stream.text())
            done = stream.completion
        assert done.content.endswith(f'"n{number}".')
        return number, "ok"
    except rawchat.RawchatError as exc:
        return number, type(exc).__name__


def test_a_soak_loses_nothing_and_leaks_nothing(tmp_path):
    with Simulator() as sim:
        # Per-request keys: a header fault fires once per key, so each request meets its own.
        def call(number):
            client = clients[number % len(clients)]
            return one_call(client, number)

        clients = [rawchat.Client(f"sk-soak-{i:04d}-000000", sim.base_url, timeout=(2, 1), deadline=10,
                                  clock=SHORT_SLEEPS) for i in range(8)]  # fmt: skip
        one_call(clients[0], 0)  # warm up pools and threads
        threads_before = threading.active_count()
        sockets_before = sockets_open(sim.port) if os.path.isdir("/proc/self/fd") else None
        gc.collect()
        tracemalloc.start()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(call, range(1, 51)))
        gc.collect()
        warm = tracemalloc.get_traced_memory()[0]
        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(call, range(51, REQUESTS + 51)))
        elapsed = time.monotonic() - started
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - warm
        tracemalloc.stop()

        numbers = [number for number, _ in results]
        assert sorted(numbers) == list(range(51, REQUESTS + 51))  # every request ended, once
        outcomes = {outcome for _, outcome in results}
        assert outcomes <= {
            "ok",
            "IncompleteStreamError",
            "StreamError",
            "InvalidResponseError",
            "BadRequestError",
            "APIConnectionError",
            "InternalServerError",
        }
        assert "ok" in outcomes
        assert grown < 2_000_000, f"memory grew by {grown} bytes over {REQUESTS} requests"
        for client in clients:
            client.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (
            threading.active_count() > threads_before
            or (sockets_before is not None and sockets_open(sim.port) > sockets_before)
        ):
            time.sleep(0.05)
        assert threading.active_count() <= threads_before
        if sockets_before is not None:
            assert sockets_open(sim.port) <= sockets_before
        print(
            f"\nsoak: {REQUESTS} requests in {elapsed:.1f} s, memory grew {grown} bytes, outcomes {sorted(outcomes)}"
        )


def test_a_batch_with_faults_writes_each_line_exactly_once(tmp_path):
    lines = min(REQUESTS, 200)
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    rng = random.Random(1)
    source.write_text(
        "".join(json.dumps({"id": i, "prompt": f"q{i}"}) + "\n" for i in range(lines))
    )
    with Simulator(faults="") as sim:
        client = rawchat.Client(
            "sk-soak-batch-0000",
            sim.base_url,
            model="gpt-4o-mini",
            clock=rawchat.Clock(sleep=lambda s: None),
            default_headers={"X-Rawchat-Fault": rng.choice(["500", "drop", "429=0.01"])},
        )
        run_batch(client, str(source), str(out), workers=8)
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == list(range(lines))
