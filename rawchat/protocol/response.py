"""Reading answers: a response body to a ``Completion``, or to a typed error.

The success path reads the chat completion object
(https://platform.openai.com/docs/api-reference/chat/object). The failure
path reads OpenAI's error object
(https://platform.openai.com/docs/guides/error-codes) and the shapes
compatible servers use instead: ``{"error": "text"}`` (Ollama),
``{"object": "error", "message": ...}`` (vLLM), ``{"detail": ...}``
(FastAPI-based servers), and bodies that are not JSON at all, such as the
HTML page of a gateway's 502. Each error gets a ``hint`` saying what is
most likely wrong and how to fix it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional, Tuple
from urllib.parse import urlsplit

from ..errors import APIStatusError, InvalidResponseError, status_error_class
from .completion import (
    Choice,
    Completion,
    FunctionCall,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
    read_choice,
    read_envelope,
    read_tool_calls,
)
from .http import HTTPResponse, describe_body, fingerprint, redact_url
from .retry import server_wait

__all__ = [
    "ErrorContext",
    "completion_from_response",
    "error_details",
    "error_from_response",
    "html_title",
    "parse_completion",
    "parse_tool_calls",
    "refuse_html",
]


def completion_from_response(response: HTTPResponse) -> Completion:
    """A successful (2xx) response to ``POST /chat/completions``."""
    refuse_html(response, "a chat completion")
    return replace(
        parse_completion(response.json()),
        headers=response.headers,
        request_id=response.request_id,
        elapsed=response.elapsed,
    )


def refuse_html(response: HTTPResponse, expected: str) -> None:
    """``InvalidResponseError`` if a 2xx body is an HTML page, not the ``expected`` answer.

    A captive portal, a login page or a web server at the wrong base URL
    answers 200 with HTML; saying so beats a JSON error about its first byte.
    """
    if response.content_type == "text/html" or response.body.lstrip()[:1] == b"<":
        raise InvalidResponseError(
            f"expected {expected}, got an HTML page{html_title(response.body)}",
            status_code=response.status_code,
            body=response.text(),
            hint="something other than the API answered (a proxy, a login page, "
            f"a web server); check the base URL, which led to {response.url}",
        )


def parse_completion(data: Any) -> Completion:
    """A decoded chat completion object to a ``Completion``.

    Tolerates what compatible servers leave out (``id``, ``created``,
    ``usage``); refuses what makes the answer unreadable, with
    ``InvalidResponseError``.
    """
    if not isinstance(data, dict):
        raise InvalidResponseError(f"expected a JSON object, got {type(data).__name__}", body=data)
    if "error" in data and "choices" not in data:
        message, _type, code, _param = error_details(data)
        raise InvalidResponseError(
            f"the server sent an error with a success status: {message}",
            body=data,
            hint=f"error code {code!r}" if code else "",
        )
    choices = data.get("choices")
    if not isinstance(choices, list):
        raise InvalidResponseError(
            "the response has no 'choices' list",
            body=data,
            hint="is the base URL pointing at a Chat Completions API?",
        )
    return Completion(
        choices=tuple(_parse_choice(n, c) for n, c in enumerate(choices)),
        usage=Usage.from_wire(data.get("usage")),
        raw=data,
        **read_envelope(data),
    )


def _parse_choice(position: int, data: Any) -> Choice:
    if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
        raise InvalidResponseError(f"choices[{position}] has no 'message' object", body=data)
    read = read_choice(position, data, "message", _invalid)
    return Choice(
        index=read.index,
        message=Message(
            role=read.role or "assistant",
            content=read.content,
            tool_calls=tuple(_tool_call(call) for call in read.tool_calls),
            refusal=read.refusal,
            reasoning=read.reasoning,
        ),
        finish_reason=read.finish_reason,
    )


def parse_tool_calls(data: Any) -> Tuple[ToolCall, ...]:
    """The ``tool_calls`` of a message; arguments stay JSON text, as sent."""
    return tuple(_tool_call(call) for call in read_tool_calls(data, _invalid))


def _tool_call(call: ToolCallDelta) -> ToolCall:
    """A whole call, with the defaults of what the server left out."""
    return ToolCall(
        id=call.id or "",
        type=call.type or "function",
        function=FunctionCall(name=call.name or "", arguments=call.arguments),
    )


def _invalid(message: str, value: Any) -> InvalidResponseError:
    return InvalidResponseError(message, body=value)


# -- errors ---------------------------------------------------------------


@dataclass(frozen=True)
class ErrorContext:
    """What the client knew when the request failed, for writing the hint.

    ``now`` is Unix time, for ``Retry-After`` dates.
    """

    key: Optional[str] = field(default=None, repr=False)
    key_source: str = "none"
    key_variable: str = "OPENAI_API_KEY"
    model: Optional[str] = None
    profile: str = ""
    now: Optional[float] = None


def error_details(body: Any) -> Tuple[str, Optional[str], Optional[str], Optional[str]]:
    """``(message, type, code, param)`` from any error body shape we know."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, str):
            return error, None, None, None
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail") or error.get("msg")
            if isinstance(message, list):  # FastAPI validation errors
                message = "; ".join(
                    str(m.get("msg", m)) if isinstance(m, dict) else str(m) for m in message
                )
            code = error.get("code")
            return (
                str(message) if message else "(no message in the error body)",
                _opt_str(error.get("type")),
                None if code is None else str(code),
                _opt_str(error.get("param")),
            )
    if isinstance(body, str):
        return body, None, None, None
    return "(no message in the error body)", None, None, None


def _opt_str(value: Any) -> Optional[str]:
    return None if value is None else str(value)


