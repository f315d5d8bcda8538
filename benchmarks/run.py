"""rawchat against the clients people would pick instead, and a raw-socket floor.

    python -m pip install -e '.[bench]' && python benchmarks/run.py [--quick]

A fast loopback server (its own process, precomputed bytes, no http.server)
answers every client; each client runs each figure in a fresh process and
must return exactly the expected text (or events) before its figure counts.
Figures are medians, each shown with its ratio to the raw-socket floor
measured in the same run; a second table checks rawchat's targets. Clients
that are not installed are skipped.

The figures:

* import ms: ``import X`` timed inside a fresh interpreter (bytecode
  compiled beforehand, as an installed package has it), and the same with a
  client made (``requests.Session()``, ``rawchat.Client(...)``...).
* requests/s: sequential non-streaming calls over one kept-alive connection.
* chunks/s: one 5,000-chunk stream, read to the end.
* first delta: the server sends the first event, then pauses 200 ms; the
  time from the request's start, and from the server's flush, until the
  client yields the first text. Chunked, and close-delimited (no length, no
  chunking, as some proxies send).
* SSE parse MB/s: each client's own SSE parser on a 20 MB chat stream cut
  into random 1-16,384-byte pieces (split CRLF-free lines and UTF-8).
* peak RSS and growth: one 50,000-chunk stream read into the whole answer,
  after a warm-up; what a second one adds.
* concurrency: N threads sharing one client against a server that takes
  10 ms per request; requests/s, and how many connections were opened.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS = ["floor", "rawchat", "requests", "requests+sseclient", "httpx+httpx-sse", "openai"]
KEY = "sk-bench-0000000000000000"
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
LATENCY = 0.01  # seconds the server takes per request in the concurrency figure
POOL = 10  # rawchat's and requests' default connections per host
WORDS = ["你好", " world", " token", "，", " stream"]

# What importing each client, and making it ready to send, means.
IMPORTS = {
    "rawchat": ("import rawchat", "rawchat.Client({key!r}, {base!r})"),
    "requests": ("import requests", "requests.Session()"),
    "requests+sseclient": ("import requests, sseclient", "requests.Session()"),
    "httpx+httpx-sse": ("import httpx, httpx_sse", "httpx.Client()"),
    "openai": ("import openai", "openai.OpenAI(api_key={key!r}, base_url={base!r})"),
}


# -- the server ------------------------------------------------------------------


def _completion(text: str) -> bytes:
    message = {"role": "assistant", "content": text}
    return json.dumps({
        "id": "c", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }).encode()  # fmt: skip


def _event(content: Optional[str], finish: Optional[str] = None) -> bytes:
    delta = {} if content is None else {"content": content}
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
    return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"


def stream_events(chunks: int) -> List[bytes]:
    return [_event(WORDS[i % len(WORDS)]) for i in range(chunks)] + [
        _event(None, "stop"),
        b"data: [DONE]\n\n",
    ]


def expected_text(chunks: int) -> str:
    return "".join(WORDS[i % len(WORDS)] for i in range(chunks))


def serve(port_queue: Any, latency: float) -> None:
    """Answers by path: /v1/chat/completions (JSON), /l/... (JSON after ``latency``),
    /s/N/... (N-chunk chunked stream), /p/... (first chunk, pause, rest), /pc/...
    (the same, close-delimited), /stats (connections accepted, time of the last
    first-chunk flush on the shared monotonic clock)."""
    json_answer = _completion("ok")
    json_response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(json_answer), json_answer)
    )
    chunked_head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    close_head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    streams: Dict[int, bytes] = {}
    stats = {"connections": 0, "flushed": 0.0}

    def chunked(events: List[bytes]) -> bytes:
        return b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events)

    def handle(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                while len(rest) < length:
                    rest += conn.recv(65536)
                buffer = rest[length:]
                path = head.split(b" ", 2)[1].decode()
                if path.endswith("/stats"):
                    body = json.dumps(stats).encode()
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                    )
                elif "/s/" in path:
                    count = int(path.split("/s/")[1].split("/")[0])
                    if count not in streams:
                        streams[count] = chunked(stream_events(count)) + b"0\r\n\r\n"
                    conn.sendall(chunked_head + streams[count])
                elif "/p/" in path or "/pc/" in path:
                    first = _event("first")
                    rest_events = [_event(" rest", "stop"), b"data: [DONE]\n\n"]
                    close = "/pc/" in path
                    stats["flushed"] = time.monotonic()
                    conn.sendall(close_head + first if close else chunked_head + chunked([first]))
                    time.sleep(0.2)
                    if close:
                        conn.sendall(b"".join(rest_events))
                        return
                    conn.sendall(chunked(rest_events) + b"0\r\n\r\n")
                else:
                    if "/l/" in path:
                        time.sleep(latency)
                    conn.sendall(json_response)

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port_queue.put(listener.getsockname()[1])
    while True:
        conn, _ = listener.accept()
        stats["connections"] += 1
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def server_stats(base: str) -> Dict[str, float]:
    host, port = base.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while not data.endswith(b"}"):
            data += sock.recv(65536)
    return json.loads(data.partition(b"\r\n\r\n")[2])


# -- the clients (run in a child process) -------------------------------------------


def make_client(name: str, base: str) -> Dict[str, Callable]:
    """``chat(path) -> text``, ``stream(path) -> iterator of text deltas``,
    ``parse(pieces) -> list of event data`` (the client's own SSE parser), and
    ``answer(path) -> the whole streamed text`` (the deltas joined, unless the
    client has a way of its own)."""
    client = _make_client(name, base)
    client.setdefault("answer", lambda path: "".join(client["stream"](path)))
    return client


def _make_client(name: str, base: str) -> Dict[str, Callable]:
    sys.path.insert(0, HERE)
    import sse_throughput

    if name == "rawchat":
        import rawchat

        messages = [{"role": "user", "content": "hi"}]
        clients: Dict[str, Any] = {}

        def at(path: str) -> Any:
            # The path picks the server's behaviour, so it goes in the base URL.
            prefix = path.rsplit("/chat/completions", 1)[0]
            if prefix not in clients:
                clients[prefix] = rawchat.Client(KEY, base + prefix, max_retries=0)
            return clients[prefix]

        def chat(path):
            return at(path).chat(messages, model="m").content

        def stream(path):
            with at(path).stream(messages, model="m", include_usage=False) as s:
                yield from s.text()

        def answer(path):
            # The way to the whole answer: the stream assembles it anyway.
            with at(path).stream(messages, model="m", include_usage=False) as s:
                for _ in s.text():
                    pass
            return s.completion.content

        return {
            "chat": chat,
            "stream": stream,
            "parse": sse_throughput.parse_rawchat,
            "answer": answer,
        }
    if name in ("requests", "requests+sseclient"):
        import io

        import requests

        session = requests.Session()
        headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

        def chat(path):
            answer = session.post(base + path, data=BODY, headers=headers).json()
            return answer["choices"][0]["message"]["content"]

        def datas(response):
            if name == "requests":
                lines = response.iter_lines()
                return (line[6:].decode() for line in lines if line.startswith(b"data: "))
            import sseclient

            return (e.data for e in sseclient.SSEClient(response.iter_content(None)).events())

        def stream(path):
            response = session.post(base + path, data=BODY, headers=headers, stream=True)
            for data in datas(response):
                if data == "[DONE]":
                    break
                for choice in json.loads(data)["choices"]:
                    if choice["delta"].get("content"):
                        yield choice["delta"]["content"]

        def iter_lines(pieces):  # as on a real response
            response = requests.Response()
            response.raw = io.BytesIO(b"".join(pieces))
            return list(datas(response))

        parse = iter_lines if name == "requests" else sse_throughput.parse_sseclient
        return {"chat": chat, "stream": stream, "parse": parse}
    if name == "httpx+httpx-sse":
        import httpx
        from httpx_sse import connect_sse

        http = httpx.Client(headers={"Authorization": f"Bearer {KEY}"})

        def chat(path):
            return http.post(base + path, content=BODY).json()["choices"][0]["message"]["content"]

        def stream(path):
            with connect_sse(http, "POST", base + path, content=BODY) as source:
                for event in source.iter_sse():
                    if event.data == "[DONE]":
                        break
                    for choice in json.loads(event.data)["choices"]:
                        if choice["delta"].get("content"):
                            yield choice["delta"]["content"]

        return {"chat": chat, "stream": stream, "parse": sse_throughput.parse_httpx_sse}
    if name == "openai":
        import openai

        cache: Dict[str, Any] = {}

        def client_for(path):
            prefix = path.rsplit("/chat/completions", 1)[0]
            if prefix not in cache:
                cache[prefix] = openai.OpenAI(api_key=KEY, base_url=base + prefix, max_retries=0)
            return cache[prefix]

        def chat(path):
            answer = client_for(path).chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )
            return answer.choices[0].message.content

        def stream(path):
            for chunk in client_for(path).chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True
            ):
                for choice in chunk.choices:
                    if choice.delta.content:
                        yield choice.delta.content

        return {"chat": chat, "stream": stream, "parse": sse_throughput.parse_openai}
    return _floor(base)


def _floor(base: str) -> Dict[str, Callable]:
    """A raw socket: the least any client must do (one kept-alive connection)."""
    host, port = base.split("//")[1].split("/")[0].split(":")
    state: Dict[str, socket.socket] = {}

    def connect():
        if "sock" not in state:
            state["sock"] = socket.create_connection((host, int(port)))
            state["sock"].setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return state["sock"]

    def send(path):
        sock = connect()
        sock.sendall(
            b"POST /v1%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
            % (path.encode(), len(BODY), BODY)
        )
        return sock

    def chat(path):
        sock = send(path)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += sock.recv(65536)
        return json.loads(body)["choices"][0]["message"]["content"]

    def stream(path):
        close = path.startswith("/pc/")
        sock = send(path)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        data = data.partition(b"\r\n\r\n")[2]
        while True:
            while b"\n\n" in data:
                event, _, data = data.partition(b"\n\n")
                payload = event[event.find(b"data: ") + 6 :]
                if payload == b"[DONE]":
                    if close:
                        sock.close()
                        state.pop("sock")
                    else:
                        while not data.endswith(b"0\r\n\r\n"):
                            data += sock.recv(65536)
                    return
                for choice in json.loads(payload)["choices"]:
                    if choice["delta"].get("content"):
                        yield choice["delta"]["content"]
            data += sock.recv(65536)

    def parse(pieces):
        # Event boundaries and nothing else: no field rules, no CR, no BOM.
        events, buffer = [], b""
        for piece in pieces:
            parts = (buffer + piece).split(b"\n\n")
            buffer = parts.pop()
            events += [part[6:].decode() for part in parts]
        return events

    return {"chat": chat, "stream": stream, "parse": parse}


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def measure(name: str, base: str, figure: str, runs: int) -> List[float]:
    """Run in a child process: one figure for one client."""
    client = make_client(name, base)
    results: List[float] = []
    if figure == "requests_per_s":
        calls = 300 if runs < 5 else 2000
        client["chat"]("/chat/completions")
        for _ in range(runs):
            started = time.perf_counter()
            for _ in range(calls):
                assert client["chat"]("/chat/completions") == "ok"
            results.append(calls / (time.perf_counter() - started))
    elif figure == "chunks_per_s":
        count = 5000
        assert "".join(client["stream"]("/s/10/chat/completions")) == expected_text(10)
        for _ in range(runs):
            started = time.perf_counter()
            text = "".join(client["stream"](f"/s/{count}/chat/completions"))
            results.append(count / (time.perf_counter() - started))
            assert text == expected_text(count), "wrong text"
    elif figure in ("first_delta", "first_delta_close"):
        path = "/p/chat/completions" if figure == "first_delta" else "/pc/chat/completions"
        from_start, from_flush = [], []
        for _ in range(runs + 1):  # the first run opens the connection: not counted
            started = time.monotonic()
            deltas = client["stream"](path)
            assert next(deltas) == "first"
            arrived = time.monotonic()
            assert "".join(deltas) == " rest"
            from_start.append((arrived - started) * 1000)
            from_flush.append((arrived - server_stats(base)["flushed"]) * 1000)
        results = [statistics.median(from_start[1:]), statistics.median(from_flush[1:])]
    elif figure == "sse_mb_s":
        from sse_throughput import cut, expected_data, make_stream

        data = make_stream(20)
        expected = expected_data(data)
        pieces = cut(data)
        assert client["parse"](pieces) == expected, "wrong events"
        for _ in range(runs):
            started = time.perf_counter()
            client["parse"](pieces)
            results.append(len(data) / 1e6 / (time.perf_counter() - started))
    elif figure == "memory":
        import gc
        import resource

        def once() -> float:
            # Each client ends up with the whole answer, as a caller wants it.
            assert client["answer"]("/s/50000/chat/completions") == expected_text(50000)
            gc.collect()
            return _rss_mb()

        assert "".join(client["stream"]("/s/100/chat/completions")) == expected_text(100)
        first = once()
        # A second stream like the first: what it adds is what a stream leaks
        # (RSS after the first also holds memory the allocator keeps for reuse).
        second = once()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        results = [peak, second - first]
    elif figure.startswith("threads_"):
        results = _concurrency(name, client, base, int(figure.split("_")[1]), runs)
    return results


def _concurrency(
    name: str, client: Dict[str, Callable], base: str, threads: int, runs: int
) -> List[float]:
    """[requests/s, connections opened, sockets left open] for ``threads`` threads
    sharing ``client``."""
    calls = 20 if runs < 5 else 50  # per thread
    before = server_stats(base)["connections"]
    # One client shared by every thread; the floor has a socket per thread.
    shared = [client if name != "floor" else _floor(base) for _ in range(threads)]
    for each in shared:
        each["chat"]("/l/chat/completions")
    errors: List[BaseException] = []

    def work(each):
        try:
            for _ in range(calls):
                assert each["chat"]("/l/chat/completions") == "ok"
        except BaseException as exc:  # reported below, not lost in a thread
            errors.append(exc)

    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(each,)) for each in shared]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    # Each server_stats() call is a connection of its own.
    opened = server_stats(base)["connections"] - before - 1
    return [threads * calls / elapsed, opened, _open_sockets()]


def _open_sockets() -> int:
    fds = os.listdir("/proc/self/fd")
    return sum(1 for fd in fds if _readlink(f"/proc/self/fd/{fd}").startswith("socket:"))


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:  # the listing's own descriptor, closed by now
        return ""


# -- the runner -------------------------------------------------------------------------


def child(name: str, base: str, figure: str, runs: int) -> Optional[List[float]]:
    code = (
        f"import sys, json; sys.path.insert(0, {HERE!r}); import run; "
        f"print(json.dumps(run.measure({name!r}, {base!r}, {figure!r}, {runs})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=900
    )
    if result.returncode != 0:
        if "ModuleNotFoundError" in result.stderr or "ImportError" in result.stderr:
            return None
        raise SystemExit(f"{name} {figure} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def import_ms(names: List[str], base: str, runs: int) -> Dict[str, List[List[float]]]:
    """For each client, ms for the import alone and for the import with a client made.

    The samples are interleaved across clients, so that the machine's slow
    spells fall on all of them alike.
    """
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def once(code: str) -> float:
        timed = f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
        out = subprocess.run(
            [sys.executable, "-c", timed], capture_output=True, text=True, env=environment
        )
        if out.returncode != 0:
            raise ImportError(out.stderr)
        return float(out.stdout) * 1000

    codes = {}
    for name in names:
        imports, ready = IMPORTS[name]
        codes[name] = (imports, f"{imports}; {ready.format(key=KEY, base=base)}")
        once(codes[name][1])  # writes the bytecode an installed package would have
    samples: Dict[str, List[List[float]]] = {name: [[], []] for name in names}
    for _ in range(max(runs * 3, 11)):
        for name, (imports, ready) in codes.items():
            samples[name][0].append(once(imports))
            samples[name][1].append(once(ready))
    return samples


def installed(name: str) -> bool:
    if name == "floor":
        return True
    code = IMPORTS[name][0]
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


SERIES = {"requests_per_s", "chunks_per_s", "sse_mb_s"}
SCALING = (1, 2, 5, POOL, POOL * 2, POOL * 4)  # threads, for rawchat alone
FIGURES = [
    "requests_per_s",
    "chunks_per_s",
    "first_delta",
    "first_delta_close",
    "sse_mb_s",
    "memory",
    f"threads_{POOL}",
    f"threads_{POOL * 2}",
]


def collect(base: str, runs: int, rounds: int) -> Dict[str, Dict[str, Any]]:
    """Every figure for every client: ``rounds`` fresh processes each, interleaved."""
    names = [name for name in CLIENTS if installed(name)]
    for name in sorted(set(CLIENTS) - set(names)):
        print(f"skipped {name}: not installed", file=sys.stderr)
    table: Dict[str, Dict[str, Any]] = {name: {} for name in names}
    for name, (alone, ready) in import_ms([n for n in names if n != "floor"], base, runs).items():
        table[name]["import"] = [statistics.median(alone), statistics.median(ready)]
    table["floor"]["import"] = [0.0, 0.0]
    scaling = [f"threads_{n}" for n in SCALING if f"threads_{n}" not in FIGURES]
    for figure in FIGURES + scaling:
        clients = ["rawchat"] if figure in scaling else names
        samples: Dict[str, List[List[float]]] = {name: [] for name in clients}
        for _ in range(rounds):
            for name in clients:
                samples[name].append(child(name, base, figure, runs))
        for name, values in samples.items():
            if figure in SERIES:  # every sample of every round
                table[name][figure] = [v for each in values for v in each]
            else:  # [a, b, ...] per round: the median of each
                table[name][figure] = [statistics.median(column) for column in zip(*values)]
        print(f"measured {figure}", file=sys.stderr)
    return table


def _cell(value: float, floor: Optional[float] = None, higher: bool = True) -> str:
    text = f"{value:,.0f}" if value >= 100 else f"{value:.2f}" if value < 10 else f"{value:.1f}"
    if floor is None:
        return text
    if higher:
        return f"{text} ({value / floor:.2f}x)"
    return f"{text} (+{value - floor:.2f})"


def report(table: Dict[str, Dict[str, Any]], runs: int, rounds: int) -> None:
    floor = table["floor"]
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} cores; medians of {rounds} fresh "
        f"processes x {runs} runs; (x) is the ratio to the raw-socket floor, (+) the ms "
        "above it; import ms are net of the interpreter, (x) there is the ratio to requests"
    )
    columns = [
        "import ms",
        "import + client ms",
        "requests/s",
        "chunks/s",
        "first delta ms, chunked: from start / from flush",
        "first delta ms, close-delimited: from start / from flush",
        "SSE parse MB/s",
        "peak RSS MB (growth)",
        f"{POOL} threads req/s",
        f"{POOL * 2} threads req/s (opened, open after)",
    ]
    print("| client | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    requests_import = table["requests"]["import"] if "requests" in table else [0.0, 0.0]
    for name, row in table.items():
        cells = []
        for value, reference in zip(row["import"], requests_import):
            ratio = f" ({value / reference:.2f}x)" if reference and name != "floor" else ""
            cells.append(f"{value:.1f}{ratio}")
        for figure in ("requests_per_s", "chunks_per_s"):
            cells.append(_cell(statistics.median(row[figure]), statistics.median(floor[figure])))
        for figure in ("first_delta", "first_delta_close"):
            start, flush = row[figure]
            cells.append(
                f"{_cell(start, floor[figure][0], higher=False)} / "
                f"{_cell(flush, floor[figure][1], higher=False)}"
            )
        cells.append(
            _cell(statistics.median(row["sse_mb_s"]), statistics.median(floor["sse_mb_s"]))
        )
        cells.append(f"{row['memory'][0]:.1f} ({row['memory'][1]:+.1f})")
        cells.append(_cell(row[f"threads_{POOL}"][0], floor[f"threads_{POOL}"][0]))
        rate, opened, left = row[f"threads_{POOL * 2}"]
        cells.append(f"{_cell(rate, floor[f'threads_{POOL * 2}'][0])} ({opened:.0f}, {left:.0f})")
        print(f"| {name} | " + " | ".join(cells) + " |")

    print()
    print(f"rawchat, threads sharing one client, {LATENCY * 1000:.0f} ms per request, pool {POOL}:")
    print("| threads | requests/s | per thread | connections opened | sockets open after |")
    print("|---|---|---|---|---|")
    for threads in SCALING:
        rate, opened, left = table["rawchat"][f"threads_{threads}"]
        print(f"| {threads} | {rate:,.0f} | {rate / threads:.1f} | {opened:.0f} | {left:.0f} |")
    print()
    targets(table)


def targets(table: Dict[str, Dict[str, Any]]) -> None:
    """rawchat's targets, each with the figures that decide it."""
    ours, floor = table["rawchat"], table["floor"]
    rows = []

    def median(name: str, figure: str) -> Optional[float]:
        return statistics.median(table[name][figure]) if name in table else None

    def ratio(figure: str, peer: str) -> Optional[float]:
        theirs = median(peer, figure)
        return median("rawchat", figure) / theirs if theirs else None  # type: ignore[operator]

    def check(figure: str, target: str, value: Optional[float], limit: float, higher: bool) -> None:
        if value is None:
            rows.append((figure, target, "n/a", "peer not installed"))
            return
        met = value >= limit if higher else value <= limit
        rows.append((figure, target, f"{value:.2f}", "met" if met else "not met"))

    imports = table["requests"]["import"] if "requests" in table else None
    check(
        "import time",
        "at most 1.1x `import requests`",
        imports and ours["import"][0] / imports[0],
        1.1,
        False,
    )
    check(
        "import + client",
        "(reported) vs requests + Session()",
        imports and ours["import"][1] / imports[1],
        1.1,
        False,
    )
    check(
        "requests/s", "at least 0.9x plain requests", ratio("requests_per_s", "requests"), 0.9, True
    )
    check(
        "chunks/s",
        "at least 0.9x requests iter_lines",
        ratio("chunks_per_s", "requests"),
        0.9,
        True,
    )
    check("chunks/s", "at least 10x the openai SDK", ratio("chunks_per_s", "openai"), 10, True)
    for figure, label in (("first_delta", "chunked"), ("first_delta_close", "close-delimited")):
        above = [ours[figure][i] - floor[figure][i] for i in (0, 1)]
        check(
            f"first delta, {label}",
            "within 0.5 ms of the floor, from the flush",
            above[1],
            0.5,
            False,
        )
        check(
            f"first delta, {label}",
            "(reported) ms above the floor, from the start",
            above[0],
            0.5,
            False,
        )
    check(
        "SSE parse",
        "at least 2.5x sseclient-py",
        ratio("sse_mb_s", "requests+sseclient"),
        2.5,
        True,
    )
    check("SSE parse", "at least 1.5x httpx-sse", ratio("sse_mb_s", "httpx+httpx-sse"), 1.5, True)
    peers = [table[n]["memory"][0] for n in ("requests", "requests+sseclient") if n in table]
    above = ours["memory"][0] - min(peers) if peers else None
    check("peak RSS", "MB above the requests-based peers (at most 0)", above, 0.0, False)
    check(
        "RSS growth",
        "MB a second 50,000-chunk stream adds (at most 0.5)",
        ours["memory"][1],
        0.5,
        False,
    )
    scale = ours[f"threads_{POOL}"][0] / (POOL * ours["threads_1"][0])
    check("concurrency", f"{POOL} threads: at least 0.8 x {POOL} x one thread", scale, 0.8, True)
    left = ours[f"threads_{POOL * 4}"][2]
    check(
        "connections", f"{POOL * 4} threads: at most {POOL} sockets open after", left, POOL, False
    )
    print("| figure | target | rawchat | verdict |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs and 1 round, not 5 and 2")
    parser.add_argument("--json", help="also write the raw figures to this file")
    args = parser.parse_args()
    runs, rounds = (3, 1) if args.quick else (5, 2)
    queue: Any = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(queue, LATENCY), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{queue.get(timeout=10)}/v1"
    try:
        table = collect(base, runs, rounds)
    finally:
        server.terminate()
    if args.json:
        with open(args.json, "w") as out:
            json.dump(table, out, indent=1)
    report(table, runs, rounds)


if __name__ == "__main__":
    main()
