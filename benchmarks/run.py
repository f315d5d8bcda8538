"""rawchat against the clients people would pick instead, and a raw-socket floor.

    python -m pip install -e '.[bench]' && python benchmarks/run.py [--quick] [--before TREE]

A fast loopback server (its own process, precomputed bytes, no http.server)
answers every client; each client runs each figure in a fresh process and
must return exactly the expected text (or events) before its figure counts.
Figures are medians, each shown with its ratio to the raw-socket floor
measured in the same run; a second table checks rawchat's targets. Clients
that are not installed are skipped.

``--before TREE`` adds "rawchat (before)": the rawchat package found in the
source tree TREE (an older checkout, say ``git worktree add /tmp/before
REV``), measured in the same run and interleaved with the others, next to
"rawchat" from the tree this script belongs to. Each rawchat runs with its
tree first on ``PYTHONPATH`` and is checked to have loaded from there; the
code that drives it uses only the API both versions have.

The figures:

* import + client ms: what a program waits for before it can send: the
  import and a client made (``import rawchat; rawchat.Client(api_key=...,
  base_url=...)``, ``import requests; requests.Session()``...), timed inside
  a fresh interpreter with bytecode compiled beforehand, as an installed
  package has it.
* requests/s: sequential non-streaming calls over one kept-alive connection.
* chunks/s: one 5,000-chunk stream, read to the end.
* first delta: the server sends the first event, then pauses 200 ms; the
  time from the request's start, and from the server's flush, until the
  client yields the first text. Chunked, and close-delimited (no length, no
  chunking, as some proxies send).
* SSE parse MB/s: each client's own SSE parser on a 20 MB chat stream cut
  into random 1-16,384-byte pieces (split CRLF-free lines and UTF-8).
* decode MB/s (rawchat only): the same stream through the whole sans-I/O
  streaming path, ``ChatStreamDecoder``: SSE, JSON, chunks, the assembled
  answer.
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
BEFORE = "rawchat (before)"
RAWCHATS = ("rawchat", BEFORE)
CLIENTS = ["floor", *RAWCHATS, "requests", "requests+sseclient", "httpx+httpx-sse", "openai"]
# The source tree each rawchat is loaded from: this checkout, and --before's.
TREES: Dict[str, str] = {"rawchat": os.path.dirname(HERE)}
KEY = "sk-bench-0000000000000000"
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
LATENCY = 0.01  # seconds the server takes per request in the concurrency figure
POOL = 10  # rawchat's and requests' default connections per host
WORDS = ["你好", " world", " token", "，", " stream"]

# What a program runs before it can send: the import, and a client made.
RAWCHAT_READY = ("import rawchat", "rawchat.Client(api_key={key!r}, base_url={base!r})")
IMPORTS = {
    "rawchat": RAWCHAT_READY,
    BEFORE: RAWCHAT_READY,
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
    ``parse(pieces) -> list of event data`` (the client's own SSE parser),
    ``answer(path) -> the whole streamed text`` (the deltas joined, unless the
    client has a way of its own), and for rawchat ``decode(pieces) -> the
    answer's text`` (the sans-I/O streaming path)."""
    client = _make_client(name, base)
    client.setdefault("answer", lambda path: "".join(client["stream"](path)))
    return client


def _make_client(name: str, base: str) -> Dict[str, Callable]:
    sys.path.insert(0, HERE)
    import sse_throughput

    if name in RAWCHATS:
        return _rawchat(base)
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


def _rawchat(base: str) -> Dict[str, Callable]:
    """rawchat from the tree first on ``PYTHONPATH``, through the API every version has."""
    import rawchat

    _check_tree(rawchat)
    messages = [{"role": "user", "content": "hi"}]
    clients: Dict[str, Any] = {}

    def at(path: str) -> Any:
        # The path picks the server's behaviour, so it goes in the base URL.
        prefix = path.rsplit("/chat/completions", 1)[0]
        if prefix not in clients:
            clients[prefix] = rawchat.Client(api_key=KEY, base_url=base + prefix, max_retries=0)
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

    def parse(pieces):
        parser = rawchat.SSEParser()
        datas = []
        for piece in pieces:
            datas += [event.data for event in parser.feed(piece)]
        parser.close()
        return datas

    def decode(pieces):
        decoder = _chat_stream_decoder()()
        for piece in pieces:
            for _ in decoder.iter_feed(piece):
                pass
        return decoder.close().content

    return {"chat": chat, "stream": stream, "answer": answer, "parse": parse, "decode": decode}


