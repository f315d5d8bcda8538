"""Replaying a captured chat stream: every event, and every protocol fault in it.

Given the raw bytes of a ``text/event-stream`` body (saved with ``curl -N``,
a proxy, or ``rawchat --trace-file``), ``analyse()`` runs them through the
same parser and chunk interpreter a live stream uses and reports what a
careful reader of the SSE and Chat Completions specs would notice
(https://html.spec.whatwg.org/multipage/server-sent-events.html,
https://platform.openai.com/docs/api-reference/chat-streaming):

* a leading byte order mark, and mixed line endings;
* events that are not JSON, error objects and ``event: error``;
* no ``[DONE]``, events after it (listed, but not part of the answer, as
  a live stream ignores them), an unterminated event at the end;
* no finish reason, or a stream that ends before one.

A Responses API capture (events whose data has a ``type`` such as
``response.created``; https://platform.openai.com/docs/api-reference/responses-streaming)
is recognised and read with that API's decoder instead, and its own faults
reported: no terminal event (``response.completed`` or
``response.incomplete``), ``response.failed`` and ``error`` events,
``sequence_number`` gaps, events after the end.

Pure: bytes in, a ``Replay`` value out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from ..errors import StreamError
from ..protocol.accumulate import Accumulator
from ..protocol.chunks import DONE, Chunk, interpret
from ..protocol.completion import Completion
from ..protocol.response_events import ResponseEvent, ResponseStreamDecoder
from ..protocol.responses import Response
from ..protocol.sse import ServerSentEvent, SSEParser, encode_event

__all__ = ["EventReport", "Replay", "analyse"]


@dataclass(frozen=True)
class EventReport:
    """One event of the capture and what it meant."""

    number: int
    event: str
    summary: str
    fault: str = ""


@dataclass(frozen=True)
class Replay:
    """Everything ``analyse()`` found.

    ``api`` is ``"chat"`` or ``"responses"``; a Responses capture's answer
    is ``response`` (``completion`` is then empty).
    """

    size: int
    events: Tuple[EventReport, ...]
    comments: int
    line_endings: Tuple[Tuple[str, int], ...]
    completion: Completion
    faults: Tuple[str, ...] = field(default=())
    api: str = "chat"
    response: Optional[Response] = None


def analyse(data: bytes) -> Replay:
    """Parse a captured stream and list its events and protocol faults."""
    faults: List[str] = []
    if data.startswith(b"\xef\xbb\xbf"):
        faults.append("the stream starts with a UTF-8 byte order mark (allowed, but unusual)")
    endings = _line_endings(data)
    if len(endings) > 1:
        mixed = ", ".join(f"{count} {name}" for name, count in endings)
        faults.append(f"mixed line endings: {mixed}")

    parser = SSEParser()
    events = parser.feed(data) + parser.close()
    if parser.discarded:
        faults.append("the capture ends inside an event (no blank line after it): it was discarded")
    if _is_responses(events):
        return _analyse_responses(data, events, endings, faults)
    accumulator = Accumulator()
    reports: List[EventReport] = []
    done_at: Optional[int] = None
    for number, event in enumerate(events, 1):
        fault = ""
        try:
            item = interpret(event)
        except StreamError as exc:
            summary, fault = "error", exc.message
            faults.append(f"event #{number}: {exc.message}")
        else:
            if item is DONE:
                summary = "[DONE]"
                done_at = done_at or number
            elif item is None and event.event == "message":
                summary = "empty data, skipped"
            elif item is None:
                summary = f"ignored event type {event.event!r}"
            else:
                if done_at is not None:
                    # The answer ended at [DONE]: a live client ignores this.
                    fault = "after [DONE]"
                    faults.append(f"event #{number} arrives after [DONE]")
                else:
                    accumulator.add(item)  # type: ignore[arg-type]
                summary = _describe(item)  # type: ignore[arg-type]
        reports.append(EventReport(number, event.event, summary, fault))

    if done_at is None:
        faults.append("no data: [DONE] at the end")
    completion = accumulator.completion()
    if not accumulator.finished:
        faults.append("no finish_reason: the answer may be truncated")
    return Replay(
        size=len(data),
        events=tuple(reports),
        comments=len(re.findall(rb"(?:^|[\r\n]):", data)),
        line_endings=endings,
        completion=completion,
        faults=tuple(faults),
    )


def _is_responses(events: List[ServerSentEvent]) -> bool:
    """Whether the first event with data is a Responses API event."""
    for event in events:
        if event.event.startswith("response."):
            return True
        if event.data.strip():
            try:
                obj = json.loads(event.data)
            except (ValueError, RecursionError):
                return False
            return isinstance(obj, dict) and str(obj.get("type", "")).startswith("response.")
    return False


def _analyse_responses(
    data: bytes,
    events: List[ServerSentEvent],
    endings: Tuple[Tuple[str, int], ...],
    faults: List[str],
) -> Replay:
    decoder = ResponseStreamDecoder()
    reports: List[EventReport] = []
    ended_at: Optional[int] = None
    for number, sse in enumerate(events, 1):
        fault, ignored = "", decoder.ignored
        try:
            decoded = decoder.feed(encode_event(sse.data, event=sse.event))
        except StreamError as exc:
            summary, fault = "error", exc.message
            faults.append(f"event #{number}: {exc.message}")
        else:
            if sse.data.strip() == "[DONE]":
                summary = "[DONE] (not part of the Responses protocol; tolerated)"
            elif decoder.ignored > ignored:
                summary, fault = "after the end", "after the terminal event"
                faults.append(f"event #{number} arrives after the terminal event")
            elif decoded:
                summary = _describe_event(decoded[0], named=sse.event == decoded[0].type)
                if decoder.finished and ended_at is None:
                    ended_at = number
            else:
                summary = "empty data, skipped"
        reports.append(EventReport(number, sse.event, summary, fault))
    if ended_at is None and not any(r.summary == "error" for r in reports):
        faults.append("no terminal event (response.completed or response.incomplete): truncated")
    if decoder.gaps:
        missing = ", ".join(str(n) for n in decoder.gaps[:10])
        faults.append(f"sequence_number gaps: {missing} never arrived")
    return Replay(
        size=len(data),
        events=tuple(reports),
        comments=len(re.findall(rb"(?:^|[\r\n]):", data)),
        line_endings=endings,
        completion=Completion(),
        faults=tuple(faults),
        api="responses",
        response=decoder.response(),
    )


def _describe_event(event: ResponseEvent, named: bool) -> str:
    """The event's number, its type (unless its ``event:`` line shows it), what it carries."""
    words = [f"#{event.sequence_number}"] if event.sequence_number is not None else []
    if not named:
        words.append(event.type)
    data = event.data
    for key in ("delta", "text", "arguments", "input"):
        if isinstance(data.get(key), str):
            words.append(f"{key}={data[key]!r}")
            break
    else:
        item, response = data.get("item"), data.get("response")
        if isinstance(item, dict):
            words.append(f"item={item.get('type')}")
        elif isinstance(response, dict):
            words.append(f"status={response.get('status')}")
    return " ".join(words)


