"""Many chat streams at once: rawchat against the async clients people pick.

    python -m pip install -e '.[bench]' && python benchmarks/concurrency.py [--quick] [--n 1000]

The workload of a chat backend: N streams open together, each a chat
completion streamed as Server-Sent Events (one HTTP chunk per event, as
servers send them): 200 content deltas 20 ms apart, a final chunk with the
finish reason, then ``data: [DONE]``
(https://platform.openai.com/docs/api-reference/chat-streaming). The ideal
wall time is the stream's own length, about 4.0 s, whatever N is.

A loopback server in its own process (asyncio, answering from precomputed
bytes) sends every open stream its next event on one shared 20 ms tick; a
tick the machine delays sends every event due by then, so the streams keep
their length. It measures itself: the CPU it used during each run (a share
of one core over the client's wall time) and its latest tick; a run where
it used more than 70 % of a core is flagged, since the figures would then
be the server's.

Each client runs each N in a fresh process: first one warm-up stream (sent
all at once) through a client of its own, so imports and first-use code are
paid before the clock starts; then a new client and N streams launched
together. The figures, per client and N:

* wall s: from launching the N streams until the last has ended;
* CPU s: user + system time of the client process over the same span;
* first delta p50 / p99 ms: from each stream's request start (the moment its
  code begins the request) until it yields its first content delta;
* peak RSS MB: the process's peak (``ru_maxrss``); KB per stream: the
  highest RSS sampled every 50 ms while the streams were open, less the RSS
  before the launch, over N;
* threads: the most OS threads the process had during the run;
* completed: the streams that returned exactly the expected text; only a
  client that completed N/N is a result.

The clients, each given as many connections as streams, so that a pool's
limit is not what is measured:

* rawchat async: ``rawchat.AsyncClient(..., pool_maxsize=N)``,
  ``async with client.stream(messages, model=...) as s`` and
  ``async for text in s.text()``;
* rawchat sync, a thread per stream: one ``rawchat.Client(...,
  pool_maxsize=N)`` shared by N threads;
* aiohttp with the SSE loop people write by hand (``async for line in
  resp.content``), ``TCPConnector(limit=N, limit_per_host=N)``: the
  tutorials' 100 and 10 per host would measure the pool, not the client;
* httpx + httpx-sse: ``httpx.AsyncClient(limits=Limits(max_connections=N))``
  and ``aconnect_sse``;
* the openai SDK: ``AsyncOpenAI`` on an ``httpx.AsyncClient`` with the same
  limits.

Retries are off where a client has them (a failed stream shows as a
failure, not as a slower success); read timeouts are 60 s. Every
configuration runs twice (``--rounds``), the clients in one order and then
in the reverse, so the machine's slow spells fall on all of them alike;
ratios to aiohttp are taken within one round. Clients that are not
installed are skipped. The load average is printed before each N and at the
end: the figures are only comparable on a machine that is otherwise quiet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KEY = "sk-bench-0000000000000000"
MESSAGES = [{"role": "user", "content": "hi"}]
WORDS = ["你好", " world", " token", "，", " stream"]
CLIENTS = ["rawchat async", "rawchat sync threads", "aiohttp", "httpx+httpx-sse", "openai"]
MODULES = {
    "rawchat async": ["rawchat"],
    "rawchat sync threads": ["rawchat"],
    "aiohttp": ["aiohttp"],
    "httpx+httpx-sse": ["httpx", "httpx_sse"],
    "openai": ["openai", "httpx"],
}
REFERENCE = "aiohttp"
READ_TIMEOUT = 60.0


# -- the server (its own process) ---------------------------------------------------


def _event(content: Optional[str], finish: Optional[str] = None) -> bytes:
    delta = {} if content is None else {"content": content}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    chunk = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
             "model": "m", "choices": [choice]}  # fmt: skip
    return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def expected_text(events: int) -> str:
    return "".join(WORDS[i % len(WORDS)] for i in range(events))


class _Server:
    """Streams for every open request, each event on the shared tick.

    ``POST .../chat/completions`` opens a stream: the head and the first event
    at once, event i on the i-th tick after. ``POST /fast/...`` sends the
    whole stream at once (the warm-up). ``GET /stats`` answers the CPU the
    process has used, the latest a tick has fallen since the last
    ``/stats?reset``, and the streams the server has begun, finished and lost
    mid-way.

    Ticks are counted on the clock from the first one, and a late tick sends
    every event due by then: when the machine holds the server back, the
    events bunch up but the streams keep their length, so a hiccup on a shared
    machine does not stretch the wall time of the client being measured."""

    def __init__(self, events: int, interval: float) -> None:
        self.interval = interval
        self.events = [_http_chunk(_event(WORDS[i % len(WORDS)])) for i in range(events)]
        self.tail = (
            _http_chunk(_event(None, "stop")) + _http_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
        )
        self.head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        self.whole = self.head + b"".join(self.events) + self.tail
        # Open streams: the transport, the tick it began after, the event it gets next.
        self.open: Dict[asyncio.Transport, Tuple[int, int]] = {}
        self.counts = {"begun": 0, "finished": 0, "lost": 0}
        self.lag = 0.0
        self.origin = 0.0
        self.ticks = 0

    def stats(self, reset: bool) -> bytes:
        times = os.times()
        body = json.dumps({
            "cpu": times.user + times.system, "lag": self.lag, **self.counts,
        }).encode()  # fmt: skip
        if reset:
            self.lag = 0.0
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    def answer(self, transport: asyncio.Transport, method: bytes, path: bytes) -> None:
        if path.startswith(b"/stats"):
            transport.write(self.stats(reset=b"reset" in path))
        elif path.startswith(b"/fast/"):
            transport.write(self.whole)
        else:
            self.counts["begun"] += 1
            transport.write(self.head + self.events[0])
            self.open[transport] = (self.ticks, 1)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.origin = loop.time()
        loop.call_at(self.origin + self.interval, self.tick, loop, 1)

    def tick(self, loop: asyncio.AbstractEventLoop, number: int) -> None:
        now = loop.time()
        self.lag = max(self.lag, now - (self.origin + number * self.interval))
        self.ticks = max(number, int((now - self.origin) / self.interval))
        for transport, (begun, index) in list(self.open.items()):
            due = self.ticks - begun  # the index of the last event due by now
            if index <= due:
                transport.write(b"".join(self.events[index : due + 1]))
            if due >= len(self.events):
                transport.write(self.tail)
                del self.open[transport]
                self.counts["finished"] += 1
            else:
                self.open[transport] = (begun, due + 1)
        following = self.ticks + 1
        loop.call_at(self.origin + following * self.interval, self.tick, loop, following)

    def lost(self, transport: asyncio.Transport) -> None:
        if self.open.pop(transport, None) is not None:
            self.counts["lost"] += 1


class _Connection(asyncio.Protocol):
    """One connection: request heads in (a body by Content-Length), answers out."""

    def __init__(self, server: _Server) -> None:
        self.server = server
        self.buffer = b""
        self.transport: Optional[asyncio.Transport] = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            method, path, _ = head.split(b" ", 2)
            assert self.transport is not None
            self.server.answer(self.transport, method, path)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if self.transport is not None:
            self.server.lost(self.transport)


def serve(events: int, interval: float) -> None:
    """Run the server; print its port on the first line of stdout."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = _Server(events, interval)
        listener = await loop.create_server(
            lambda: _Connection(server), "127.0.0.1", 0, backlog=4096
        )
        server.start(loop)
        print(listener.sockets[0].getsockname()[1], flush=True)
        await listener.serve_forever()

    asyncio.run(main())


