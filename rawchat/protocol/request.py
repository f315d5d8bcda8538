"""Building a Chat Completions request: messages and parameters to bytes.

Implements the request side of ``POST /chat/completions``
(https://platform.openai.com/docs/api-reference/chat/create). Messages are
checked before anything is sent, so a mistake is reported with its index
and a fix instead of as a server's 400. Parameters rawchat does not know
pass through untouched: compatible servers add their own.

Headers: ``Authorization: Bearer KEY`` (Azure: ``api-key: KEY``),
``Content-Type: application/json``, ``Accept`` (``text/event-stream`` for a
stream), ``User-Agent``, and ``OpenAI-Organization`` / ``OpenAI-Project``
when set. A stream asks for ``stream_options.include_usage`` so its last
chunk carries the token counts.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from functools import partial
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ..errors import InvalidRequestError
from ..version import __version__
from .http import Headers, HTTPRequest
from .settings import Settings, check_header

__all__ = [
    "ROLES",
    "USER_AGENT",
    "build_chat_request",
    "build_request",
    "validate_messages",
]

ROLES = ("system", "developer", "user", "assistant", "tool")
USER_AGENT = f"rawchat/{__version__} python/{'.'.join(map(str, sys.version_info[:3]))}"


def build_chat_request(
    settings: Settings,
    messages: Sequence[Any],
    *,
    model: Optional[str] = None,
    stream: bool = False,
    include_usage: bool = True,
    request_id: Optional[str] = None,
    extra_headers: Optional[Mapping[str, str]] = None,
    **params: Any,
) -> HTTPRequest:
    """The ``POST /chat/completions`` request for ``messages``.

    ``model`` defaults to the settings' model. ``params`` (``temperature``,
    ``max_tokens``, ``tools``, anything a provider accepts) are copied into
    the body as given. ``request_id`` is sent as ``X-Client-Request-Id``,
    which OpenAI records so support can find a request you never got an
    answer for. ``extra_headers`` are added last (and win over defaults).
    """
    model = model or settings.model
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError(
            "no model given",
            hint="pass model=..., set RAWCHAT_MODEL, or list them with `rawchat models`",
        )
    body: Dict[str, Any] = {"model": model, "messages": validate_messages(messages)}
    body.update(params)
    if stream:
        body["stream"] = True
        if include_usage:
            options = dict(params.get("stream_options") or {})
            options.setdefault("include_usage", True)
            body["stream_options"] = options
    return HTTPRequest(
        "POST",
        settings.url("/chat/completions", model=model),
        headers=headers_for(settings, stream=stream, request_id=request_id, extra=extra_headers),
        body=encode_json(body),
        stream=stream,
    )


def build_request(
    settings: Settings,
    method: str,
    path: str,
    body: Any = None,
    *,
    stream: bool = False,
) -> HTTPRequest:
    """Any other API call: ``GET /models``, ``POST /embeddings``..."""
    if not path.startswith("/"):
        path = "/" + path
    return HTTPRequest(
        method.upper(),
        settings.url(path),
        headers=headers_for(settings, stream=stream, has_body=body is not None),
        body=b"" if body is None else encode_json(body),
        stream=stream,
    )


def headers_for(
    settings: Settings,
    *,
    stream: bool = False,
    has_body: bool = True,
    request_id: Optional[str] = None,
    extra: Optional[Mapping[str, str]] = None,
) -> List[tuple]:
    """The request headers, in the order they are sent."""
    headers = []
    if settings.api_key:
        if settings.auth == "api-key":
            headers.append(("api-key", settings.api_key))
        else:
            headers.append(("Authorization", f"Bearer {settings.api_key}"))
    if has_body:
        headers.append(("Content-Type", "application/json"))
    headers.append(("Accept", "text/event-stream" if stream else "application/json"))
    if stream:
        # A compressing server or proxy buffers output to fill its blocks,
        # which would hold deltas back; ask for the stream as it is.
        headers.append(("Accept-Encoding", "identity"))
    headers.append(("User-Agent", USER_AGENT))
    if settings.organization:
        headers.append(("OpenAI-Organization", settings.organization))
    if settings.project:
        headers.append(("OpenAI-Project", settings.project))
    if request_id:
        headers.append(("X-Client-Request-Id", request_id))
    headers.extend(settings.headers)
    if extra:
        names = {str(name).lower() for name in extra}
        headers = [(n, v) for n, v in headers if n.lower() not in names]
        headers.extend((str(n), str(v)) for n, v in extra.items())
    # Checked here, where the header's source is known: http.client would
    # refuse it later with an error that quotes the whole header, key and all.
    for name, value in headers:
        check_header(name, value, partial(_source, name, settings, extra))
    return headers


def _source(name: str, settings: Settings, extra: Optional[Mapping[str, str]]) -> str:
    """Where header ``name`` came from, as an error names it (never its value)."""
    where = "the API key" if name.lower() in ("authorization", "api-key") else "the settings"
    if extra and name.lower() in {str(n).lower() for n in extra}:
        where = "extra_headers"
    elif any(name.lower() == n.lower() for n, _ in settings.headers):
        where = "default_headers"
    clean = all(" " < char < "\x7f" and char != ":" for char in name)
    return f"{where} ({name})" if clean else where


def with_api_key(request: HTTPRequest, settings: Settings, key: str) -> HTTPRequest:
    """The same request, authenticated with ``key`` instead (for key pools)."""
    name, value = (
        ("api-key", key) if settings.auth == "api-key" else ("Authorization", f"Bearer {key}")
    )
    check_header(name, value, f"the key pool ({name})")
    headers = [(n, v) for n, v in request.headers.items() if n.lower() != name.lower()]
    return replace(request, headers=Headers([(name, value), *headers]))


def encode_json(body: Any) -> bytes:
    """Compact UTF-8 JSON; non-ASCII text stays as itself, not ``\\uXXXX``.

    >>> encode_json({"role": "user", "content": "你好"}).decode()
    '{"role":"user","content":"你好"}'
    """
    try:
        # allow_nan=False: NaN and Infinity are not JSON (RFC 8259 section 6),
        # and a server would refuse the body or read it as something else.
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except RecursionError:
        raise InvalidRequestError(
            "the request body is nested too deeply to encode",
            hint="parameters nest a few levels at most; check for a structure that contains itself",
        ) from None
    except (TypeError, ValueError) as exc:
        if "Out of range float" in str(exc):
            raise InvalidRequestError(
                "the request body holds NaN or Infinity, which JSON cannot carry",
                hint="replace them with numbers (or null) before sending",
            ) from exc
        raise InvalidRequestError(
            f"the request body is not JSON-serializable: {exc}",
            hint="parameters must be str, int, float, bool, None, list or dict",
        ) from exc
    try:
        return text.encode("utf-8")
    except (
        UnicodeEncodeError
    ) as exc:  # a lone surrogate, from text decoded with errors="surrogateescape"
        raise InvalidRequestError(
            f"the request body holds text that is not valid Unicode (at character {exc.start})",
            hint="the input is probably not UTF-8; decode it as the encoding it is in",
        ) from None


def validate_messages(messages: Sequence[Any]) -> List[Dict[str, Any]]:
    """Check a conversation against the protocol's rules; return plain dicts.

    Accepts dicts and anything with ``to_dict()`` (such as a ``Message``
    from a previous answer).
    """
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise InvalidRequestError(
            f"messages must be a list of message dicts, got {type(messages).__name__}",
            hint='e.g. [{"role": "user", "content": "Hello"}]',
        )
    if not messages:
        raise InvalidRequestError("messages is empty", hint="send at least one user message")
    result = []
    open_calls: Dict[str, int] = {}  # tool_call_id -> index of the assistant message
    for index, item in enumerate(messages):
        message = item.to_dict() if hasattr(item, "to_dict") else item
        if not isinstance(message, Mapping):
            raise _bad(index, f"is a {type(message).__name__}, not a dict")
        role = message.get("role")
        if role not in ROLES:
            raise _bad(
                index,
                f"has role {role!r}",
                "the role must be one of " + ", ".join(ROLES),
            )
        if open_calls and role != "tool":
            raise _unanswered(open_calls)
        if role == "assistant":
            calls = _check_tool_calls(index, message.get("tool_calls"))
            if not calls and message.get("content") is None and not message.get("refusal"):
                raise _bad(index, "is an assistant message with neither content nor tool_calls")
            if message.get("content") is not None:
                _check_content(index, message["content"])
            open_calls = {call: index for call in calls}
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise _bad(
                    index,
                    "is a tool message without a tool_call_id",
                    "copy the id of the tool call it answers",
                )
            if call_id not in open_calls:
                raise _bad(
                    index,
                    f"answers tool call {call_id!r}, which no preceding assistant "
                    "message made (or which was already answered)",
                    "tool messages must directly follow the assistant message "
                    "whose tool_calls they answer",
                )
            del open_calls[call_id]
            _check_content(index, message.get("content"))
        else:
            _check_content(index, message.get("content"))
        if "name" in message and not isinstance(message["name"], str):
            raise _bad(index, "has a name that is not a string")
        result.append(dict(message))
    if open_calls:
        raise _unanswered(open_calls)
    return result


def _check_content(index: int, content: Any) -> None:
    if isinstance(content, str):
        return
    if isinstance(content, list) and content:
        for n, part in enumerate(content):
            if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
                raise _bad(
                    index,
                    f"content part {n} has no 'type'",
                    'parts look like {"type": "text", "text": "..."}',
                )
            if part["type"] == "text" and not isinstance(part.get("text"), str):
                raise _bad(index, f"content part {n} is a text part without 'text'")
        return
    raise _bad(
        index,
        f"has content of type {type(content).__name__}",
        "content is a string or a non-empty list of content parts",
    )


def _check_tool_calls(index: int, calls: Any) -> List[str]:
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise _bad(index, "has tool_calls that is not a list")
    ids = []
    for n, call in enumerate(calls):
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(call, Mapping) or not isinstance(call.get("id"), str):
            raise _bad(index, f"tool_calls[{n}] has no id")
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise _bad(index, f"tool_calls[{n}] has no function.name")
        if not isinstance(function.get("arguments"), str):
            raise _bad(
                index,
                f"tool_calls[{n}].function.arguments is not a string",
                "arguments travel as JSON text: json.dumps(...) them",
            )
        ids.append(call["id"])
    return ids


def _unanswered(open_calls: Mapping[str, int]) -> InvalidRequestError:
    index = next(iter(open_calls.values()))
    missing = ", ".join(repr(c) for c in open_calls)
    return _bad(
        index,
        f"made tool calls that no tool message answers: {missing}",
        "after an assistant message with tool_calls, send one role='tool' "
        "message per call before anything else",
    )


def _bad(index: int, problem: str, hint: str = "") -> InvalidRequestError:
    return InvalidRequestError(f"messages[{index}] {problem}", hint=hint)
