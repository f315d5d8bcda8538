"""The Responses API, request and answer: ``POST /responses`` without the stream.

Implements the request side of ``POST /responses``
(https://platform.openai.com/docs/api-reference/responses/create) and the
response object (https://platform.openai.com/docs/api-reference/responses/object).
It differs from Chat Completions in ways that trip people moving over:

* The conversation is ``input``: a string, or a list of items. An item is a
  message (``{"role", "content"}``, whose parts are ``input_text``,
  ``input_image``...; not chat's ``text`` and ``image_url``), a
  ``function_call_output`` answering a call by its ``call_id``, or any item
  of an earlier response's ``output`` sent back as it came.
* Tools are flat: ``{"type": "function", "name", "parameters"}``, not
  chat's ``{"type": "function", "function": {...}}``. The length limit is
  ``max_output_tokens``; a structured format is ``text.format``.
* The answer is a list of ``output`` items (``message``, ``function_call``,
  ``custom_tool_call``, ``reasoning``, and built-in tools' items such as
  ``web_search_call``). The answer's text is not a field of its own on the
  wire: it is the ``output_text`` parts of the message items, joined (the
  top-level ``output_text`` some servers add is an SDK convenience, and
  OpenRouter's disagrees with the message). Unknown items are kept as sent.
* With ``store`` (the default on OpenAI) the server keeps the response, and
  ``previous_response_id`` continues from it without resending the
  history; compatible servers often keep nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit

from ..errors import APIStatusError, InvalidRequestError, InvalidResponseError
from .completion import int_or, label
from .http import Headers, HTTPRequest, HTTPResponse
from .request import encode_json, headers_for
from .response import ErrorContext, error_details, error_from_response, refuse_html
from .settings import Settings

__all__ = [
    "INPUT_ROLES",
    "CustomToolCall",
    "FunctionToolCall",
    "Response",
    "ResponseUsage",
    "build_responses_request",
    "parse_response",
    "response_error_hint",
    "response_from_http",
    "responses_error",
    "validate_input",
    "validate_tools",
]

INPUT_ROLES = ("user", "assistant", "system", "developer")

#: Chat Completions parameters with another name (or place) here.
_RENAMED = {
    "messages": "use input=... (a string, or a list of input items) instead of messages=",
    "max_tokens": "use max_output_tokens=... instead of max_tokens",
    "max_completion_tokens": "use max_output_tokens=... instead of max_completion_tokens",
    "response_format": 'use text={"format": {...}} instead of response_format',
}

#: Chat content part types, and what the Responses API calls them.
_CHAT_PARTS = {"text": "input_text", "image_url": "input_image"}


# -- the request -------------------------------------------------------------


def build_responses_request(
    settings: Settings,
    input: Union[str, Sequence[Any]],
    *,
    model: Optional[str] = None,
    stream: bool = False,
    request_id: Optional[str] = None,
    extra_headers: Optional[Mapping[str, str]] = None,
    **params: Any,
) -> HTTPRequest:
    """The ``POST /responses`` request for ``input``.

    ``params`` (``instructions``, ``tools``, ``tool_choice``, ``text``,
    ``reasoning``, ``max_output_tokens``, ``previous_response_id``,
    ``store``, ``include``, anything a provider accepts) are copied into the
    body after the checks below; chat parameters that have another name
    here are refused with the name to use.
    """
    for name, fix in _RENAMED.items():
        if name in params:
            raise InvalidRequestError(
                f"{name} is a Chat Completions parameter; the Responses API does not take it",
                hint=fix,
            )
    model = model or settings.model
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError(
            "no model given",
            hint="pass model=..., set RAWCHAT_MODEL, or list them with `rawchat models`",
        )
    body: Dict[str, Any] = {"model": model, "input": validate_input(input)}
    body.update(params)
    _check_params(body)
    if stream:
        body["stream"] = True
    return HTTPRequest(
        "POST",
        settings.url("/responses"),
        headers=headers_for(settings, stream=stream, request_id=request_id, extra=extra_headers),
        body=encode_json(body),
        stream=stream,
    )


def _check_params(body: Dict[str, Any]) -> None:
    if "tools" in body:
        body["tools"] = validate_tools(body["tools"])
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        name = choice["function"].get("name")
        raise InvalidRequestError(
            "tool_choice is in the Chat Completions shape",
            hint=f'the Responses API names the function at the top: {{"type": "function", '
            f'"name": {json.dumps(name)}}}',
        )
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise InvalidRequestError(
            f"instructions is a {type(instructions).__name__}, not a string",
            hint="instructions is the system prompt, as text",
        )
    limit = body.get("max_output_tokens")
    if limit is not None and (int_or(limit, 0) <= 0):
        raise InvalidRequestError(
            f"max_output_tokens must be a positive integer, got {limit!r}",
            hint="it counts reasoning tokens too: leave room for them on reasoning models",
        )
    previous = body.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or not previous):
        raise InvalidRequestError(
            f"previous_response_id must be a response id such as 'resp_...', got {previous!r}",
            hint="pass the .id of an earlier Response (stored: store is not false)",
        )
    include = body.get("include")
    if include is not None and (
        not isinstance(include, list) or not all(isinstance(i, str) for i in include)
    ):
        raise InvalidRequestError(
            "include must be a list of strings",
            hint='e.g. ["reasoning.encrypted_content"]',
        )


def validate_input(input: Union[str, Sequence[Any]]) -> Union[str, List[Dict[str, Any]]]:
    """Check ``input`` against the protocol's rules; return it as sent.

    A string is one user message. A list holds items: dicts, or anything
    with ``to_dict()``. Messages and tool outputs are checked; any other
    item with a ``type`` (an earlier response's output items, sent back)
    passes as it is.
    """
    if isinstance(input, str):
        return input
    if isinstance(input, (bytes, Mapping)) or not isinstance(input, Sequence):
        raise InvalidRequestError(
            f"input must be a string or a list of input items, got {type(input).__name__}",
            hint='e.g. "Hello", or [{"role": "user", "content": "Hello"}]',
        )
    if not input:
        raise InvalidRequestError(
            "input is empty", hint="send a string, or at least one input item"
        )
    result = []
    for index, entry in enumerate(input):
        item = entry.to_dict() if hasattr(entry, "to_dict") else entry
        if not isinstance(item, Mapping):
            raise _bad(index, f"is a {type(item).__name__}, not a dict")
        kind = item.get("type")
        if kind is None and "role" not in item:
            raise _bad(
                index,
                "has neither a type nor a role",
                'a message is {"role": "user", "content": "..."}; other items have a "type"',
            )
        if kind is not None and not isinstance(kind, str):
            raise _bad(index, f"has a type that is not a string: {kind!r}")
        if kind in (None, "message"):
            _check_message(index, item)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            _check_call_id(index, item, kind)
            output = item.get("output")
            if not isinstance(output, (str, list)):
                raise _bad(
                    index,
                    f"is a {kind} whose output is {type(output).__name__}, not text",
                    "tool results travel as text: json.dumps(...) a structured result",
                )
        elif kind == "function_call":
            _check_call_id(index, item, kind)
            if not isinstance(item.get("arguments"), str):
                raise _bad(
                    index,
                    "is a function_call whose arguments are not a string",
                    "arguments travel as JSON text: json.dumps(...) them",
                )
        result.append(dict(item))
    return result


def _check_message(index: int, item: Mapping[str, Any]) -> None:
    role = item.get("role")
    if role == "tool":
        raise _bad(
            index,
            "has role 'tool', which is Chat Completions'",
            'answer a function call with {"type": "function_call_output", '
            '"call_id": call.call_id, "output": "..."}',
        )
    if role not in INPUT_ROLES:
        raise _bad(index, f"has role {role!r}", "the role must be one of " + ", ".join(INPUT_ROLES))
    content = item.get("content")
    if isinstance(content, str):
        return
    if not isinstance(content, list) or not content:
        raise _bad(
            index,
            f"has content of type {type(content).__name__}",
            "content is a string or a non-empty list of content parts",
        )
    for n, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if not isinstance(kind, str):
            raise _bad(
                index,
                f"content part {n} has no 'type'",
                'parts look like {"type": "input_text", "text": "..."}',
            )
        if kind in _CHAT_PARTS:
            raise _bad(
                index,
                f"content part {n} has the Chat Completions type {kind!r}",
                f"the Responses API calls it {_CHAT_PARTS[kind]!r}"
                + (" with a plain image_url string" if kind == "image_url" else ""),
            )
        if kind in ("input_text", "output_text") and not isinstance(part.get("text"), str):
            raise _bad(index, f"content part {n} is an {kind} part without 'text'")
        if kind == "input_image" and not (part.get("image_url") or part.get("file_id")):
            raise _bad(
                index,
                f"content part {n} is an input_image with neither image_url nor file_id",
                "image_url is a URL or a data: URL (base64)",
            )


def _check_call_id(index: int, item: Mapping[str, Any], kind: str) -> None:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _bad(
            index,
            f"is a {kind} without a call_id",
            "copy the call_id of the call it answers (call.call_id), not its id",
        )


def validate_tools(tools: Any) -> List[Dict[str, Any]]:
    """Check ``tools``: function tools are flat here; other types pass."""
    if not isinstance(tools, list):
        raise InvalidRequestError(
            f"tools must be a list, got {type(tools).__name__}",
            hint='e.g. [{"type": "function", "name": "get_weather", "parameters": {...}}]',
        )
    for n, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        if not isinstance(kind, str):
            raise InvalidRequestError(
                f"tools[{n}] has no 'type'",
                hint='a function tool is {"type": "function", "name": ..., "parameters": {...}}',
            )
        if kind == "function" and isinstance(tool.get("function"), Mapping):
            raise InvalidRequestError(
                f"tools[{n}] is in the Chat Completions shape",
                hint="the Responses API takes function tools flat: "
                + json.dumps(_flat_tool(tool), ensure_ascii=False),
            )
        if kind in ("function", "custom") and not (
            isinstance(tool.get("name"), str) and tool["name"]
        ):
            raise InvalidRequestError(f"tools[{n}] is a {kind} tool without a name")
    return [dict(tool) for tool in tools]


def _flat_tool(tool: Mapping[str, Any]) -> Dict[str, Any]:
    """The Responses shape of a chat-shaped function tool, for the hint."""
    flat: Dict[str, Any] = {"type": "function"}
    flat.update(tool["function"])
    return flat


def _bad(index: int, problem: str, hint: str = "") -> InvalidRequestError:
    return InvalidRequestError(f"input[{index}] {problem}", hint=hint)


# -- the answer ----------------------------------------------------------------


@dataclass(frozen=True)
class ResponseUsage:
    """Token counts of a response (``usage`` on the wire).

    ``cached_tokens`` comes from ``input_tokens_details``, ``reasoning_tokens``
    (hidden thinking, billed as output) from ``output_tokens_details``;
    servers that do not report them leave 0.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_wire(cls, data: Any) -> Optional[ResponseUsage]:
        """Read a ``usage`` object; ``None`` when absent or not an object."""
        if not isinstance(data, dict):
            return None
        given = int_or(data.get("input_tokens"), 0)
        made = int_or(data.get("output_tokens"), 0)
        details_in = data.get("input_tokens_details")
        details_out = data.get("output_tokens_details")
        cached = details_in.get("cached_tokens") if isinstance(details_in, dict) else 0
        reasoning = details_out.get("reasoning_tokens") if isinstance(details_out, dict) else 0
        return cls(
            input_tokens=given,
            output_tokens=made,
            total_tokens=int_or(data.get("total_tokens"), 0) or given + made,
            cached_tokens=int_or(cached, 0),
            reasoning_tokens=int_or(reasoning, 0),
        )


@dataclass(frozen=True)
class FunctionToolCall:
    """A ``function_call`` output item: call ``name`` with JSON ``arguments``.

    ``call_id`` is what the answer quotes; ``id`` is the item's own id.
    """

    call_id: str
    name: str
    arguments: str
    id: str = ""

    @property
    def type(self) -> str:
        return "function_call"

    def answer(self, output: str) -> Dict[str, Any]:
        """The input item that gives this call its result."""
        return {"type": "function_call_output", "call_id": self.call_id, "output": output}


@dataclass(frozen=True)
class CustomToolCall:
    """A ``custom_tool_call`` output item: free-form ``input`` for tool ``name``."""

    call_id: str
    name: str
    input: str
    id: str = ""

    @property
    def type(self) -> str:
        return "custom_tool_call"

    def answer(self, output: str) -> Dict[str, Any]:
        """The input item that gives this call its result."""
        return {"type": "custom_tool_call_output", "call_id": self.call_id, "output": output}


ResponseToolCall = Union[FunctionToolCall, CustomToolCall]


@dataclass(frozen=True)
class Response:
    """A response object, from a plain answer or an assembled stream.

    ``output`` holds the output items as the wire sent them (dicts), unknown
    types included, so a list of them can go back as ``input``. ``status``
    is kept as sent: ``completed``, ``incomplete`` (see
    ``incomplete_details``), ``failed`` (see ``error``), ``in_progress`` for
    a stream cut short. ``sequence_gaps`` lists the stream's
    ``sequence_number`` values that never arrived. ``request_id``,
    ``retries_taken``, ``elapsed``, ``headers`` are the client's, as on
    ``Completion``; ``raw`` is the decoded response object. ``degraded``
    is set by a client whose fallback answered, as on ``Completion``.
    """

    id: str = ""
    status: str = ""
    model: str = ""
    created_at: int = 0
    output: Tuple[Dict[str, Any], ...] = field(default=(), hash=False)
    usage: Optional[ResponseUsage] = None
    error: Optional[Dict[str, Any]] = field(default=None, hash=False)
    incomplete_details: Optional[Dict[str, Any]] = field(default=None, hash=False)
    previous_response_id: Optional[str] = None
    sequence_gaps: Tuple[int, ...] = ()
    request_id: Optional[str] = None
    retries_taken: int = 0
    elapsed: float = 0.0
    degraded: bool = False
    headers: Headers = field(default_factory=Headers, repr=False, compare=False)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def output_text(self) -> str:
        """The ``output_text`` parts of the message items, joined."""
        return "".join(
            part["text"]
            for part in _parts(self.output, "message", "content")
            if part.get("type") == "output_text" and isinstance(part.get("text"), str)
        )

    @property
    def refusal(self) -> Optional[str]:
        """The ``refusal`` parts of the message items, joined; ``None`` if none."""
        found = [
            part["refusal"]
            for part in _parts(self.output, "message", "content")
            if part.get("type") == "refusal" and isinstance(part.get("refusal"), str)
        ]
        return "".join(found) if found else None

    @property
    def reasoning(self) -> Optional[str]:
        """The reasoning summaries, one paragraph each; ``None`` if none.

        Without a summary, a reasoning item's ``reasoning_text`` content is
        used: open-weight models served by OpenRouter send their raw
        thinking that way.
        """
        texts = [
            part["text"]
            for part in _parts(self.output, "reasoning", "summary")
            if isinstance(part.get("text"), str)
        ]
        if not texts:
            texts = [
                part["text"]
                for part in _parts(self.output, "reasoning", "content")
                if part.get("type") == "reasoning_text" and isinstance(part.get("text"), str)
            ]
        return "\n\n".join(texts) if texts else None

    @property
    def tool_calls(self) -> Tuple[ResponseToolCall, ...]:
        """The ``function_call`` and ``custom_tool_call`` items, in order."""
        calls: List[ResponseToolCall] = []
        for item in self.output:
            kind = item.get("type")
            if kind == "function_call":
                calls.append(
                    FunctionToolCall(
                        call_id=_text(item.get("call_id")),
                        name=_text(item.get("name")),
                        arguments=_text(item.get("arguments")),
                        id=_text(item.get("id")),
                    )
                )
            elif kind == "custom_tool_call":
                calls.append(
                    CustomToolCall(
                        call_id=_text(item.get("call_id")),
                        name=_text(item.get("name")),
                        input=_text(item.get("input")),
                        id=_text(item.get("id")),
                    )
                )
        return tuple(calls)

    @property
    def incomplete_reason(self) -> Optional[str]:
        """Why an ``incomplete`` response stopped: ``max_output_tokens``, ``content_filter``."""
        details = self.incomplete_details or {}
        return label(details.get("reason"))


def _parts(output: Sequence[Mapping[str, Any]], kind: str, key: str) -> List[Mapping[str, Any]]:
    """The parts listed under ``key`` in the output items of type ``kind``."""
    found = []
    for item in output:
        if item.get("type") == kind and isinstance(item.get(key), list):
            found.extend(part for part in item[key] if isinstance(part, Mapping))
    return found


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def parse_response(data: Any) -> Response:
    """A decoded response object to a ``Response``.

    Tolerates what compatible servers leave out or add (``usage``, an
    unusual ``status``, item types rawchat does not know); refuses what
    makes the answer unreadable, with ``InvalidResponseError``.
    """
    if not isinstance(data, dict):
        raise InvalidResponseError(f"expected a JSON object, got {type(data).__name__}", body=data)
    kind = data.get("object")
    if "error" in data and data.get("error") and "output" not in data:
        message, _type, code, _param = error_details(data)
        raise InvalidResponseError(
            f"the server sent an error with a success status: {message}",
            body=data,
            hint=f"error code {code!r}" if code else "",
        )
    if kind is not None and kind != "response":
        raise InvalidResponseError(
            f"expected a response object, got object {kind!r}",
            body=data,
            hint="the server answered in another API's shape; if it has no Responses "
            "API, use Chat Completions (client.chat)"
            if kind == "chat.completion"
            else "",
        )
    output = data.get("output")
    if not isinstance(output, list):
        raise InvalidResponseError(
            "the response has no 'output' list",
            body=data,
            hint="is the base URL pointing at a server with the Responses API? "
            "If it has only Chat Completions, use client.chat",
        )
    for n, item in enumerate(output):
        if not isinstance(item, dict):
            raise InvalidResponseError(f"output[{n}] is not an object", body=item)
    return _response(data, tuple(output))


def _response(data: Mapping[str, Any], output: Tuple[Dict[str, Any], ...]) -> Response:
    """The ``Response`` for an already checked response object and its output."""
    error = data.get("error")
    details = data.get("incomplete_details")
    return Response(
        id=label(data.get("id")) or "",
        status=label(data.get("status")) or "",
        model=label(data.get("model")) or "",
        created_at=int_or(data.get("created_at"), 0),
        output=output,
        usage=ResponseUsage.from_wire(data.get("usage")),
        error=error if isinstance(error, dict) else None,
        incomplete_details=details if isinstance(details, dict) else None,
        previous_response_id=label(data.get("previous_response_id")),
        raw=data,
    )


def response_from_http(response: HTTPResponse) -> Response:
    """A successful (2xx) response to ``POST /responses`` or ``GET /responses/{id}``."""
    refuse_html(response, "a response object")
    return replace(
        parse_response(response.json()),
        headers=response.headers,
        request_id=response.request_id,
        elapsed=response.elapsed,
    )


# -- errors ----------------------------------------------------------------------

_NOT_FOUND_PREVIOUS = re.compile(r"previous response .* not found", re.IGNORECASE)
_NO_STATE = re.compile(r"not supported|unsupported|stateless|not allowed", re.IGNORECASE)
_STORED = re.compile(r"/responses/[^/]+$")


def response_error_hint(
    status: int,
    *,
    code: Optional[str] = None,
    param: Optional[str] = None,
    message: str = "",
    url: str = "",
) -> str:
    """What a failed Responses call most likely means, or ``""`` if nothing
    particular to this API (the generic hint of ``error_from_response`` then
    stands)."""
    if code == "previous_response_not_found" or _NOT_FOUND_PREVIOUS.search(message):
        return (
            "previous_response_id names a response this server does not have: it "
            "expired, was made with store=false, or belongs to another project or "
            "endpoint; send the conversation as input instead, or start a new chain"
        )
    if status in (400, 422) and (
        param in ("store", "previous_response_id")
        or (("store" in message or "previous_response_id" in message) and _NO_STATE.search(message))
    ):
        return (
            "this server keeps no responses: send store=false, and instead of "
            "previous_response_id send the whole conversation as input each turn "
            "(the earlier output items go back as they came)"
        )
    path = urlsplit(url).path
    if status == 404 and _STORED.search(path) and code != "model_not_found":
        return (
            "no stored response has that id here: responses made with store=false, "
            "expired or deleted ones, and other projects' cannot be retrieved"
        )
    if status in (404, 405) and path.endswith("/responses") and code != "model_not_found":
        if "/v1/" not in path and "/openai/" not in path and "/api/v3/" not in path:
            return ""  # the generic hint says to add /v1 to the base URL
        return (
            f"{url} is not there: this server has no Responses API (many "
            "OpenAI-compatible servers offer only /chat/completions); use Chat "
            "Completions (client.chat) instead"
        )
    return ""


def responses_error(
    response: HTTPResponse, context: Optional[ErrorContext] = None
) -> APIStatusError:
    """The typed error for a failed Responses call: ``error_from_response``,
    with the hint of ``response_error_hint`` where it has one."""
    return error_from_response(response, context, hints=response_error_hint)
