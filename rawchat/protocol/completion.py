"""What a chat completion is: the values both answer paths produce.

A plain response (``response.py``) and an assembled stream
(``accumulate.py``) both end as a ``Completion``, so callers never care
which path it came by. The shapes mirror the chat completion object
(https://platform.openai.com/docs/api-reference/chat/object): a completion
holds ``choices``, each with a ``message`` and a ``finish_reason``, and a
``usage`` block. Shortcuts on ``Completion`` read ``choices[0]``, the only
choice unless ``n > 1`` was asked for.

Both paths also read a choice the same way: ``read_choice`` turns its
``message`` (a plain answer) or its ``delta`` (a stream chunk) into a
``ChoiceDelta``, so a whole message is one big delta. Only the error raised
for a malformed field differs, and the caller chooses it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .http import Headers

__all__ = [
    "Choice",
    "ChoiceDelta",
    "Completion",
    "FunctionCall",
    "Malformed",
    "Message",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "int_or",
    "label",
    "read_choice",
    "read_envelope",
    "read_tool_calls",
]


@dataclass(frozen=True)
class Usage:
    """Token counts as the server reported them (``usage`` on the wire).

    ``cached_tokens`` (prompt tokens served from the provider's prompt
    cache) and ``reasoning_tokens`` (hidden thinking, billed as output) come
    from ``prompt_tokens_details`` and ``completion_tokens_details``; servers
    that do not report them leave 0.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_wire(cls, data: Any) -> Optional[Usage]:
        """Read a ``usage`` object; ``None`` when absent or not an object.

        Counts feed budgets and bills, so a count no real answer can have
        (negative, ``true``, over a billion) reads as 0 rather than
        be trusted. ``total_tokens`` is never less than its two parts, and
        is their sum when any count was refused: a server cannot slip an
        answer past a token budget by what it reports.
        """
        if not isinstance(data, dict):
            return None
        reported = (data.get("prompt_tokens"), data.get("completion_tokens"))
        prompt, completion = (_token_count(n) for n in reported)
        total = _token_count(data.get("total_tokens"))
        details_in = data.get("prompt_tokens_details")
        details_out = data.get("completion_tokens_details")
        # DeepSeek reports its cache hits at the top level.
        cached = data.get("prompt_cache_hit_tokens")
        if isinstance(details_in, dict):
            cached = details_in.get("cached_tokens", cached)
        reasoning = details_out.get("reasoning_tokens") if isinstance(details_out, dict) else 0
        # Refused: present, but not read as sent (absent and null read as 0).
        refused = (prompt, completion) != tuple(n or 0 for n in reported)
        if refused or total < prompt + completion:
            total = prompt + completion
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=total,
            cached_tokens=_token_count(cached),
            reasoning_tokens=_token_count(reasoning),
        )


#: More tokens than any model reads or writes in one call: a count above it is an error.
_MAX_TOKENS = 10**9


def _token_count(value: Any) -> int:
    """A token count that can be true (an integer from 0 to ``_MAX_TOKENS``), else 0."""
    count = int_or(value, 0)
    return count if 0 <= count <= _MAX_TOKENS else 0


@dataclass(frozen=True)
class FunctionCall:
    """The function a tool call invokes; ``arguments`` is JSON text, as sent."""

    name: str
    arguments: str


@dataclass(frozen=True)
class ToolCall:
    """One tool call of an assistant message, as on the wire."""

    id: str
    function: FunctionCall
    type: str = "function"

    def to_dict(self) -> Dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "function": {
                "name": self.function.name,
                "arguments": self.function.arguments,
            },
        }