def _line_endings(data: bytes) -> Tuple[Tuple[str, int], ...]:
    crlf = data.count(b"\r\n")
    cr = data.count(b"\r") - crlf
    lf = data.count(b"\n") - crlf
    return tuple((name, count) for name, count in (("LF", lf), ("CRLF", crlf), ("CR", cr)) if count)


def _describe(chunk: Chunk) -> str:
    parts = []
    for choice in chunk.choices:
        prefix = f"[{choice.index}] " if len(chunk.choices) > 1 or choice.index else ""
        if choice.role:
            parts.append(f"{prefix}role={choice.role}")
        if choice.reasoning:
            parts.append(f"{prefix}reasoning={choice.reasoning!r}")
        if choice.content:
            parts.append(f"{prefix}content={choice.content!r}")
        if choice.refusal:
            parts.append(f"{prefix}refusal={choice.refusal!r}")
        for call in choice.tool_calls:
            name = f" {call.name}" if call.name else ""
            parts.append(f"{prefix}tool_call[{call.index}]{name} +{call.arguments!r}")
        if choice.finish_reason:
            parts.append(f"{prefix}finish_reason={choice.finish_reason}")
    if chunk.usage is not None:
        usage = chunk.usage
        parts.append(
            f"usage prompt={usage.prompt_tokens} completion={usage.completion_tokens} "
            f"total={usage.total_tokens}"
        )
    return ", ".join(parts) or "(empty delta)"
