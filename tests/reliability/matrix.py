"""The fault matrix: every simulator fault against chat, stream and a conversation turn,
with the blocking ``Client`` and with ``AsyncClient`` alike.

Each row says what must happen: the call succeeds after N retries, or it
raises a given typed error; how many attempts the simulator may see; and
an upper bound on the time taken (no hang: stalls end at the read timeout).
``python -m tests.reliability.matrix`` prints the table the README quotes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple

import rawchat
from rawchat.simulator import Simulator

KEY = "sk-matrix-0000000000key"
OPERATIONS = ("chat", "stream", "conversation")
CLIENTS = ("sync", "async")
#: Real time, but every wait cut to 10 ms: schedules run as written, quickly.
SHORT_SLEEPS = rawchat.Clock(
    sleep=lambda s: time.sleep(min(s, 0.01)), asleep=lambda s: asyncio.sleep(min(s, 0.01))
)


@dataclass(frozen=True)
class Expect:
    outcome: str  # "ok" or an error class name
    attempts: int
    seconds: float = 3.0


OK0, OK1, OK2 = Expect("ok", 1), Expect("ok", 2), Expect("ok", 3)

# fault -> expectation per operation (chat, stream, conversation turn, which streams)
MATRIX = {
    "400": [Expect("BadRequestError", 1)] * 3,
    "401": [Expect("AuthenticationError", 1)] * 3,
    "403": [Expect("PermissionDeniedError", 1)] * 3,
    "404": [Expect("NotFoundError", 1)] * 3,
    "409": [OK1] * 3,
    "422": [Expect("UnprocessableEntityError", 1)] * 3,
    "429": [OK1] * 3,
    "429*3": [Expect("RateLimitError", 3)] * 3,
    "quota": [Expect("RateLimitError", 1)] * 3,
    "500": [OK1] * 3,
    "502": [OK1] * 3,
    "503*2": [OK2] * 3,
    "503*": [Expect("InternalServerError", 3)] * 3,
    "html": [Expect("InvalidResponseError", 1)] * 3,
    "delay=0.2": [OK0] * 3,
    "drop": [OK1] * 3,
    "interval=0.01": [OK0] * 3,
    "stall=5": [OK0, Expect("APITimeoutError", 1), Expect("APITimeoutError", 1)],
    "drop-after=1": [OK0, OK1, OK1],
    "drop-after=4": [OK0, Expect("APIConnectionError", 1), Expect("APIConnectionError", 1)],
    "drop-mid-chunk": [OK0, OK1, OK1],
    "truncate=1": [OK0, OK1, OK1],
    "truncate=4": [OK0, Expect("IncompleteStreamError", 1), Expect("IncompleteStreamError", 1)],
    "no-done": [OK0] * 3,
    "after-done": [OK0] * 3,
    "hold-open=5": [OK0] * 3,
    "empty-data": [OK0] * 3,
    "deep-json": [OK0, Expect("StreamError", 1), Expect("StreamError", 1)],
    "bad-json": [OK0, Expect("StreamError", 1), Expect("StreamError", 1)],
    "error-mid": [OK0, Expect("StreamError", 1), Expect("StreamError", 1)],
    "error-event": [OK0, Expect("StreamError", 1), Expect("StreamError", 1)],
    "keepalive": [OK0] * 3,
    "crlf": [OK0] * 3,
    "cr": [OK0] * 3,
    "bom": [OK0] * 3,
    "crlf,split,bom": [OK0] * 3,
    "json-stream": [OK0] * 3,
    "reasoning": [OK0] * 3,
}


@dataclass(frozen=True)
class Row:
    fault: str
    operation: str
    expected: Expect
    outcome: str
    attempts: int
    seconds: float
    history_kept: Optional[bool] = None  # conversations only
    answer: str = ""  # the text handed to the caller, when the call succeeded


def run_case(sim: Simulator, fault: str, operation: str, kind: str = "sync") -> Row:
    """One fault against one operation, with the ``Client`` (``kind="sync"``)
    or the ``AsyncClient`` (``"async"``)."""
    expected = MATRIX[fault][OPERATIONS.index(operation)]
    # Header faults are counted per key (its last four characters): a key of
    # its own for each case.
    options = dict(
        api_key=f"{KEY}-{fault}-{kind[0]}{operation[:3]}", base_url=sim.base_url, timeout=(2, 0.5),
        clock=dataclasses.replace(SHORT_SLEEPS, random=lambda: 0.0),
    )  # fmt: skip
    before = sim.request_count
    headers = {"X-Rawchat-Fault": fault}
    messages = [{"role": "user", "content": "你好"}]
    conversation = rawchat.Conversation(system="S")
    conversation.add({"role": "user", "content": "earlier"})
    conversation.add({"role": "assistant", "content": "answer"})
    saved = json.dumps(conversation.to_dict(), sort_keys=True)
    started = time.monotonic()
    outcome, answer = "ok", ""
    try:
        if kind == "async":
            answer = asyncio.run(_run_async(options, operation, messages, headers, conversation))
        else:
            answer = _run_sync(options, operation, messages, headers, conversation)
    except rawchat.RawchatError as exc:
        outcome = type(exc).__name__
    seconds = time.monotonic() - started
    kept = None
    if operation == "conversation":
        now = json.dumps(conversation.to_dict(), sort_keys=True)
        kept = (now == saved) if outcome != "ok" else (len(conversation.messages) == 5)
    return Row(
        fault, operation, expected, outcome, sim.request_count - before, seconds, kept, answer
    )


def _run_sync(options, operation, messages, headers, conversation) -> str:
    with rawchat.Client(**options) as client:
        if operation == "chat":
            return client.chat(messages, model="gpt-4o-mini", extra_headers=headers).content
        if operation == "stream":
            with client.stream(messages, model="gpt-4o-mini", extra_headers=headers) as stream:
                return "".join(stream.text())
        with conversation.stream(client, "next", model="gpt-4o-mini", extra_headers=headers) as s:
            return "".join(s.text())


async def _run_async(options, operation, messages, headers, conversation) -> str:
    async with rawchat.AsyncClient(**options) as client:
        if operation == "chat":
            done = await client.chat(messages, model="gpt-4o-mini", extra_headers=headers)
            return done.content
        if operation == "stream":
            async with client.stream(messages, model="gpt-4o-mini", extra_headers=headers) as s:
                return "".join([text async for text in s.text()])
        async with conversation.stream_async(
            client, "next", model="gpt-4o-mini", extra_headers=headers
        ) as s:
            return "".join([text async for text in s.text()])


def run_matrix() -> List[Row]:
    rows = []
    with Simulator() as sim:
        for fault in MATRIX:
            for operation in OPERATIONS:
                rows.append(run_case(sim, fault, operation))
    return rows


def table(rows: List[Row]) -> str:
    lines = ["| fault | chat | stream | conversation turn |", "|---|---|---|---|"]
    by_fault: dict = {}
    for row in rows:
        cell = row.outcome if row.outcome != "ok" else f"ok after {row.attempts - 1} retries"
        cell += f", {row.attempts} attempt{'s' if row.attempts != 1 else ''}, {row.seconds:.2f} s"
        by_fault.setdefault(row.fault, []).append(cell)
    for fault, cells in by_fault.items():
        lines.append(f"| `{fault}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sockets_open(server_port: Optional[int] = None) -> Tuple[int, ...]:
    """Open sockets of this process (Linux), to check the pool does not leak.

    With ``server_port``, the simulator's own ends of its connections (and
    its listening socket) are left out: a server asleep in a fault such as
    ``stall=5`` closes its end only when it wakes, which says nothing about
    the client.
    """
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    if server_port is not None:
        for table_path in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table_path) as table_file:
                    rows = table_file.read().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                fields = row.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == server_port:
                    inodes.discard(fields[9])
    return (len(inodes),)


if __name__ == "__main__":
    print(table(run_matrix()))