def _check_tree(module: Any) -> None:
    """Refuse to measure a rawchat other than the one the label names."""
    tree = os.environ.get("PYTHONPATH", "").split(os.pathsep)[0]
    home = os.path.dirname(os.path.dirname(os.path.realpath(module.__file__)))
    if not os.path.realpath(module.__file__).startswith(os.path.join(os.path.realpath(tree), "")):
        raise RuntimeError(f"{module.__name__} was loaded from {home}, not from {tree}")


def _check_loaded() -> None:
    # An editable install's finder serves any rawchat module the tree lacks
    # from the installed checkout, which would mix two versions in one process.
    for name, module in list(sys.modules.items()):
        if (name == "rawchat" or name.startswith("rawchat.")) and getattr(module, "__file__", None):
            _check_tree(module)


def _chat_stream_decoder() -> Any:
    """The tree's ChatStreamDecoder: in rawchat.stream, later in rawchat.protocol.chat_stream.

    The older home is tried first: asking an older tree for the newer one
    could load it from an editable install instead (see ``_check_loaded``).
    """
    import importlib

    for home in ("rawchat.stream", "rawchat.protocol.chat_stream"):
        try:
            module = importlib.import_module(home)
        except ImportError:
            continue
        if hasattr(module, "ChatStreamDecoder"):
            _check_tree(module)
            return module.ChatStreamDecoder
    raise ImportError("no ChatStreamDecoder in rawchat.stream or rawchat.protocol.chat_stream")


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
    elif figure == "decode_mb_s":
        from sse_throughput import cut, expected_data, make_stream

        data = make_stream(20)
        chunks = [json.loads(d) for d in expected_data(data) if d != "[DONE]"]
        expected = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
        pieces = cut(data)
        assert client["decode"](pieces) == expected, "wrong answer"
        for _ in range(runs):
            started = time.perf_counter()
            client["decode"](pieces)
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
    if name in RAWCHATS:
        _check_loaded()
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


def environment(name: str, bytecode: bool = False) -> Dict[str, str]:
    """A child's environment: a rawchat's own tree first on ``PYTHONPATH``; with
    ``bytecode``, allowed to write the bytecode an installed package would have."""
    env = dict(os.environ)
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    if name in TREES:
        env["PYTHONPATH"] = os.pathsep.join([TREES[name], *filter(None, [env.get("PYTHONPATH")])])
    return env


def python(name: str, code: str, bytecode: bool = False) -> subprocess.CompletedProcess[str]:
    # Started from this folder: under -c the working directory leads sys.path,
    # and in a checkout it would put that checkout's rawchat before the tree's.
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=HERE,
        env=environment(name, bytecode),
        timeout=900,
    )


