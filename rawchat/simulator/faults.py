"""Fault scripts: the simulator misbehaving on demand, the ways real servers do.

Ask for faults with the ``X-Rawchat-Fault`` request header, or for every
request with ``rawchat serve --fault``. A script is a comma-separated list;
each fault fires once unless a count follows: ``503*2`` fires on two
requests, ``503*`` on all of them. Header faults are counted per API key,
so a client's retries (which resend the header) see the fault run out::

    X-Rawchat-Fault: 429*2               two 429s, then success
    X-Rawchat-Fault: crlf,split,bom      a stream with CRLF pairs split across reads
    X-Rawchat-Fault: delay=1.5*          every answer waits 1.5 s before its headers

=====================  ========================================================
fault                  effect
=====================  ========================================================
``400`` ``401``        that status, with an OpenAI-shaped ``{"error": ...}``
``403`` ``404``        body
``409`` ``422``
``413`` ``415``        (413: an upload over the size limit; 415: a Content-Type
``500`` ``503``        the endpoint does not take)
``429`` / ``429=S``    rate limited: ``retry-after`` (S seconds, default 1),
                       ``retry-after-ms`` and ``x-ratelimit-*`` headers
``slow-down=S``        429 as gateways and Azure send it: ``Retry-After: S``
                       (capitalised, whole seconds) and ``X-Should-Retry``, no ms
``quota``              429 with ``insufficient_quota`` (billing: not retryable)
``502``                502 with a gateway's HTML page, not JSON
``html``               200 with an HTML page (a captive portal, a wrong base URL)
``delay=S``            wait S seconds before sending the headers
``drop``               close the connection before any response
``interval=S``         streams: S seconds between chunks
``stall=S``            streams: stop for S seconds after the first content
``drop-after=N``       streams: close the connection after N events (no final chunk)
``drop-mid-chunk``     streams: close in the middle of the second event
``truncate=N``         streams: end cleanly after N events, without finish or [DONE]
``no-done``            streams: everything but the final ``data: [DONE]``
``after-done``         streams: one more content event after ``data: [DONE]``
``hold-open=S``        streams: keep the connection open, silent, for S seconds
                       (default 30) after the last event (``data: [DONE]``)
``bad-json``           streams: the first content event is malformed JSON
``deep-json``          streams: the first content event is JSON nested 100,000 deep
``empty-data``         streams: a bare ``data:`` line (an event with empty data)
                       between events
``error-mid``          streams: an ``{"error": ...}`` data event after the first content
``error-event``        streams: an ``event: error`` after the first content
``keepalive``          streams: ``: keep-alive`` comments between events
``crlf`` / ``cr``      streams: CRLF or CR line endings
``bom``                streams: a UTF-8 byte order mark first
``split``              streams: HTTP chunks cut inside multi-byte characters and
                       after every CR (with ``crlf``: CRLF pairs split), 1 ms
                       apart so that each arrives in a read of its own
``json-stream``        streams: answer with one plain JSON completion instead
``reasoning``          stream ``reasoning_content`` deltas before the answer
``no-terminal``        Responses streams: everything but the terminal event
                       (``response.completed``): a cut a client must notice
``failed``             Responses streams: ``response.failed`` after the first
                       content, instead of the rest
``trailing-done``      Responses streams: a ``data: [DONE]`` after the terminal
                       event, as OpenRouter sends
``gaps``               Responses streams: ``sequence_number`` skips one value
                       at the first content
``chunk-shape``        streamed transcripts in the chat-chunk shape
                       (``transcription.chunk`` objects, then ``[DONE]``)
``segment-shape``      streamed transcripts as one ``{"text"}`` per segment,
                       with no end marker
=====================  ========================================================

On the audio endpoints (``/v1/audio/...``) the status faults apply as
everywhere. A streamed transcript or an SSE speech stream takes the stream
faults; ``no-done`` (or ``no-terminal``) leaves out its end
(``transcript.text.done``, ``speech.audio.done``, ``[DONE]``). A speech
body streamed as audio takes only the faults that cut or pace it:
``truncate``, ``drop-after``, ``drop-mid-chunk``, ``stall``, ``interval``
and ``hold-open``.

On a Responses stream (``POST /v1/responses``) the stream faults above
mean the same with that API's shapes: the "first content" is the first
``*.delta`` event; ``bad-json`` and ``deep-json`` replace it; ``error-mid``
and ``error-event`` send an ``{"type": "error", ...}`` event (without and
with an ``event: error`` line) after it; ``after-done`` sends one more
delta after the terminal event; ``truncate``, ``drop-after`` and the
framing faults cut and shape the events as for chat. The four
Responses-only faults leave chat streams as they are.

Tool calls stream as argument fragments whenever ``tools`` are offered, and
``deepseek-reasoner`` always reasons, so those need no fault.

Everything here is pure: faults turn a normal response into a misbehaving
one, as values; ``server.py`` carries out the pauses and drops.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

__all__ = [
    "FAULTS",
    "Drop",
    "Fault",
    "FaultError",
    "Pause",
    "Step",
    "error_body",
    "parse_faults",
    "shape_audio_body",
    "shape_audio_stream",
    "shape_response_stream",
    "shape_stream",
    "spaced",
]

#: Fault name -> whether it takes a value (and its default).
FAULTS: Dict[str, Optional[float]] = {
    "400": None, "401": None, "403": None, "404": None, "409": None, "422": None,
    "500": None, "503": None, "429": 1.0, "slow-down": 1.0, "quota": None, "502": None, "html": None,
    "delay": 1.0, "drop": None, "interval": 0.05, "stall": 2.0, "drop-after": 2,
    "drop-mid-chunk": None, "truncate": 2, "no-done": None, "after-done": None,
    "hold-open": 30.0, "bad-json": None, "deep-json": None, "empty-data": None,
    "error-mid": None, "error-event": None, "keepalive": None, "crlf": None, "cr": None,
    "bom": None, "split": None, "json-stream": None, "reasoning": None, "no-terminal": None,
    "failed": None, "trailing-done": None, "gaps": None, "413": None, "415": None,
    "chunk-shape": None, "segment-shape": None,
}  # fmt: skip

STATUS_FAULTS = (
    "400", "401", "403", "404", "409", "413", "415", "422", "429", "500", "502", "503", "quota",
    "slow-down",
)  # fmt: skip

_ITEM = re.compile(r"^([a-z0-9-]+)(?:=([0-9.]+))?(?:\*([0-9]*))?$")


class FaultError(ValueError):
    """A fault script that cannot be understood."""


@dataclass(frozen=True)
class Fault:
    """One fault of a script. ``times`` is ``None`` for "always"."""

    name: str
    value: Optional[float] = None
    times: Optional[int] = 1
    text: str = ""


SPLIT_GAP = 0.001  # seconds between the pieces of a ``split`` stream


@dataclass(frozen=True)
class Pause:
    """Sleep this long before the next step."""

    seconds: float


@dataclass(frozen=True)
class Drop:
    """Close the connection, after announcing a chunk and sending only ``partial`` of it."""

    partial: bytes = b""


Step = Union[bytes, Pause, Drop]


def parse_faults(script: str) -> Tuple[Fault, ...]:
    """``"429*2, crlf"`` -> ``(Fault("429", 1.0, 2), Fault("crlf"))``."""
    faults = []
    for text in (item.strip() for item in script.split(",")):
        if not text:
            continue
        match = _ITEM.match(text.lower())
        if match is None or match.group(1) not in FAULTS:
            raise FaultError(f"unknown fault {text!r}; known faults: " + ", ".join(FAULTS))
        name, value, count = match.groups()
        default = FAULTS[name]
        if value is not None and default is None:
            raise FaultError(f"fault {name!r} takes no value")
        times: Optional[int] = 1
        if count is not None:
            times = int(count) if count else None
        faults.append(Fault(name, float(value) if value is not None else default, times, text))
    return tuple(faults)


def error_body(name: str, value: Optional[float]) -> Tuple[int, List[Tuple[str, str]], bytes]:
    """Status, headers and body of a status fault."""
    if name == "502":
        page = (
            b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
            b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
            b"</body>\r\n</html>\r\n"
        )
        return 502, [("Content-Type", "text/html")], page
    headers: List[Tuple[str, str]] = [("Content-Type", "application/json")]
    message, type_, code = _ERRORS[name]
    status = 429 if name in ("quota", "slow-down") else int(name)
    if name == "429":
        wait = value if value is not None else 1.0
        headers += [
            ("retry-after", str(max(1, int(-(-wait // 1))))),
            ("retry-after-ms", str(int(wait * 1000))),
            ("x-ratelimit-limit-requests", "60"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", f"{wait:g}s"),
            ("x-ratelimit-limit-tokens", "150000"),
            ("x-ratelimit-remaining-tokens", "149990"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]
        message = message.format(wait=f"{wait:g}")
    if name == "slow-down":
        wait = value if value is not None else 1.0
        # Header names are case-insensitive (RFC 9110 section 5.1): real
        # servers capitalise them, and a client must find them anyway.
        headers += [("Retry-After", str(max(1, int(-(-wait // 1))))), ("X-Should-Retry", "true")]
        message = message.format(wait=f"{wait:g}")
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return status, headers, json.dumps(body).encode()


_ERRORS = {
    "400": ("Invalid value for 'temperature': simulated fault.", "invalid_request_error", "invalid_value"),
    "401": ("Incorrect API key provided (simulated fault).", "invalid_request_error", "invalid_api_key"),
    "403": ("Country, region, or territory not supported (simulated fault).", "invalid_request_error", "unsupported_country_region_territory"),
    "404": ("The model does not exist or you do not have access to it (simulated fault).", "invalid_request_error", "model_not_found"),
    "409": ("Another request is in progress (simulated fault).", "invalid_request_error", "conflict"),
    "413": ("Maximum content size limit (26214400) exceeded (26214401 bytes read) (simulated fault)", "server_error", None),
    "415": ("Unsupported Media Type: audio is uploaded as multipart/form-data (simulated fault).", "invalid_request_error", "unsupported_media_type"),
    "422": ("Unprocessable entity (simulated fault).", "invalid_request_error", None),
    "429": ("Rate limit reached for requests per min (RPM): Limit 60, Used 60, Requested 1. Please try again in {wait}s. (simulated fault)", "requests", "rate_limit_exceeded"),
    "slow-down": ("Rate limit reached (simulated fault); retry after {wait} s.", "requests", "rate_limit_exceeded"),
    "quota": ("You exceeded your current quota, please check your plan and billing details. (simulated fault)", "insufficient_quota", "insufficient_quota"),
    "500": ("The server had an error while processing your request. Sorry about that! (simulated fault)", "server_error", None),
    "503": ("The engine is currently overloaded, please try again later. (simulated fault)", "server_error", None),
}  # fmt: skip

HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Sign in to the network</title></head>"
    b"<body><p>Please sign in to continue.</p></body></html>"
)

_BAD_JSON = b'data: {"id":"chatcmpl-sim","choices":[{"index":0,"delta":{"content":"oops"\n\n'
_DEEP_JSON = b"data: " + b"[" * 100_000 + b"\n\n"
_AFTER_DONE = {"id": "chatcmpl-sim", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " (sent after [DONE])"}, "finish_reason": None}]}  # fmt: skip
_ERROR_OBJECT = {"error": {"message": "The server had an error while streaming (simulated fault).", "type": "server_error", "param": None, "code": "stream_error"}}  # fmt: skip


def shape_stream(
    events: Sequence[bytes], faults: Sequence[Fault], first_content: Optional[int] = None
) -> List[Step]:
    """Turn a stream's events (``b"data: ...\\n\\n"`` each) into misbehaving steps.

    ``first_content`` is the index of the first content event: by default
    ``events[1]``, since ``events[0]`` is a chat stream's role chunk.
    """
    names = {f.name: f.value for f in faults}
    events = list(events)
    if first_content is None:
        first_content = min(1, len(events) - 1)
    if "bad-json" in names and len(events) > 1:
        events[1] = _BAD_JSON
    if "deep-json" in names and len(events) > 1:
        events[1] = _DEEP_JSON
    for fault, event in (
        ("error-mid", b"data: " + json.dumps(_ERROR_OBJECT).encode() + b"\n\n"),
        ("error-event", b"event: error\ndata: " + json.dumps(_ERROR_OBJECT).encode() + b"\n\n"),
    ):
        if fault in names:
            events = [*events[: first_content + 1], event]
    ends_with_done = bool(events) and events[-1].startswith(b"data: [DONE]")
    if "no-done" in names and ends_with_done:
        events.pop()
    elif "after-done" in names and ends_with_done:
        events.append(b"data: " + json.dumps(_AFTER_DONE).encode() + b"\n\n")
    if "truncate" in names:
        events = events[: int(names["truncate"] or 0)]
    comment, empty = b": keep-alive\n\n", b"data:\n\n"
    for fault, ending in (("crlf", b"\r\n"), ("cr", b"\r")):
        if fault in names:
            events = [e.replace(b"\n", ending) for e in events]
            comment, empty = (c.replace(b"\n", ending) for c in (comment, empty))
            break
    if "bom" in names and events:
        events[0] = b"\xef\xbb\xbf" + events[0]

    steps: List[Step] = []
    for index, event in enumerate(events):
        if index and "keepalive" in names:
            steps.append(comment)
        if index and "empty-data" in names:
            steps.append(empty)
        steps.append(event)
        if index == first_content and "stall" in names:
            steps.append(Pause(float(names["stall"] or 0)))
    if "drop-after" in names:
        count = int(names["drop-after"] or 0)
        kept = [s for s in steps if isinstance(s, bytes)][:count]
        steps = [*kept, Drop()]
    elif "drop-mid-chunk" in names and len(events) > 1:
        steps = [events[0], Drop(events[1][: len(events[1]) // 2])]
    if "hold-open" in names and not (steps and isinstance(steps[-1], Drop)):
        steps.append(Pause(float(names["hold-open"] or 0)))
    if "split" in names:
        # Pieces sent back to back would reach the client in one read; the
        # gap keeps the cuts where the client's parser has to deal with them.
        steps = spaced([piece for step in steps for piece in _awkward_pieces(step)], SPLIT_GAP)
    if "interval" in names:
        steps = spaced(steps, float(names["interval"] or 0))
    return steps


#: Faults whose shapes differ on a Responses stream: ``shape_response_stream`` applies them.
_RESPONSES_OWN = frozenset(
    ("bad-json", "deep-json", "error-mid", "error-event", "after-done", "no-done", "no-terminal",
     "failed", "trailing-done", "gaps")
)  # fmt: skip
_BAD_EVENT = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"oops"\n\n'
_RESPONSE_ERROR = {"type": "error", "code": "server_error", "message": "The server had an error while streaming (simulated fault).", "param": None}  # fmt: skip


def shape_response_stream(events: Sequence[bytes], faults: Sequence[Fault]) -> List[Step]:
    """Turn a Responses stream's events (``b"event: ...\\ndata: ...\\n\\n"``
    each, the terminal event last) into misbehaving steps."""
    names = {f.name for f in faults}
    decoded = [_data_of(event) for event in events]
    first = next(
        (n for n, data in enumerate(decoded) if str(data.get("type", "")).endswith(".delta")),
        min(1, len(events) - 1),
    )
    events = list(events)
    if "gaps" in names:
        for n in range(first, len(events)):
            decoded[n] = dict(decoded[n], sequence_number=decoded[n]["sequence_number"] + 1)
            events[n] = _named(decoded[n])
    number = decoded[first].get("sequence_number", first) + 1 if decoded else 0
    last = decoded[-1] if decoded else {}
    if "bad-json" in names and events:
        events[first] = _BAD_EVENT
    if "deep-json" in names and events:
        events[first] = _DEEP_JSON
    cut = [*events[: first + 1]]  # the stream up to its first content
    if "failed" in names and isinstance(last.get("response"), dict):
        error = {"code": "server_error", "message": _RESPONSE_ERROR["message"]}
        failed = dict(last["response"], status="failed", error=error, usage=None)
        events = [
            *cut,
            _named({"type": "response.failed", "sequence_number": number, "response": failed}),
        ]
    for fault, line in (("error-mid", b""), ("error-event", b"event: error\n")):
        if fault in names:
            error = json.dumps(dict(_RESPONSE_ERROR, sequence_number=number)).encode()
            events = [*cut, line + b"data: " + error + b"\n\n"]
    # Still ending with its terminal event: no fault above replaced the end.
    ended = len(events) == len(decoded) and last.get("type") in (
        "response.completed",
        "response.incomplete",
    )
    if "no-terminal" in names and ended:
        events.pop()
    elif "after-done" in names and ended:
        extra = {"type": "response.output_text.delta", "sequence_number": last["sequence_number"] + 1, "output_index": 0, "content_index": 0, "delta": " (sent after the end)"}  # fmt: skip
        events.append(_named(extra))
    if "trailing-done" in names:
        events.append(b"data: [DONE]\n\n")
    generic = [f for f in faults if f.name not in _RESPONSES_OWN]
    return shape_stream(events, generic, first_content=first)


def shape_audio_stream(events: Sequence[bytes], faults: Sequence[Fault]) -> List[Step]:
    """Turn a transcript or speech SSE stream (its end event last) into misbehaving steps."""
    names = {f.name for f in faults}
    events = list(events)
    if names & {"no-done", "no-terminal"} and events:
        events.pop()
    generic = [f for f in faults if f.name not in ("no-done", "no-terminal")]
    return shape_stream(events, generic, first_content=0)


#: The faults that make sense on a body of audio: they cut it or pace it.
_AUDIO_BODY = frozenset(
    ("truncate", "drop-after", "drop-mid-chunk", "stall", "interval", "hold-open")
)


def shape_audio_body(pieces: Sequence[bytes], faults: Sequence[Fault]) -> List[Step]:
    """Turn an audio body, in pieces, into steps cut or paced by ``faults``."""
    return shape_stream(pieces, [f for f in faults if f.name in _AUDIO_BODY])


def _data_of(event: bytes) -> Dict[str, Any]:
    """The decoded ``data:`` of one of the simulator's own events."""
    for line in event.split(b"\n"):
        if line.startswith(b"data: "):
            data = json.loads(line[len(b"data: ") :])
            return data if isinstance(data, dict) else {}
    return {}


def _named(data: Dict[str, Any]) -> bytes:
    """An event with its ``event:`` line, as OpenAI sends Responses events."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {data['type']}\ndata: {text}\n\n".encode()


def spaced(steps: List[Step], seconds: float) -> List[Step]:
    """A pause of ``seconds`` before every chunk but the first."""
    result: List[Step] = []
    for step in steps:
        if result and isinstance(step, bytes):
            result.append(Pause(seconds))
        result.append(step)
    return result


def _awkward_pieces(step: Step) -> List[Step]:
    """Cut bytes after every CR and inside every multi-byte UTF-8 character."""
    if not isinstance(step, bytes):
        return [step]
    pieces, start = [], 0
    for index, byte in enumerate(step):
        if byte == 0x0D or 0xC0 <= byte <= 0xF7:  # a CR, or a multi-byte lead byte
            pieces.append(step[start : index + 1])
            start = index + 1
    pieces.append(step[start:])
    return [p for p in pieces if p]