@dataclass(frozen=True)
class Message:
    """An assistant message. ``reasoning`` is the visible thinking some
    providers send (DeepSeek's ``reasoning_content``, others' ``reasoning``);
    it is never sent back in the history."""

    role: str = "assistant"
    content: Optional[str] = None
    tool_calls: Tuple[ToolCall, ...] = ()
    refusal: Optional[str] = None
    reasoning: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        """The message as it goes back into the ``messages`` of the next request."""
        data: Dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            data["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        if self.refusal is not None:
            data["refusal"] = self.refusal
        return data


@dataclass(frozen=True)
class Choice:
    """One of the ``n`` alternative answers."""

    index: int
    message: Message
    finish_reason: Optional[str] = None


@dataclass(frozen=True)
class Completion:
    """A finished chat completion, from a plain response or an assembled stream.

    ``request_id`` is the server's ``x-request-id``; ``retries_taken`` how
    many retries the client made before this answer; ``elapsed`` the seconds
    from sending the request to the end of the body; ``raw`` the decoded
    JSON (for a stream: the last chunk seen, with assembled choices).
    ``degraded`` is set when the answer came from a fallback or the cache
    instead of the endpoint and model that were asked.
    """

    id: str = ""
    model: str = ""
    created: int = 0
    choices: Tuple[Choice, ...] = ()
    usage: Optional[Usage] = None
    system_fingerprint: Optional[str] = None
    request_id: Optional[str] = None
    retries_taken: int = 0
    elapsed: float = 0.0
    degraded: bool = False
    headers: Headers = field(default_factory=Headers, repr=False, compare=False)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def message(self) -> Message:
        """The first choice's message (an empty one if there were no choices)."""
        return self.choices[0].message if self.choices else Message()

    @property
    def content(self) -> str:
        """The first choice's text; ``""`` when it has none (tool calls, refusal)."""
        return self.message.content or ""

    @property
    def finish_reason(self) -> Optional[str]:
        """Why the first choice ended: stop, length, tool_calls, content_filter."""
        return self.choices[0].finish_reason if self.choices else None

    @property
    def tool_calls(self) -> Tuple[ToolCall, ...]:
        return self.message.tool_calls

    @property
    def refusal(self) -> Optional[str]:
        return self.message.refusal

    @property
    def reasoning(self) -> Optional[str]:
        return self.message.reasoning


# -- reading a choice: one way for a message and a delta ---------------------


@dataclass(frozen=True)
class ToolCallDelta:
    """A tool call as one choice carries it. In a chunk it is a fragment of
    call ``index``: ``id`` and ``name`` usually come once, ``arguments`` in
    pieces to concatenate; in a whole message it is the call itself.
    ``None`` is a field this piece left out."""

    index: int
    id: Optional[str] = None
    type: Optional[str] = None
    name: Optional[str] = None
    arguments: str = ""


@dataclass(frozen=True)
class ChoiceDelta:
    """What one chunk adds to choice ``index`` (a whole message: all of it).
    ``None`` is a field the wire left out."""

    index: int = 0
    role: Optional[str] = None
    content: Optional[str] = None
    reasoning: Optional[str] = None
    refusal: Optional[str] = None
    tool_calls: Tuple[ToolCallDelta, ...] = ()
    finish_reason: Optional[str] = None


#: Makes the error for a malformed field from a message and the value at
#: fault: ``InvalidResponseError`` for a plain answer, ``StreamError`` for a chunk.
Malformed = Callable[[str, Any], Exception]


def read_choice(
    position: int, choice: Mapping[str, Any], key: str, error: Malformed
) -> ChoiceDelta:
    """Choice number ``position`` of ``choices``, reading its ``key`` object.

    ``key`` is ``"message"`` or ``"delta"``; the caller has checked that
    ``choice[key]`` is an object or absent. Reasoning comes as
    ``reasoning_content`` (DeepSeek) or ``reasoning`` (OpenRouter, vLLM).
    """
    fields = choice.get(key) or {}
    # Where a field sits, as error messages name it; formatted only on error.
    inside = "choices[{0}].{1}.{2}"
    return ChoiceDelta(
        index=int_or(choice.get("index"), position),
        role=label(fields.get("role")),
        content=_text(fields.get("content"), error, inside, position, key, "content"),
        reasoning=_text(
            fields.get("reasoning_content") or fields.get("reasoning"),
            error,
            "choices[{0}] reasoning",
            position,
        ),
        refusal=_text(fields.get("refusal"), error, inside, position, key, "refusal"),
        tool_calls=read_tool_calls(fields.get("tool_calls"), error),
        finish_reason=_text(
            choice.get("finish_reason"), error, "choices[{0}].finish_reason", position
        ),
    )


def read_tool_calls(calls: Any, error: Malformed) -> Tuple[ToolCallDelta, ...]:
    """A message's or delta's ``tool_calls``; ``arguments`` stay JSON text, as sent."""
    if not calls:
        return ()
    if not isinstance(calls, list):
        raise error("tool_calls is not a list", calls)
    result: List[ToolCallDelta] = []
    for position, call in enumerate(calls):
        if not isinstance(call, dict):
            raise error("a tool call is not an object", call)
        function = call.get("function") or {}
        if not isinstance(function, dict):
            raise error("a tool call's function is not an object", call)
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            # A few servers send an object; the protocol says JSON text.
            arguments = json.dumps(arguments, ensure_ascii=False, default=str)
        result.append(
            ToolCallDelta(
                # Some servers omit the index when they send whole calls.
                index=int_or(call.get("index"), position),
                id=label(call.get("id")),
                type=label(call.get("type")),
                name=label(function.get("name")),
                arguments=arguments or "",
            )
        )
    return tuple(result)


def _text(value: Any, error: Malformed, where: str, *place: Any) -> Optional[str]:
    """A text field: a string, absent, or (some servers) a list of text parts.

    ``where.format(*place)`` names the field in the error for anything else.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(
            part["text"]
            for part in value
            if isinstance(part, dict)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        )
    raise error(f"{where.format(*place)} is {type(value).__name__}, not text", value)


def read_envelope(obj: Mapping[str, Any]) -> Dict[str, Any]:
    """The fields a completion object and a chunk object share, as keyword arguments.

    ``id`` and ``model`` are ``""`` and ``created`` is 0 when absent or not
    of their type, as compatible servers leave them out; a
    ``system_fingerprint`` counts only as a non-empty string.
    """
    created = obj.get("created")
    fingerprint = obj.get("system_fingerprint")
    return {
        "id": label(obj.get("id")) or "",
        "model": label(obj.get("model")) or "",
        "created": int_or(created, 0),
        "system_fingerprint": label(fingerprint),
    }


def label(value: Any) -> Optional[str]:
    """An identifier-like field; anything but a non-empty string counts as absent."""
    return value if isinstance(value, str) and value else None


def int_or(value: Any, default: int) -> int:
    """An integer field (JSON has no other kind; ``true`` is not one), else ``default``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default
