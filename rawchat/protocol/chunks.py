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
* A malformed chunk (not JSON, not an object) raises ``StreamError``
  quoting it, instead of a ``JSONDecodeError`` from deep inside.
* Reasoning deltas come as ``reasoning_content`` (DeepSeek) or
  ``reasoning`` (OpenRouter, vLLM); both land in ``reasoning``.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, NamedTuple, Optional, Tuple, Union

from ..errors import StreamError
from .completion import Usage
from .response import error_details, text_of
from .sse import ServerSentEvent

__all__ = [
    "DONE",
    "ChoiceDelta",
    "Chunk",
    "Done",
    "ToolCallDelta",
    "chunk_from_object",
    "interpret",
]


class Done:
    """The ``data: [DONE]`` sentinel that ends a chat stream."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DONE"


DONE = Done()


# The three values below are NamedTuples rather than frozen dataclasses: a
# stream makes one Chunk and one ChoiceDelta per token, and building a tuple
# costs a fraction of a dataclass's __init__. They are as immutable.


class ToolCallDelta(NamedTuple):
    """A fragment of one tool call. ``index`` says which call it belongs to;
    ``id`` and ``name`` usually come once, ``arguments`` in pieces."""

    index: int
    id: Optional[str] = None
    type: Optional[str] = None
    name: Optional[str] = None
    arguments: str = ""


class ChoiceDelta(NamedTuple):
    """What one chunk adds to choice ``index``."""

    index: int = 0
    role: Optional[str] = None
    content: Optional[str] = None
    reasoning: Optional[str] = None
    refusal: Optional[str] = None
    tool_calls: Tuple[ToolCallDelta, ...] = ()
    finish_reason: Optional[str] = None


class Chunk(NamedTuple):
    """One decoded ``chat.completion.chunk``."""

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
    type, such as a provider's ``event: ping``).
    """
    data = event.data
    if event.event == "error":
        raise _stream_error(_loads_or_text(data), data)
    if event.event != "message":
        return None
    # JSON chunks start with "{": only other data is worth stripping.
    if data == "[DONE]" or (data[:1] != "{" and data.strip() == "[DONE]"):
        return DONE
    try:
        obj = _loads(data)
    except ValueError:
        raise StreamError(
            f"malformed chunk, not JSON: {_excerpt(data)}",
            hint="the server or a proxy corrupted the stream; `rawchat replay` "
            "shows a saved capture event by event",
            body=data,
        ) from None
    if not isinstance(obj, dict):
        raise StreamError(f"malformed chunk, not a JSON object: {_excerpt(data)}", body=data)
    if "error" in obj and not obj.get("choices"):
        raise _stream_error(obj, data)
    return chunk_from_object(obj)


_scan_once = json.JSONDecoder().scan_once


def _loads(data: str) -> Any:
    """``json.loads``, with its first two Python-level steps skipped for objects.

    A chunk is ``{...}`` with nothing around it: the scanner that
    ``json.loads`` ends up calling parses it directly, and ``end`` says it
    used all of the text. Anything else (whitespace, trailing bytes, a
    syntax error) goes through ``json.loads`` itself, for its exact result
    or error.
    """
    if data[:1] == "{":
        try:
            obj, end = _scan_once(data, 0)
        except (StopIteration, ValueError):
            pass
        else:
            if end == len(data):
                return obj
    return json.loads(data)


def chunk_from_object(obj: Mapping[str, Any]) -> Chunk:
    """A decoded chunk object to a ``Chunk``.

    Also accepts a whole (non-streamed) completion, reading each choice's
    ``message`` as one big delta: some servers answer a stream request
    that way, and callers should not have to care.
    """
    choices = obj.get("choices")
    deltas: Tuple[ChoiceDelta, ...] = ()
    if choices:
        if not isinstance(choices, list):
            raise StreamError("malformed chunk: 'choices' is not a list", body=obj)
        if len(choices) == 1:  # the usual case, without a generator's overhead
            deltas = (_choice_delta(0, choices[0]),)
        else:
            deltas = tuple(_choice_delta(n, c) for n, c in enumerate(choices))
    usage = obj.get("usage")
    created = obj.get("created")
    ident, model, fingerprint = obj.get("id"), obj.get("model"), obj.get("system_fingerprint")
    return _new(
        Chunk,
        (
            ident if type(ident) is str else "",
            model if type(model) is str else "",
            created if type(created) is int else 0,
            deltas,
            Usage.from_wire(usage) if usage else None,
            fingerprint if type(fingerprint) is str and fingerprint else None,
            obj,
        ),
    )