def server_stats(port: int, reset: bool = False) -> Dict[str, float]:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /stats%s HTTP/1.1\r\nHost: x\r\n\r\n" % (b"?reset" if reset else b""))
        data = b""
        while not data.endswith(b"}"):
            data += sock.recv(65536)
    return json.loads(data.partition(b"\r\n\r\n")[2])


# -- the clients (each in its own process) -------------------------------------------

# Each stream returns (seconds from its request start to its first delta, or
# None; the text it received, or None with the error it ended in).
Outcome = Tuple[Optional[float], Optional[str], Optional[str]]


def _threads() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


class _Peak:
    """The most threads and RSS seen while the streams are open, sampled every 50 ms
    (``ru_maxrss`` alone may be the imports' peak, from before the run)."""

    def __init__(self) -> None:
        self.threads = 0
        self.rss = 0.0
        self.sample()

    def sample(self) -> None:
        self.threads = max(self.threads, _threads())
        self.rss = max(self.rss, _rss_mb())

    def figures(self) -> Dict[str, float]:
        self.sample()
        return {"threads": float(self.threads), "rss_run": self.rss}


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


async def _timed(deltas: Any) -> Outcome:
    """Read an async iterator of text deltas, timing the first."""
    start = time.perf_counter()
    first: Optional[float] = None
    parts: List[str] = []
    try:
        async for text in deltas():
            if first is None:
                first = time.perf_counter() - start
            parts.append(text)
    except Exception as exc:  # a failed stream is a figure, not a crash
        return first, None, f"{type(exc).__name__}: {exc}"[:300]
    return first, "".join(parts), None


