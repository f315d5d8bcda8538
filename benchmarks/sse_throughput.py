"""SSE parse throughput: rawchat's SSEParser against a faster variant and other clients' parsers.

A ~20 MB OpenAI-style chat stream (English and Chinese deltas, a usage
chunk, [DONE]) is cut into random pieces of 1 to 16,384 bytes, so CRLF
pairs and multi-byte UTF-8 characters are split across reads, and each
parser turns it into events. Every parser must produce the stream's events
before its speed counts. Prints the median of several runs, as MB/s and as
microseconds per event (one event is one token of a chat stream); parsers
that are not installed are skipped. ``run.py`` uses the same parsers.

``fast_sse.py`` (benchmark-only) is the parser with the shortcuts the
package leaves out; the last line times the package's whole sans-I/O
streaming path (SSE, JSON, chunk values, accumulation).

    python benchmarks/sse_throughput.py [--mb 20] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Tuple

# Each parser imports its own package when it runs: run.py loads this module
# in every client's process, and none should carry another client's code.


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


# Each parser returns the events' data (the stream has only "message"
# events) and lets the event objects go, as a stream reader does: holding
# 80,000 of them would time the garbage collector, not the parser.


def parse_rawchat(pieces: List[bytes]) -> List[str]:
    from rawchat.protocol.sse import SSEParser

    return _feed(SSEParser(), pieces)


def parse_fast_sse(pieces: List[bytes]) -> List[str]:
    from fast_sse import FastSSEParser

    return _feed(FastSSEParser(), pieces)


def _feed(parser: Any, pieces: List[bytes]) -> List[str]:
    datas = []
    for piece in pieces:
        datas += [event.data for event in parser.feed(piece)]
    parser.close()
    return datas


def parse_sseclient(pieces: List[bytes]) -> List[str]:
    import sseclient

    return [event.data for event in sseclient.SSEClient(iter(pieces)).events()]


def parse_httpx_sse(pieces: List[bytes]) -> List[str]:
    # httpx-sse's decoders, fed as httpx feeds them: text from an
    # incremental UTF-8 decoder, then lines, then events.
    import codecs

    from httpx_sse._decoders import SSEDecoder, SSELineDecoder

    text = codecs.getincrementaldecoder("utf-8")("replace")
    lines, decoder, datas = SSELineDecoder(), SSEDecoder(), []
    for piece in pieces:
        for line in lines.decode(text.decode(piece)):
            event = decoder.decode(line)
            if event is not None:
                datas.append(event.data)
    return datas


def parse_openai(pieces: List[bytes]) -> List[str]:
    from openai._streaming import SSEDecoder

    return [event.data for event in SSEDecoder().iter_bytes(iter(pieces))]


def run_rawchat_pipeline(pieces: List[bytes]) -> None:
    """The whole streaming path: SSE, JSON, chunk values, accumulation."""
    from rawchat.protocol.chat_stream import ChatStreamDecoder

    decoder = ChatStreamDecoder()
    for piece in pieces:
        for _ in decoder.iter_feed(piece):
            pass
    decoder.close()


def make_responses_stream(data: bytes) -> bytes:
    """The same answer as ``data``'s chat chunks, as a Responses API stream.

    One ``response.output_text.delta`` event per chat chunk, with the
    ``event:`` line and ``sequence_number`` OpenAI sends, between the
    events that open and close the message item and the response.
    """
    texts = [json.loads(frame[6:])["choices"][0]["delta"].get("content", "") for frame in
             data.split(b"\n\n") if frame.startswith(b"data: {")]  # fmt: skip
    item = {"id": "msg_bench", "type": "message", "role": "assistant", "status": "in_progress",
            "content": []}  # fmt: skip
    response = {"id": "resp_bench", "object": "response", "status": "in_progress",
                "model": "gpt-4o-mini", "output": []}  # fmt: skip
    events: List[Dict[str, Any]] = [
        {"type": "response.created", "response": response},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
    ]
    events += [
        {
            "type": "response.output_text.delta",
            "item_id": "msg_bench",
            "output_index": 0,
            "content_index": 0,
            "delta": text,
        }
        for text in texts
        if text
    ]
    whole = "".join(texts)
    part = {"type": "output_text", "text": whole, "annotations": []}
    done_item = dict(item, status="completed", content=[part])
    events += [
        {"type": "response.output_item.done", "output_index": 0, "item": done_item},
        {
            "type": "response.completed",
            "response": dict(response, status="completed", output=[done_item]),
        },
    ]
    frames = []
    for number, event in enumerate(events):
        event["sequence_number"] = number
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        frames.append(f"event: {event['type']}\ndata: {body}\n\n".encode())
    return b"".join(frames)


def run_responses_pipeline(pieces: List[bytes]) -> str:
    """The Responses streaming path: SSE, JSON, event values, accumulation."""
    from rawchat.protocol.response_events import ResponseStreamDecoder

    decoder = ResponseStreamDecoder()
    for piece in pieces:
        for _ in decoder.iter_feed(piece):
            pass
    return decoder.close().output_text


PARSERS: Dict[str, Tuple[str, Callable[[List[bytes]], List[str]]]] = {
    "rawchat SSEParser": ("rawchat", parse_rawchat),
    "fast_sse.py (benchmark only)": ("fast_sse", parse_fast_sse),
    "sseclient-py": ("sseclient", parse_sseclient),
    "httpx-sse decoders": ("httpx_sse", parse_httpx_sse),
    "openai SDK SSEDecoder": ("openai", parse_openai),
}


def expected_data(data: bytes) -> List[str]:
    """The events' data, read off the generator's own framing (LF only, data only)."""
    return [event[6:].decode() for event in data.split(b"\n\n") if event]


def median_seconds(run: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for fast_sse

    data = make_stream(args.mb)
    pieces = cut(data)
    megabytes = len(data) / 1_000_000
    expected = expected_data(data)
    print(
        f"stream: {megabytes:.1f} MB, {len(expected):,} events, {len(pieces):,} pieces; "
        f"median of {args.runs} runs; Python {sys.version.split()[0]}"
    )
    seconds = {}
    for name, (module, parse) in PARSERS.items():
        try:
            __import__(module)
        except ImportError:
            continue
        if parse(pieces) != expected:
            raise SystemExit(f"{name} produced different events; its speed does not count")
        seconds[name] = median_seconds(lambda: parse(pieces), args.runs)  # noqa: B023
    seconds["rawchat SSE+JSON+accumulate"] = median_seconds(
        lambda: run_rawchat_pipeline(pieces), args.runs
    )

    # The Responses API carries the same answer in named events: decoded per text delta.
    answer = make_responses_stream(data)
    answer_pieces = cut(answer)
    chat_text = "".join(
        json.loads(e)["choices"][0]["delta"].get("content", "")
        for e in expected
        if e.startswith("{")
    )
    if run_responses_pipeline(answer_pieces) != chat_text:
        raise SystemExit("the Responses decoder assembled a different answer")
    responses_seconds = median_seconds(lambda: run_responses_pipeline(answer_pieces), args.runs)

    base = seconds["sseclient-py"]
    print(f"{'parser':<32}{'MB/s':>8}{'us/event':>10}{'vs sseclient-py':>18}")
    for name, took in seconds.items():
        print(
            f"{name:<32}{megabytes / took:8.1f}{took / len(expected) * 1e6:10.2f}"
            f"{base / took:17.2f}x"
        )
    chat = seconds["rawchat SSE+JSON+accumulate"]
    print()
    print(f"the same answer decoded whole: {len(expected):,} chat chunks, {len(answer):,} bytes as")
    print("a Responses stream (one output_text.delta event per chunk)")
    print(f"{'decoder':<32}{'MB/s':>8}{'us/delta':>10}")
    print(
        f"{'chat: ChatStreamDecoder':<32}{megabytes / chat:8.1f}{chat / len(expected) * 1e6:10.2f}"
    )
    print(
        f"{'Responses: ResponseStreamDecoder':<32}{len(answer) / 1e6 / responses_seconds:8.1f}"
        f"{responses_seconds / len(expected) * 1e6:10.2f}"
    )


if __name__ == "__main__":
    main()