def child(name: str, base: str, figure: str, runs: int) -> List[float]:
    code = (
        f"import sys, json; sys.path.insert(0, {HERE!r}); import run; "
        f"print(json.dumps(run.measure({name!r}, {base!r}, {figure!r}, {runs})))"
    )
    result = python(name, code)
    if result.returncode != 0:
        raise SystemExit(f"{name} {figure} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def import_ms(names: List[str], base: str, runs: int) -> Dict[str, List[float]]:
    """For each client, ms samples of the import with a client made.

    The samples are interleaved across clients, so that the machine's slow
    spells fall on all of them alike.
    """

    def once(name: str, code: str) -> float:
        timed = f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
        out = python(name, timed, bytecode=True)
        if out.returncode != 0:
            raise SystemExit(f"{name} import failed:\n{out.stderr[-2000:]}")
        return float(out.stdout) * 1000

    codes = {name: "; ".join(IMPORTS[name]).format(key=KEY, base=base) for name in names}
    for name, code in codes.items():
        once(name, code)  # writes the bytecode an installed package would have
    samples: Dict[str, List[float]] = {name: [] for name in names}
    for _ in range(max(runs * 3, 11)):
        for name, code in codes.items():
            samples[name].append(once(name, code))
    return samples


def installed(name: str) -> bool:
    if name == "floor":
        return True
    if name in RAWCHATS:
        if name not in TREES:
            return False
        # A rawchat that does not load is a broken tree, not a missing peer.
        result = python(name, "import rawchat, run; run._check_tree(rawchat)")
        if result.returncode != 0:
            raise SystemExit(f"{name} from {TREES[name]} does not load:\n{result.stderr[-2000:]}")
        return True
    return python(name, IMPORTS[name][0]).returncode == 0


SERIES = {"requests_per_s", "chunks_per_s", "sse_mb_s", "decode_mb_s"}
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
    wanted = [name for name in CLIENTS if name not in RAWCHATS or name in TREES]
    names = [name for name in wanted if installed(name)]
    for name in sorted(set(wanted) - set(names)):
        print(f"skipped {name}: not installed", file=sys.stderr)
    table: Dict[str, Dict[str, Any]] = {name: {} for name in names}
    for name, samples in import_ms([n for n in names if n != "floor"], base, runs).items():
        table[name]["import"] = statistics.median(samples)
    table["floor"]["import"] = 0.0
    print("measured import", file=sys.stderr)
    rawchats = [name for name in RAWCHATS if name in names]
    scaling = [f"threads_{n}" for n in SCALING if f"threads_{n}" not in FIGURES]
    for figure in [*FIGURES, "decode_mb_s", *scaling]:
        clients = names if figure in FIGURES else rawchats
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
    return f"{text} ({value - floor:+.2f})"


def report(table: Dict[str, Dict[str, Any]], runs: int, rounds: int) -> None:
    floor = table["floor"]
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} cores; medians of {rounds} fresh "
        f"processes x {runs} runs; (x) is the ratio to the raw-socket floor, (+) the ms "
        "above it; import + client ms are net of the interpreter's start, (x) there is the "
        "ratio to requests"
    )
    for name in RAWCHATS:
        if name in TREES and name in table:
            print(f"{name}: {TREES[name]}")
    columns = [
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
    requests_import = table["requests"]["import"] if "requests" in table else None
    for name, row in table.items():
        ratio = f" ({row['import'] / requests_import:.2f}x)" if requests_import else ""
        cells = [f"{row['import']:.1f}{ratio if name != 'floor' else ''}"]
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

    rawchats = [name for name in RAWCHATS if name in table]
    print()
    print(f"Threads sharing one client, {LATENCY * 1000:.0f} ms per request, pool {POOL}:")
    print(
        "| threads | "
        + " | ".join(f"{name} req/s (per thread; opened, open after)" for name in rawchats)
        + " |"
    )
    print("|---" * (len(rawchats) + 1) + "|")
    for threads in SCALING:
        cells = []
        for name in rawchats:
            rate, opened, left = table[name][f"threads_{threads}"]
            cells.append(f"{rate:,.0f} ({rate / threads:.1f}; {opened:.0f}, {left:.0f})")
        print(f"| {threads} | " + " | ".join(cells) + " |")
    print()
    compare(table)
    print()
    targets(table)


def compare(table: Dict[str, Dict[str, Any]]) -> None:
    """The rawchats side by side; with --before, what the later one changed."""
    rawchats = [name for name in RAWCHATS if name in table]
    series = statistics.median
    rows: List[Any] = [  # figure, value of a row, and the change as a ratio (or a difference)
        ("import + client ms", lambda row: row["import"], True),
        ("requests/s", lambda row: series(row["requests_per_s"]), True),
        ("chunks/s", lambda row: series(row["chunks_per_s"]), True),
        ("first delta ms, chunked, from start", lambda row: row["first_delta"][0], False),
        ("first delta ms, chunked, from flush", lambda row: row["first_delta"][1], False),
        ("first delta ms, close-delimited, from start", lambda r: r["first_delta_close"][0], False),
        ("first delta ms, close-delimited, from flush", lambda r: r["first_delta_close"][1], False),
        ("SSE parse MB/s (`rawchat.SSEParser`)", lambda row: series(row["sse_mb_s"]), True),
        ("decode MB/s (`ChatStreamDecoder`)", lambda row: series(row["decode_mb_s"]), True),
        ("peak RSS MB", lambda row: row["memory"][0], True),
        ("RSS growth MB", lambda row: row["memory"][1], False),
        (f"{POOL} threads req/s", lambda row: row[f"threads_{POOL}"][0], True),
        (f"{POOL * 2} threads req/s", lambda row: row[f"threads_{POOL * 2}"][0], True),
    ]
    change = len(rawchats) == 2
    print(" against ".join(rawchats) + ", medians as above:" if change else "rawchat's figures:")
    print("| figure | " + " | ".join(rawchats) + (" | change |" if change else " |"))
    print("|---" * (len(rawchats) + 1 + change) + "|")
    for figure, value, as_ratio in rows:
        values = [value(table[name]) for name in rawchats]
        cells = [_cell(v) if v >= 0 else f"{v:.2f}" for v in values]
        if change:
            now, before = values
            ratio = before and now / before
            cells.append(f"{ratio:.2f}x" if as_ratio and ratio else f"{now - before:+.2f}")
        print(f"| {figure} | " + " | ".join(cells) + " |")


def targets(table: Dict[str, Dict[str, Any]]) -> None:
    """rawchat's targets, each with the figure that decides it, for every rawchat measured."""
    rawchats = [name for name in RAWCHATS if name in table]
    floor = table["floor"]

    def ratio(figure: str, peer: str) -> Callable[[str], Optional[float]]:
        def of(name: str) -> Optional[float]:
            if peer not in table:
                return None
            return statistics.median(table[name][figure]) / statistics.median(table[peer][figure])

        return of

    def above_floor(figure: str, index: int) -> Callable[[str], float]:
        return lambda name: table[name][figure][index] - floor[figure][index]

    def imports(name: str) -> Optional[float]:
        return table[name]["import"] / table["requests"]["import"] if "requests" in table else None

    def rss(name: str) -> Optional[float]:
        peers = [table[n]["memory"][0] for n in ("requests", "requests+sseclient") if n in table]
        return table[name]["memory"][0] - min(peers) if peers else None

    def scale(name: str) -> float:
        return table[name][f"threads_{POOL}"][0] / (POOL * table[name]["threads_1"][0])

    # figure, target, value, limit (None: reported, not checked), higher is better, unit
    rows: List[Any] = [
        ("import + client", "at most 1.25x `import requests; requests.Session()`", imports,
         1.25, False, "x"),
        ("requests/s", "at least 0.9x plain requests", ratio("requests_per_s", "requests"),
         0.9, True, "x"),
        ("chunks/s", "at least 0.8x requests `iter_lines`", ratio("chunks_per_s", "requests"),
         0.8, True, "x"),
        ("chunks/s", "at least 10x the openai SDK", ratio("chunks_per_s", "openai"),
         10, True, "x"),
        ("first delta, chunked", "within 0.5 ms of the floor, from the server's flush",
         above_floor("first_delta", 1), 0.5, False, "ms"),
        ("first delta, chunked", "ms above the floor, from the request's start (reported)",
         above_floor("first_delta", 0), None, False, "ms"),
        ("first delta, close-delimited", "ms above the floor, from the flush (reported)",
         above_floor("first_delta_close", 1), None, False, "ms"),
        ("first delta, close-delimited", "ms above the floor, from the start (reported)",
         above_floor("first_delta_close", 0), None, False, "ms"),
        ("SSE parse", "at least 2x sseclient-py", ratio("sse_mb_s", "requests+sseclient"),
         2, True, "x"),
        ("SSE parse", "at least 1.5x httpx-sse", ratio("sse_mb_s", "httpx+httpx-sse"),
         1.5, True, "x"),
        ("peak RSS", "MB above the requests-based peers (at most 0)", rss, 0.0, False, "MB"),
        ("RSS growth", "MB a second 50,000-chunk stream adds (at most 0.5)",
         lambda name: table[name]["memory"][1], 0.5, False, "MB"),
        ("concurrency", f"{POOL} threads: at least 0.8 x {POOL} x one thread", scale,
         0.8, True, ""),
        ("connections", f"{POOL * 4} threads: at most {POOL} sockets open after",
         lambda name: table[name][f"threads_{POOL * 4}"][2], POOL, False, "sockets"),
    ]  # fmt: skip
    formats = {"x": "{:.2f}x", "ms": "{:+.2f} ms", "MB": "{:+.2f} MB", "": "{:.2f}"}
    print("rawchat's targets:")
    print("| figure | target | " + " | ".join(rawchats) + " |")
    print("|---|---" + "|---" * len(rawchats) + "|")
    for figure, target, value, limit, higher, unit in rows:
        cells = []
        for name in rawchats:
            result = value(name)
            if result is None:
                cells.append("n/a, peer not installed")
                continue
            text = formats.get(unit, "{:.0f} " + unit).format(result)
            if limit is None:
                cells.append(text)
            else:
                met = result >= limit if higher else result <= limit
                cells.append(f"{text}, {'met' if met else 'not met'}")
        print(f"| {figure} | {target} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs and 1 round, not 5 and 2")
    parser.add_argument(
        "--before",
        metavar="TREE",
        help='also measure "rawchat (before)": the rawchat package in this source tree',
    )
    parser.add_argument("--json", help="also write the raw figures to this file")
    args = parser.parse_args()
    if args.before:
        tree = os.path.abspath(args.before)
        if not os.path.isfile(os.path.join(tree, "rawchat", "__init__.py")):
            parser.error(f"--before: no rawchat package in {tree}")
        TREES[BEFORE] = tree
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