def _fast(base: str) -> str:
    """The warm-up's base URL: the same server, the whole stream at once."""
    scheme, _, rest = base.partition("//")
    host, _, path = rest.partition("/")
    return f"{scheme}//{host}/fast/{path}"


def _async_client(name: str, base: str, n: int) -> Tuple[Callable[[], Any], Callable[[], Any]]:
    """A way to open one stream (``start -> async iterator of text``) and a closer."""
    if name == "rawchat async":
        import rawchat

        client = rawchat.AsyncClient(api_key=KEY, base_url=base, max_retries=0, pool_maxsize=n)

        async def rawchat_stream() -> Any:
            async with client.stream(MESSAGES, model="m") as s:
                async for text in s.text():
                    yield text

        return rawchat_stream, client.aclose
    if name == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=n, limit_per_host=n, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=READ_TIMEOUT),
            headers={"Authorization": f"Bearer {KEY}"},
        )
        body = {"model": "m", "messages": MESSAGES, "stream": True}

        async def aiohttp_stream() -> Any:
            async with session.post(base + "/chat/completions", json=body) as response:
                response.raise_for_status()
                async for line in response.content:
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        break
                    for choice in json.loads(data)["choices"]:
                        content = choice["delta"].get("content")
                        if content:
                            yield content

        return aiohttp_stream, session.close
    import httpx

    http = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
        timeout=httpx.Timeout(READ_TIMEOUT),
    )
    if name == "httpx+httpx-sse":
        from httpx_sse import aconnect_sse

        body = {"model": "m", "messages": MESSAGES, "stream": True}
        headers = {"Authorization": f"Bearer {KEY}"}

        async def httpx_stream() -> Any:
            url = base + "/chat/completions"
            async with aconnect_sse(http, "POST", url, json=body, headers=headers) as source:
                source.response.raise_for_status()
                async for event in source.aiter_sse():
                    if event.data == "[DONE]":
                        break
                    for choice in json.loads(event.data)["choices"]:
                        content = choice["delta"].get("content")
                        if content:
                            yield content

        return httpx_stream, http.aclose
    import openai

    sdk = openai.AsyncOpenAI(api_key=KEY, base_url=base, max_retries=0, http_client=http)

    async def openai_stream() -> Any:
        stream = await sdk.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        async for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    yield choice.delta.content

    return openai_stream, sdk.close


def _run_async(name: str, base: str, n: int) -> Tuple[List[Outcome], Dict[str, float]]:
    async def main() -> Tuple[List[Outcome], Dict[str, float]]:
        warm, close = _async_client(name, _fast(base), 1)
        await _timed(warm)
        await close()
        stream, close = _async_client(name, base, n)
        peak = _Peak()

        async def sample() -> None:
            while True:
                peak.sample()
                await asyncio.sleep(0.05)

        sampler = asyncio.ensure_future(sample())
        before = {"rss": _rss_mb(), "cpu": _cpu(), "wall": time.perf_counter()}
        outcomes = await asyncio.gather(*(_timed(stream) for _ in range(n)))
        figures = {
            "wall": time.perf_counter() - before["wall"],
            "cpu": _cpu() - before["cpu"],
            "rss_before": before["rss"],
        }
        sampler.cancel()
        figures.update(peak.figures())
        await close()
        return list(outcomes), figures

    return asyncio.run(main())