def _choice_delta(position: int, choice: Any) -> ChoiceDelta:
    if not isinstance(choice, dict):
        raise StreamError(f"malformed chunk: choices[{position}] is not an object", body=choice)
    delta = choice.get("delta")
    if delta is None:
        delta = choice.get("message") or {}
    if not isinstance(delta, dict):
        raise StreamError(
            f"malformed chunk: choices[{position}].delta is not an object", body=choice
        )
    index = choice.get("index")
    content = delta.get("content")
    finish = choice.get("finish_reason")
    # Fast path for the shape of nearly every chunk: a text delta and nothing
    # else. The same values the general path below would produce.
    if (
        len(delta) == 1
        and type(content) is str
        and type(index) is int
        and (finish is None or type(finish) is str)
    ):
        return _new(ChoiceDelta, (index, None, content, None, None, (), finish))
    where = f"choices[{position}]"
    return ChoiceDelta(
        index=index if isinstance(index, int) and not isinstance(index, bool) else position,
        role=_label(delta.get("role")) or None,
        content=_text(delta.get("content"), f"{where}.delta.content"),
        reasoning=_text(
            delta.get("reasoning_content") or delta.get("reasoning"), f"{where} reasoning"
        ),
        refusal=_text(delta.get("refusal"), f"{where}.delta.refusal"),
        tool_calls=_tool_call_deltas(delta.get("tool_calls")),
        finish_reason=_text(choice.get("finish_reason"), f"{where}.finish_reason"),
    )


_new = tuple.__new__  # a NamedTuple's own __new__ is a slower Python-level function


def _label(value: Any) -> str:
    """An identifier-like field; anything but a string counts as absent."""
    return value if isinstance(value, str) else ""


def _text(value: Any, where: str) -> Optional[str]:
    """A text field: a string, a list of text parts, or absent; else malformed."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        return text_of(value)
    raise StreamError(f"malformed chunk: {where} is {type(value).__name__}, not text", body=value)


def _tool_call_deltas(calls: Any) -> Tuple[ToolCallDelta, ...]:
    if not calls:
        return ()
    if not isinstance(calls, list):
        raise StreamError("malformed chunk: tool_calls is not a list", body=calls)
    result = []
    for position, call in enumerate(calls):
        if not isinstance(call, dict):
            raise StreamError("malformed chunk: a tool call is not an object", body=call)
        function = call.get("function") or {}
        if not isinstance(function, dict):
            raise StreamError("malformed chunk: a tool call's function is not an object", body=call)
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False, default=str)
        index = call.get("index")
        result.append(
            ToolCallDelta(
                # Some servers omit the index when they send whole calls.
                index=index if isinstance(index, int) and not isinstance(index, bool) else position,
                id=_label(call.get("id")) or None,
                type=_label(call.get("type")) or None,
                name=_label(function.get("name")) or None,
                arguments=arguments or "",
            )
        )
    return tuple(result)


def _loads_or_text(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data


def _stream_error(body: Any, data: str) -> StreamError:
    message, _type, code, _param = error_details(body)
    return StreamError(
        f"the server sent an error inside the stream: {message}",
        hint="the request was accepted and then failed on the server's side; "
        "what arrived before it is on the error's .partial",
        code=code,
        body=body,
    )


def _excerpt(text: str, limit: int = 120) -> str:
    return repr(text[:limit]) + ("..." if len(text) > limit else "")
