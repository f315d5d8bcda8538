"""SSE parse throughput: rawchat's SSEParser against sseclient-py (and httpx-sse).

A ~20 MB OpenAI-style chat stream (English and Chinese deltas, a usage
chunk, [DONE]) is cut into random pieces of 1 to 16,384 bytes, so CRLF
pairs and multi-byte UTF-8 characters are split across reads, and each
parser turns it into events. Every parser must produce the same events
before its speed counts. Prints the median of several runs.

    python benchmarks/sse_throughput.py [--mb 20] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from typing import Callable, Dict, List, Tuple

from rawchat.sse import SSEParser
from rawchat.stream import ChatStreamDecoder


def make_stream(megabytes: float, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    words = [
        "the",
        "protocol",
        "stream",
        "token",
        " ",
        "你好",
        "世界",
        "，",
        "数据",
        "event",
        "\n",
        "😀",
    ]
    frames = []
    size = 0
    n = 0
    while size < megabytes * 1_000_000:
        text = "".join(rng.choice(words) for _ in range(rng.randint(1, 6)))
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "gpt-4o-mini",
            "system_fingerprint": "fp_bench",
            "choices": [
                {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}
            ],
        }
        frame = (
            b"data: "
            + json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode()
            + b"\n\n"
        )
        frames.append(frame)
        size += len(frame)
        n += 1
    frames.append(b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n')
    frames.append(b"data: [DONE]\n\n")
    return b"".join(frames)


def cut(data: bytes, seed: int = 2) -> List[bytes]:
    rng = random.Random(seed)
    pieces, start = [], 0
    while start < len(data):
        end = start + rng.randint(1, 16384)
        pieces.append(data[start:end])
        start = end
    return pieces


# Each runner returns its parser's own event objects; they are compared
# (as (event, data) pairs) outside the timed runs.


def run_rawchat(pieces: List[bytes]) -> list:
    parser = SSEParser()
    events = []
    for piece in pieces:
        events += parser.feed(piece)
    return events + parser.close()


def run_rawchat_pipeline(pieces: List[bytes]) -> list:
    """The whole streaming path: SSE, JSON, chunk values, accumulation."""
    decoder = ChatStreamDecoder()
    for piece in pieces:
        decoder.feed(piece)
    decoder.close()
    return []


def run_sseclient(pieces: List[bytes]) -> list:
    import sseclient

    return list(sseclient.SSEClient(iter(pieces)).events())


def run_httpx_sse(pieces: List[bytes]) -> list:
    # httpx-sse's decoders, fed as httpx feeds them: text from an
    # incremental UTF-8 decoder, then lines, then events.
    import codecs

    from httpx_sse._decoders import SSEDecoder, SSELineDecoder

    text = codecs.getincrementaldecoder("utf-8")("replace")
    lines, decoder, events = SSELineDecoder(), SSEDecoder(), []
    for piece in pieces:
        for line in lines.decode(text.decode(piece)):
            event = decoder.decode(line)
            if event is not None:
                events.append(event)
    return events


def pairs(events: list) -> List[Tuple[str, str]]:
    return [(e.event, e.data) for e in events]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    data = make_stream(args.mb)
    pieces = cut(data)
    megabytes = len(data) / 1_000_000
    expected = pairs(run_rawchat(pieces))

    contenders: Dict[str, Callable[[List[bytes]], list]] = {
        "rawchat SSEParser": run_rawchat,
        "sseclient-py": run_sseclient,
    }
    try:
        import httpx_sse  # noqa: F401

        contenders["httpx-sse decoders"] = run_httpx_sse
    except ImportError:
        pass

    print(
        f"stream: {megabytes:.1f} MB, {len(expected):,} events, {len(pieces):,} pieces; "
        f"median of {args.runs} runs; Python {sys.version.split()[0]}"
    )
    results = {}
    for name, run in contenders.items():
        if pairs(run(pieces)) != expected:
            raise SystemExit(f"{name} produced different events; its speed does not count")
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            run(pieces)
            times.append(time.perf_counter() - started)
        results[name] = megabytes / statistics.median(times)

    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        run_rawchat_pipeline(pieces)
        times.append(time.perf_counter() - started)
    pipeline = megabytes / statistics.median(times)

    base = results["sseclient-py"]
    print(f"{'parser':<32}{'MB/s':>8}{'vs sseclient-py':>18}")
    for name, speed in results.items():
        print(f"{name:<32}{speed:8.1f}{speed / base:17.2f}x")
    print(f"{'rawchat SSE+JSON+accumulate':<32}{pipeline:8.1f}{pipeline / base:17.2f}x")


if __name__ == "__main__":
    main()