def _run_threads(base: str, n: int) -> Tuple[List[Outcome], Dict[str, float]]:
    import rawchat

    def one(client: Any, outcomes: List[Outcome], index: int) -> None:
        start = time.perf_counter()
        first: Optional[float] = None
        parts: List[str] = []
        try:
            with client.stream(MESSAGES, model="m") as s:
                for text in s.text():
                    if first is None:
                        first = time.perf_counter() - start
                    parts.append(text)
        except Exception as exc:  # a failed stream is a figure, not a crash
            outcomes[index] = (first, None, f"{type(exc).__name__}: {exc}"[:300])
            return
        outcomes[index] = (first, "".join(parts), None)

    warm = rawchat.Client(api_key=KEY, base_url=_fast(base), max_retries=0)
    scratch: List[Outcome] = [(None, None, None)]
    one(warm, scratch, 0)
    warm.close()
    client = rawchat.Client(api_key=KEY, base_url=base, max_retries=0, pool_maxsize=n)
    outcomes: List[Outcome] = [(None, None, "never ran")] * n
    threads = [threading.Thread(target=one, args=(client, outcomes, i)) for i in range(n)]
    peak = _Peak()
    before = {"rss": _rss_mb(), "cpu": _cpu(), "wall": time.perf_counter()}
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            peak.sample()
            thread.join(0.05)
    figures = {
        "wall": time.perf_counter() - before["wall"],
        "cpu": _cpu() - before["cpu"],
        "rss_before": before["rss"],
        **peak.figures(),
    }
    client.close()
    return outcomes, figures


def measure(name: str, base: str, n: int, events: int) -> Dict[str, Any]:
    """Run in a child process: N streams through one client; the figures."""
    if name == "rawchat sync threads":
        outcomes, figures = _run_threads(base, n)
    else:
        outcomes, figures = _run_async(name, base, n)
    expected = expected_text(events)
    firsts = sorted(first for first, _, _ in outcomes if first is not None)
    errors = [error for _, _, error in outcomes if error]
    wrong = sum(1 for _, text, error in outcomes if not error and text != expected)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3  # KB on Linux
    return {
        **figures,
        "completed": sum(1 for _, text, _ in outcomes if text == expected),
        "first_p50": _percentile(firsts, 50),
        "first_p99": _percentile(firsts, 99),
        "rss_peak": peak,
        "kb_per_stream": max(0.0, figures["rss_run"] - figures["rss_before"]) * 1e3 / n,
        "errors": len(errors),
        "wrong_text": wrong,
        "first_error": errors[0] if errors else None,
    }


def _percentile(values: List[float], percent: float) -> Optional[float]:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(percent) - 1]


# -- the orchestration ------------------------------------------------------------


def installed(name: str) -> bool:
    code = (
        "import importlib.util, sys; "
        f"sys.exit(0 if all(importlib.util.find_spec(m) for m in {MODULES[name]!r}) else 1)"
    )
    return _python(code, timeout=60).returncode == 0


