"""Chat completion chunks: what each server-sent event of a stream means.

A streamed chat completion is a sequence of SSE events whose data is a
chat completion chunk object
(https://platform.openai.com/docs/api-reference/chat-streaming/streaming),
each carrying ``choices[i].delta`` fragments, and then the literal
``data: [DONE]``. What this module makes explicit:

* With ``stream_options.include_usage`` the last chunk has ``"choices": []``
  and the ``usage``: reading ``choices[0]`` there crashes naive clients.
* An error can arrive inside a 200 stream, as a data event holding
  ``{"error": {...}}`` or as ``event: error``; it raises ``StreamError``
  with the provider's message.
* A malformed chunk (not JSON, not an object, JSON nested too deeply for
  the parser) raises ``StreamError`` quoting it, instead of a
  ``JSONDecodeError`` or ``RecursionError`` from deep inside.
* An event with empty data (a bare ``data:`` line, sent by some servers
  and proxies as a keep-alive) carries nothing and is skipped.
* Reasoning deltas come as ``reasoning_content`` (DeepSeek) or
  ``reasoning`` (OpenRouter, vLLM); both land in ``reasoning``.
* A choice's ``delta`` is read by the code that reads a plain answer's
  ``message`` (``completion.read_choice``), so both paths agree on every
  field; a whole completion sent to a stream request reads as one big delta.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from ..errors import StreamError
from .completion import ChoiceDelta, ToolCallDelta, Usage, read_choice, read_envelope
from .response import error_details
from .sse import ServerSentEvent

__all__ = [
    "DONE",
    "ChoiceDelta",
    "Chunk",
    "Done",
    "ToolCallDelta",
    "chunk_from_object",
    "event_object",
    "excerpt",
    "interpret",
    "loads_or_text",
    "stream_error",
]


class Done:
    """The ``data: [DONE]`` sentinel that ends a chat stream."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DONE"


DONE = Done()


@dataclass(frozen=True)
class Chunk:
    """One decoded ``chat.completion.chunk``.

    ``choices`` holds what this chunk adds to each choice (a
    ``ChoiceDelta``, read as a plain answer's message is: see
    ``completion.read_choice``); ``usage`` comes in the last chunk, with no
    choices, when ``stream_options.include_usage`` asked for it; ``raw`` is
    the decoded JSON object.
    """

    id: str = ""
    model: str = ""
    created: int = 0
    choices: Tuple[ChoiceDelta, ...] = ()
    usage: Optional[Usage] = None
    system_fingerprint: Optional[str] = None
    raw: Optional[Mapping[str, Any]] = None

    @property
    def content(self) -> str:
        """The text this chunk adds to the first choice (``""`` if none)."""
        for choice in self.choices:
            if choice.index == 0:
                return choice.content or ""
        return ""


def interpret(event: ServerSentEvent) -> Union[Chunk, Done, None]:
    """One SSE event of a chat stream: a ``Chunk``, ``DONE``, or ``None``.

    ``None`` is for events that carry nothing for us (an unknown event
    type, such as a provider's ``event: ping``, or empty data).
    """
    data = event.data
    if event.event == "error":
        raise stream_error(loads_or_text(data), data)
    stripped = data.strip()
    if event.event != "message" or not stripped:
        return None
    if stripped == "[DONE]":
        return DONE
    obj = event_object(data, "chunk")
    if "error" in obj and not obj.get("choices"):
        raise stream_error(obj, data)
    return chunk_from_object(obj)


def event_object(data: str, what: str) -> Dict[str, Any]:
    """An event's data parsed as the JSON object it must be, or ``StreamError``.

    ``what`` names it in the message ("chunk", "event"). Chat chunks,
    Responses events and audio stream events are all read here.
    """
    try:
        obj = json.loads(data)
    except ValueError:
        raise StreamError(
            f"malformed {what}, not JSON: {excerpt(data)}",
            hint="the server or a proxy corrupted the stream; `rawchat replay` "
            "shows a saved capture event by event",
            body=data,
        ) from None
    except RecursionError:
        # json.loads recurses once per level of nesting: a hostile "[[[[..."
        # runs out of stack long before it runs out of input.
        raise StreamError(
            f"malformed {what}, nested too deeply to parse: {excerpt(data)}", body=data
        ) from None
    if not isinstance(obj, dict):
        raise StreamError(f"malformed {what}, not a JSON object: {excerpt(data)}", body=data)
    return obj


def chunk_from_object(obj: Mapping[str, Any]) -> Chunk:
    """A decoded chunk object to a ``Chunk``.

    Also accepts a whole (non-streamed) completion, reading each choice's
    ``message`` as one big delta: some servers answer a stream request
    that way, and callers should not have to care.
    """
    choices = obj.get("choices") or []
    if not isinstance(choices, list):
        raise StreamError("malformed chunk: 'choices' is not a list", body=obj)
    usage = obj.get("usage")
    return Chunk(
        choices=tuple(_choice_delta(n, choice) for n, choice in enumerate(choices)),
        usage=Usage.from_wire(usage) if usage else None,
        raw=obj,
        **read_envelope(obj),
    )


def _choice_delta(position: int, choice: Any) -> ChoiceDelta:
    if not isinstance(choice, dict):
        raise StreamError(f"malformed chunk: choices[{position}] is not an object", body=choice)
    # A whole completion answering a stream request has a message, no delta.
    key = "message" if choice.get("delta") is None else "delta"
    if not isinstance(choice.get(key) or {}, dict):
        raise StreamError(
            f"malformed chunk: choices[{position}].{key} is not an object", body=choice
        )
    return read_choice(position, choice, key, _malformed)


def _malformed(message: str, value: Any) -> StreamError:
    return StreamError(f"malformed chunk: {message}", body=value)


def loads_or_text(data: str) -> Any:
    """An error event's data: its JSON when it is JSON, else the text itself."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return data


def stream_error(body: Any, data: str) -> StreamError:
    """The ``StreamError`` for an error object (or text) the server sent mid-stream."""
    message, _type, code, _param = error_details(body)
    return StreamError(
        f"the server sent an error inside the stream: {message}",
        hint="the request was accepted and then failed on the server's side; "
        "what arrived before it is on the error's .partial",
        code=code,
        body=body,
    )


def excerpt(text: str, limit: int = 120) -> str:
    """The start of ``text`` for an error message, quoted."""
    return repr(text[:limit]) + ("..." if len(text) > limit else "")
