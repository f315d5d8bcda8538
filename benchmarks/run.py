"""rawchat against the clients people would pick instead, and a raw-socket floor.

    python -m pip install -e '.[bench]' && python benchmarks/run.py [--quick]

A fast loopback server (its own process, precomputed bytes, no http.server)
answers every client; each client runs in a fresh process; every client
must return exactly the expected text before its figure counts. Figures
are medians, shown with their ratio to the raw-socket floor measured in the
same run. Clients that are not installed are skipped.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Callable, Dict, List, Optional

CLIENTS = ["floor", "rawchat", "requests", "requests+sseclient", "httpx+httpx-sse", "openai"]
IMPORTS = {
    "rawchat": "rawchat",
    "requests": "requests",
    "requests+sseclient": "requests, sseclient",
    "httpx+httpx-sse": "httpx, httpx_sse",
    "openai": "openai",
}
KEY = "sk-bench-0000000000000000"
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()


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
    words = ["你好", " world", " token", "，", " stream"]
    return [_event(words[i % len(words)]) for i in range(chunks)] + [
        _event(None, "stop"),
        b"data: [DONE]\n\n",
    ]


def expected_text(chunks: int) -> str:
    words = ["你好", " world", " token", "，", " stream"]
    return "".join(words[i % len(words)] for i in range(chunks))


def serve(port_queue: multiprocessing.Queue[int], latency: float) -> None:
    """Answers by path: /v1/chat/completions (JSON), /s/N/chat/completions (N-chunk
    chunked stream), /p/chat/completions (first chunk, pause, rest),
    /pc/chat/completions (the same, close-delimited)."""
    json_answer = _completion("ok")
    json_head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        % len(json_answer)
    )
    chunked_head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    close_head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    streams: Dict[int, bytes] = {}

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
                if latency:
                    time.sleep(latency)
                if "/s/" in path:
                    count = int(path.split("/s/")[1].split("/")[0])
                    if count not in streams:
                        streams[count] = chunked(stream_events(count)) + b"0\r\n\r\n"
                    conn.sendall(chunked_head + streams[count])
                elif "/p/" in path or "/pc/" in path:
                    first, rest_events = (
                        _event("first"),
                        [_event(" rest", "stop"), b"data: [DONE]\n\n"],
                    )
                    if "/p/" in path:
                        conn.sendall(chunked_head + chunked([first]))
                        time.sleep(0.2)
                        conn.sendall(chunked(rest_events) + b"0\r\n\r\n")
                    else:
                        conn.sendall(close_head + first)
                        time.sleep(0.2)
                        conn.sendall(b"".join(rest_events))
                        return
                else:
                    conn.sendall(json_head + json_answer)

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port_queue.put(listener.getsockname()[1])
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


# -- the clients (run in a child process) -------------------------------------------


def make_client(name: str, base: str) -> Dict[str, Callable]:
    """``chat(path) -> text`` and ``stream(path) -> iterator of text deltas``."""
    if name == "rawchat":
        import rawchat

        client = rawchat.Client(KEY, base, max_retries=0)
        messages = [{"role": "user", "content": "hi"}]

        def chat(path):
            return _at(client, path).chat(messages, model="m").content

        def stream(path):
            with _at(client, path).stream(messages, model="m", include_usage=False) as s:
                yield from s.text()

        return {"chat": chat, "stream": stream}
    if name in ("requests", "requests+sseclient"):
        import requests

        session = requests.Session()
        headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

        def chat(path):
            return session.post(base + path, data=BODY, headers=headers).json()["choices"][0][
                "message"
            ]["content"]

        def stream(path):
            response = session.post(base + path, data=BODY, headers=headers, stream=True)
            if name == "requests":
                lines = (line[6:] for line in response.iter_lines() if line.startswith(b"data: "))
            else:
                import sseclient

                lines = (
                    e.data
                    for e in sseclient.SSEClient(response.iter_content(chunk_size=None)).events()
                )
            for data in lines:
                if data in (b"[DONE]", "[DONE]"):
                    break
                for choice in json.loads(data)["choices"]:
                    if choice["delta"].get("content"):
                        yield choice["delta"]["content"]

        return {"chat": chat, "stream": stream}
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

        return {"chat": chat, "stream": stream}
    if name == "openai":
        import openai

        def client_for(path):
            return openai.OpenAI(
                api_key=KEY, base_url=base + path.rsplit("/chat/completions", 1)[0], max_retries=0
            )

        cache: Dict[str, object] = {}

        def chat(path):
            client = cache.setdefault(path, client_for(path))
            return (
                client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}]
                )
                .choices[0]
                .message.content
            )

        def stream(path):
            client = cache.setdefault(path, client_for(path))
            for chunk in client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True
            ):
                for choice in chunk.choices:
                    if choice.delta.content:
                        yield choice.delta.content

        return {"chat": chat, "stream": stream}
    return _floor(base)


def _at(client, path):
    """The rawchat client for a benchmark path (the path selects the server's behaviour)."""
    import rawchat

    base = client.settings.base_url.rsplit("/v1", 1)[0] + path.rsplit("/chat/completions", 1)[0]
    cached = _at.__dict__.setdefault("clients", {})
    if base not in cached:
        cached[base] = rawchat.Client(KEY, base, max_retries=0)
    return cached[base]


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
                start = event.find(b"data: ")
                payload = event[start + 6 :]
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

    return {"chat": chat, "stream": stream}


def measure(name: str, base: str, figure: str, runs: int) -> List[float]:
    """Run in a child process: one figure for one client."""
    client = make_client(name, base)
    results = []
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
        for _ in range(runs):
            started = time.perf_counter()
            text = "".join(client["stream"](f"/s/{count}/chat/completions"))
            results.append(count / (time.perf_counter() - started))
            assert text == expected_text(count), "wrong text"
    elif figure in ("first_delta_ms", "first_delta_close_ms"):
        path = "/p/chat/completions" if figure == "first_delta_ms" else "/pc/chat/completions"
        for _ in range(runs):
            started = time.perf_counter()
            deltas = client["stream"](path)
            assert next(deltas) == "first"
            results.append((time.perf_counter() - started) * 1000)
            assert "".join(deltas) == " rest"
    elif figure == "peak_rss_mb":
        import resource

        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        text_length = sum(len(t) for t in client["stream"]("/s/50000/chat/completions"))
        assert text_length == len(expected_text(50000))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        results = [after / 1024, (after - before) / 1024]
    return results


# -- the runner -------------------------------------------------------------------------


def child(name: str, base: str, figure: str, runs: int) -> Optional[List[float]]:
    code = (
        f"import sys, json; sys.path.insert(0, {sys.path[0]!r}); import run; "
        f"print(json.dumps(run.measure({name!r}, {base!r}, {figure!r}, {runs})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        if "ModuleNotFoundError" in result.stderr or "ImportError" in result.stderr:
            return None
        raise SystemExit(f"{name} {figure} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def import_ms(modules: str, runs: int) -> Optional[float]:
    def once(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        return time.perf_counter() - started

    try:
        subprocess.run([sys.executable, "-c", f"import {modules}"], check=True, capture_output=True)
    except subprocess.CalledProcessError:
        return None
    bare = statistics.median(once("pass") for _ in range(runs))
    return (statistics.median(once(f"import {modules}") for _ in range(runs)) - bare) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    args = parser.parse_args()
    runs = 3 if args.quick else 5
    queue: multiprocessing.Queue[int] = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(queue, 0.0), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{queue.get(timeout=10)}/v1"

    figures = [
        "requests_per_s",
        "chunks_per_s",
        "first_delta_ms",
        "first_delta_close_ms",
        "peak_rss_mb",
    ]
    table: Dict[str, Dict[str, Optional[float]]] = {}
    for name in CLIENTS:
        row: Dict[str, Optional[float]] = {
            "import_ms": import_ms(IMPORTS[name], runs) if name in IMPORTS else 0.0
        }
        for figure in figures:
            values = child(name, base, figure, runs)
            if values is None:
                row = {}
                break
            row[figure] = values[0] if figure == "peak_rss_mb" else statistics.median(values)
        if row:
            table[name] = row
        print(f"measured {name}", file=sys.stderr)
    server.terminate()

    floor = table["floor"]
    higher_better = {"requests_per_s", "chunks_per_s"}
    print(
        f"Python {sys.version.split()[0]}, {runs} runs each, medians; (x) = ratio to the "
        "raw-socket floor, or for import time to `import requests`"
    )
    columns = ["import_ms", *figures]
    print("| client | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, row in table.items():
        cells = []
        for column in columns:
            value = row.get(column)
            if value is None:
                cells.append("n/a")
                continue
            if column == "import_ms":
                reference = table.get("requests", {}).get("import_ms") or 0
                ratio = f" ({value / reference:.2f}x)" if reference and name != "floor" else ""
            elif column == "peak_rss_mb":
                ratio = ""
            else:
                base_value = floor[column] or 1e-9
                ratio = (
                    f" ({value / base_value:.2f}x)"
                    if column in higher_better
                    else f" (+{value - base_value:.2f})"
                )
            cells.append(f"{value:.1f}{ratio}" if value >= 10 else f"{value:.3f}{ratio}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