def _python(code: str, timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # This checkout's rawchat, whatever else is installed.
    env["PYTHONPATH"] = os.pathsep.join([ROOT, *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=HERE,
        env=env,
        timeout=timeout,
    )


def child(name: str, base: str, n: int, events: int, timeout: float) -> Dict[str, Any]:
    code = (
        f"import sys, json; sys.path.insert(0, {HERE!r}); import concurrency; "
        f"print(json.dumps(concurrency.measure({name!r}, {base!r}, {n}, {events})))"
    )
    try:
        result = _python(code, timeout)
    except subprocess.TimeoutExpired:
        return {"failed": f"no result within {timeout:.0f} s"}
    if result.returncode != 0:
        return {"failed": result.stderr.strip().splitlines()[-1][:300] if result.stderr else "?"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def _load() -> str:
    return "load average {:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())


def _mean(values: List[Optional[float]]) -> Optional[float]:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _number(value: Optional[float], digits: int = 2) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _ratios(results: List[Dict[str, Any]], reference: List[Dict[str, Any]], figure: str) -> str:
    """Each round's figure over the reference client's in the same round."""
    cells = []
    for mine, theirs in zip(results, reference):
        if "failed" in mine or "failed" in theirs or not theirs[figure]:
            cells.append("-")
        else:
            cells.append(f"{mine[figure] / theirs[figure]:.2f}x")
    return ", ".join(cells) if cells else "-"


def _mean_cell(good: List[Dict[str, Any]], figure: str, scale: float = 1.0, digits: int = 2) -> str:
    value = _mean([r[figure] for r in good])
    return _number(None if value is None else value * scale, digits)


def _row(name: str, results: List[Dict[str, Any]], reference: List[Dict[str, Any]], n: int) -> str:
    good = [r for r in results if "failed" not in r]
    if not good:
        return f"| {name} | failed: {results[0]['failed']} |" + " |" * 9
    completed = [f"{r['completed']}/{n}" if "failed" not in r else "failed" for r in results]
    if len(set(completed)) == 1:
        done = f"{completed[0]} x{len(completed)}"
    else:
        done = ", ".join(completed)
    server = ", ".join(
        f"{r['server_cpu'] / r['wall']:.0%} {r['server_lag'] * 1e3:.0f} ms" for r in good
    )
    first = f"{_mean_cell(good, 'first_p50', 1e3, 1)} / {_mean_cell(good, 'first_p99', 1e3, 1)}"
    cells = [
        name,
        _mean_cell(good, "wall"),
        _ratios(results, reference, "wall"),
        _mean_cell(good, "cpu"),
        _ratios(results, reference, "cpu"),
        first,
        _mean_cell(good, "rss_peak", digits=1),
        _mean_cell(good, "kb_per_stream", digits=1),
        _mean_cell(good, "threads", digits=0),
        done,
        server,
    ]
    return "| " + " | ".join(cells) + " |"


def report(n: int, clients: List[str], runs: Dict[str, List[Dict[str, Any]]], ideal: float) -> None:
    """One table for N: each figure the mean of the rounds, ratios to aiohttp per round."""
    print(f"\nN = {n} concurrent streams (ideal wall {ideal:.2f} s)\n")
    print(
        "| client | wall s | wall vs aiohttp | CPU s | CPU vs aiohttp | first delta p50 / p99 ms "
        "| peak RSS MB | KB per stream | threads | completed | server CPU, latest tick |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in clients:
        print(_row(name, runs[name], runs.get(REFERENCE, []), n))
    for name in clients:
        for index, r in enumerate(runs[name]):
            if r.get("first_error") or r.get("wrong_text") or r.get("failed"):
                print(
                    f"  {name}, round {index + 1}: {r.get('failed') or r['first_error']}"
                    f" ({r.get('errors', 0)} errors, {r.get('wrong_text', 0)} wrong texts)"
                )
            # A busy server would make every client look slow.
            if "failed" not in r and r["server_cpu"] / r["wall"] > 0.7:
                print(f"  {name}, round {index + 1}: the server was busy; its figures are suspect")


def _verdict(ok: bool) -> str:
    return "met" if ok else "not met"


def targets(runs: Dict[str, List[Dict[str, Any]]]) -> None:
    """rawchat async against the goals set for the largest N, round by round."""
    goals: Dict[str, List[str]] = {
        "wall within 1.1x aiohttp": [],
        "CPU within 1.3x aiohttp": [],
        "wall and CPU below httpx-sse's and the SDK's": [],
        "first delta p99 under 500 ms": [],
    }
    mine, reference = runs.get("rawchat async", []), runs.get(REFERENCE, [])
    for index, (r, a) in enumerate(zip(mine, reference)):
        if "failed" in r or "failed" in a:
            continue
        peers = [runs[p][index] for p in ("httpx+httpx-sse", "openai") if p in runs]
        peers = [p for p in peers if "failed" not in p]
        ahead = all(r["wall"] < p["wall"] and r["cpu"] < p["cpu"] for p in peers)
        p99 = r["first_p99"] * 1e3 if r["first_p99"] is not None else float("inf")
        wall, cpu = r["wall"] / a["wall"], r["cpu"] / a["cpu"]
        goals["wall within 1.1x aiohttp"].append(f"{wall:.2f}x {_verdict(wall <= 1.1)}")
        goals["CPU within 1.3x aiohttp"].append(f"{cpu:.2f}x {_verdict(cpu <= 1.3)}")
        goals["wall and CPU below httpx-sse's and the SDK's"].append(
            _verdict(ahead) if peers else "not measured"
        )
        goals["first delta p99 under 500 ms"].append(f"{p99:,.0f} ms {_verdict(p99 < 500)}")
    rounds = len(goals["wall within 1.1x aiohttp"])
    if not rounds:
        return
    print("\nrawchat async against its goals, at this N (round by round):\n")
    print("| goal | " + " | ".join(f"round {i + 1}" for i in range(rounds)) + " |")
    print("|---|" + "---|" * rounds)
    for goal, cells in goals.items():
        print(f"| {goal} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 10 and 100 only")
    parser.add_argument("--n", help="comma-separated stream counts (default 10,100,500,1000)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each configuration (2)")
    parser.add_argument("--events", type=int, default=200, help="content deltas per stream (200)")
    parser.add_argument("--interval", type=float, default=20.0, help="ms between events (20)")
    parser.add_argument("--clients", help="comma-separated subset of: " + ", ".join(CLIENTS))
    parser.add_argument("--json", help="also write the raw figures to this file")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.events, args.interval / 1e3)
        return
    counts = [
        int(c) for c in (args.n or ("10,100" if args.quick else "10,100,500,1000")).split(",")
    ]
    wanted = args.clients.split(",") if args.clients else CLIENTS
    unknown = [c for c in wanted if c not in CLIENTS]
    if unknown:
        parser.error(f"unknown clients {unknown}; choose from {CLIENTS}")
    clients = [c for c in wanted if installed(c)]
    skipped = [c for c in wanted if c not in clients]
    ideal = args.events * args.interval / 1e3

    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {_load()}")
    print(f"{args.events} events {args.interval:g} ms apart per stream; N = {counts}; "
          f"{args.rounds} rounds; clients: {', '.join(clients)}"
          + (f" (not installed: {', '.join(skipped)})" if skipped else ""))  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--serve", "--events", str(args.events),
         "--interval", str(args.interval)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    everything: Dict[int, Dict[str, List[Dict[str, Any]]]] = {}
    started = time.monotonic()
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        base = f"http://127.0.0.1:{port}/v1"
        for n in counts:
            print(f"\n[N = {n}] {_load()}", flush=True)
            runs: Dict[str, List[Dict[str, Any]]] = {c: [] for c in clients}
            for round_ in range(args.rounds):
                for name in clients if round_ % 2 == 0 else clients[::-1]:
                    before = server_stats(port, reset=True)
                    result = child(name, base, n, args.events, timeout=120 + ideal * 20 + n * 0.2)
                    after = server_stats(port)
                    result["server_cpu"] = after["cpu"] - before["cpu"]
                    result["server_lag"] = after["lag"]
                    runs[name].append(result)
                    if "failed" in result:
                        progress = result["failed"]
                    else:
                        progress = f"{result['wall']:.2f} s, {result['completed']}/{n}"
                    print(f"  round {round_ + 1} {name}: {progress}", flush=True)
            everything[n] = runs
            report(n, clients, runs, ideal)
            if n == max(counts):
                targets(runs)
    finally:
        server.terminate()
        server.wait()
    print(f"\n{_load()}; {time.monotonic() - started:.0f} s in all")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({str(n): runs for n, runs in everything.items()}, out, indent=1)


if __name__ == "__main__":
    main()