#: An endpoint's own hint for a failure: (status, code=, param=, message=,
#: url=) -> the hint, or "" where the general one fits (see ``responses.py``).
EndpointHints = Callable[..., str]


def error_from_response(
    response: HTTPResponse,
    context: Optional[ErrorContext] = None,
    hints: Optional[EndpointHints] = None,
) -> APIStatusError:
    """The typed error for a 4xx/5xx response, with a hint for what to do.

    ``hints`` gives an endpoint's own hints (the Responses API's, audio's),
    which win over the general ones where they have something to say.
    """
    context = context or ErrorContext()
    status = response.status_code
    body: Any
    try:
        body = response.json() if response.body.strip() else None
    except InvalidResponseError:
        body = None
    if body is not None:
        message, type_, code, param = error_details(body)
    else:
        body = response.text() or None
        message = _describe_non_json(response)
        type_ = code = param = None
    if context.key:
        # Some servers quote the key they refused; only its fingerprint may show.
        message, body, code, type_, param = (
            _hide(value, context.key) for value in (message, body, code, type_, param)
        )
    wait = server_wait(response.headers, now=context.now)
    hint = ""
    if hints is not None:
        hint = hints(status, code=code, param=param, message=message, url=response.url)
    cls = status_error_class(status)
    return cls(
        message,
        status_code=status,
        request_id=response.request_id,
        body=body,
        code=code,
        type=type_,
        param=param,
        hint=hint or _hint(status, code, type_, param, message, response, context, wait),
        headers=response.headers,
        retry_after=wait,
    )


def _hide(value: Any, key: str) -> Any:
    """``value`` (text, or JSON of dicts and lists) with ``key`` replaced by its fingerprint."""
    if isinstance(value, str):
        return value.replace(key, fingerprint(key))
    if isinstance(value, dict):
        return {_hide(k, key): _hide(v, key) for k, v in value.items()}
    if isinstance(value, list):
        return [_hide(item, key) for item in value]
    return value


def _describe_non_json(response: HTTPResponse) -> str:
    reason = response.reason or "error"
    if response.content_type == "text/html" or response.body.lstrip()[:1] == b"<":
        return f"{reason}: an HTML page{html_title(response.body)}, not a JSON error"
    return f"{reason}: {describe_body(response.body, response.content_type)}"


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def html_title(body: bytes) -> str:
    """`` titled '...'`` for an HTML page with a title, else ``""``."""
    found = _TITLE.search(body[:4096])
    if not found:
        return ""
    title = " ".join(found.group(1).decode("utf-8", "replace").split())
    return f" titled {title!r}" if title else ""


def _hint(
    status: int,
    code: Optional[str],
    type_: Optional[str],
    param: Optional[str],
    message: str,
    response: HTTPResponse,
    context: ErrorContext,
    wait: Optional[float],
) -> str:
    url = redact_url(response.url) or "the endpoint"
    if 300 <= status < 400:
        where = response.headers.get("location", "another URL")
        return (
            f"the server redirects to {where}; use that as the base URL (redirects "
            "are not followed, since they would turn a POST into a GET)"
        )
    if status == 401:
        if not context.key:
            return (
                f"no API key was sent to {_host(url)}; set {context.key_variable}, "
                "or choose the provider whose key you have (--profile, or profile= in Python)"
            )
        return (
            f"the key from {context.key_source} (ending {fingerprint(context.key)}) "
            f"was refused by {_host(url)}: check it is current, not revoked, and "
            "issued by this provider (keys are not interchangeable between providers)"
        )
    if status == 403:
        return (
            "the key is valid but not allowed to do this: the model, the project, "
            "or your region may be restricted for it"
        )
    if status == 404:
        about_model = (
            code in ("model_not_found", "DeploymentNotFound")
            or (context.model and context.model in message)
            or "deployment" in message.lower()
        )
        if about_model:
            what = "deployment" if context.profile == "azure" else "model"
            return (
                f"the {what} {context.model!r} does not exist here or your key cannot "
                f"use it; `rawchat models` lists what {_host(url)} offers"
            )
        path = urlsplit(url).path
        if "/v1/" not in path and "/openai/" not in path and "/api/v3/" not in path:
            return (
                f"{url} was not found; most OpenAI-compatible base URLs end in /v1 "
                "(e.g. http://localhost:11434/v1), so add it to the base URL"
            )
        return f"{url} was not found; check the base URL and the model name"
    if status == 429:
        if code == "insufficient_quota" or type_ == "insufficient_quota":
            return (
                "the account is out of credit or over its monthly budget: this is "
                "billing, not speed, and retrying will not help"
            )
        after = f"; the server asked to wait {wait:g} s" if wait is not None else ""
        return f"rate limited: too many requests or tokens per minute{after}"
    if status >= 500:
        return (
            f"the server side failed ({status}), not your request; rawchat retries "
            "these, and repeated failures usually mean an outage or an overloaded "
            "gateway"
        )
    if status == 400 and code == "context_length_exceeded":
        return (
            "the messages are longer than the model's context window: drop or summarise older turns"
        )
    if status in (400, 422):
        where = f" (parameter {param!r})" if param else ""
        return (
            f"the server refused the request body{where}; `rawchat curl` shows "
            "exactly what was sent"
        )
    if status == 409:
        return "a conflicting request was in progress; retrying usually succeeds"
    if status == 408:
        return "the server gave up waiting for the request; retrying usually succeeds"
    return ""


def _host(url: str) -> str:
    """Host and port of ``url``, without any credentials in it."""
    return urlsplit(url).netloc.rpartition("@")[2] or redact_url(url)
