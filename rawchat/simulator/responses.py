"""The simulator's Responses API: ``POST /v1/responses``, ``GET`` and ``DELETE /v1/responses/{id}``.

The server side of https://platform.openai.com/docs/api-reference/responses,
as pure functions of the parsed request body: the deterministic model of
``model.py`` answers (a message, or a call of the first function tool
offered), and the answer comes back as a response object or as the event
stream OpenAI sends, in OpenAI's order, with ``event:`` lines and
``sequence_number``::

    response.created, response.in_progress,
    per output item: response.output_item.added,
        a message:   response.content_part.added, response.output_text.delta...,
                     response.output_text.done, response.content_part.done
        a call:      response.function_call_arguments.delta..., ...arguments.done
        reasoning:   response.reasoning_summary_part.added, ...summary_text.delta...,
                     ...summary_text.done, ...summary_part.done
    response.output_item.done, then response.completed (or response.incomplete)

A ``ResponseStore`` keeps stored responses (``store`` is true unless the
request says false) with the conversation that led to them, so
``previous_response_id`` continues it and ``GET /v1/responses/{id}`` reads
it back. No sockets and no clock here: ids and ``created_at`` are
arguments, and the app turns a ``ResponsesAnswer`` into bytes on the wire.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..protocol.sse import encode_event
from .model import MODELS, Reply, pieces, prompt_tokens, reply_to

__all__ = [
    "RESPONSES_PATH",
    "RESPONSE_PATH",
    "ResponseStore",
    "ResponsesAnswer",
    "ResponsesEndpoint",
    "error_answer",
]

RESPONSES_PATH = re.compile(r"^(?:/v1|/openai/v1)/responses$")
#: ``GET`` of one stored response; group 1 is its id.
RESPONSE_PATH = re.compile(r"^(?:/v1|/openai/v1)/responses/([^/]+)$")


@dataclass(frozen=True)
class ResponsesAnswer:
    """What to send back: a status and a JSON ``body`` (a response object or
    an error), or for a stream the SSE ``events``, one bytes value per event."""

    status: int
    body: Mapping[str, Any] = field(default_factory=dict)
    events: Tuple[bytes, ...] = ()

    @property
    def streaming(self) -> bool:
        return bool(self.events)


def error_answer(
    status: int,
    message: str,
    *,
    code: Optional[str] = None,
    param: Optional[str] = None,
    type_: str = "invalid_request_error",
) -> ResponsesAnswer:
    """An error in OpenAI's shape: ``{"error": {message, type, param, code}}``."""
    return ResponsesAnswer(
        status, {"error": {"message": message, "type": type_, "param": param, "code": code}}
    )


class ResponseStore:
    """Stored responses, each with its conversation: the input items that led
    to it and its output, which a ``previous_response_id`` continues from.

    Holds at most ``limit`` responses, dropping the oldest; safe to share
    between the server's threads.
    """

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._kept: Dict[str, Tuple[Dict[str, Any], List[Dict[str, Any]]]] = {}

    def save(self, response: Dict[str, Any], conversation: List[Dict[str, Any]]) -> None:
        with self._lock:
            self._kept[response["id"]] = (response, list(conversation))
            while len(self._kept) > self.limit:
                del self._kept[next(iter(self._kept))]  # dicts keep insertion order

    def get(self, response_id: str) -> Optional[Dict[str, Any]]:
        """The stored response object, or ``None``."""
        with self._lock:
            kept = self._kept.get(response_id)
        return kept[0] if kept else None

    def delete(self, response_id: str) -> bool:
        """Forget a response; whether there was one."""
        with self._lock:
            return self._kept.pop(response_id, None) is not None

    def conversation(self, response_id: str) -> Optional[List[Dict[str, Any]]]:
        """The items up to and including the response's output, or ``None``."""
        with self._lock:
            kept = self._kept.get(response_id)
        return list(kept[1]) if kept else None

    def __len__(self) -> int:
        return len(self._kept)

    def __contains__(self, response_id: object) -> bool:
        return response_id in self._kept


class ResponsesEndpoint:
    """The Responses API of the simulator; the app routes to ``create``, ``retrieve``
    and ``delete``."""

    def __init__(self, models: Sequence[str] = MODELS, store: Optional[ResponseStore] = None):
        self.models = tuple(models)
        self.store = store if store is not None else ResponseStore()

    def retrieve(self, response_id: str) -> ResponsesAnswer:
        """``GET /v1/responses/{id}``."""
        found = self.store.get(response_id)
        if found is None:
            return error_answer(404, f"Response with id '{response_id}' not found.")
        return ResponsesAnswer(200, found)

    def delete(self, response_id: str) -> ResponsesAnswer:
        """``DELETE /v1/responses/{id}``."""
        if not self.store.delete(response_id):
            return error_answer(404, f"Response with id '{response_id}' not found.")
        return ResponsesAnswer(200, {"id": response_id, "object": "response", "deleted": True})

    def create(
        self, body: Any, *, response_id: str, created_at: int, reason: bool = False
    ) -> ResponsesAnswer:
        """``POST /v1/responses`` with the parsed JSON ``body``.

        ``response_id`` names the response (``resp_...``; its items' ids are
        made from it); ``reason`` makes any model think aloud first.
        """
        refused = self._check(body)
        if refused is not None:
            return refused
        previous = body.get("previous_response_id")
        earlier: List[Dict[str, Any]] = []
        if previous is not None:
            found = self.store.conversation(previous) if isinstance(previous, str) else None
            if found is None:
                return error_answer(
                    404,
                    f"Previous response with id '{previous}' not found.",
                    code="previous_response_not_found",
                    param="previous_response_id",
                )
            earlier = found
        given = body["input"]
        items = [{"role": "user", "content": given}] if isinstance(given, str) else list(given)
        conversation = earlier + items
        messages = _messages(conversation)
        instructions = body.get("instructions")
        if instructions:  # not carried over from a previous response, as on OpenAI
            messages.insert(0, {"role": "system", "content": instructions})
        if not messages:
            return error_answer(400, "The input holds no message to answer.", param="input")
        chat = {
            "model": body["model"],
            "messages": messages,
            "tools": _chat_tools(body.get("tools") or []),
            "tool_choice": _chat_tool_choice(body.get("tool_choice", "auto")),
            "max_tokens": body.get("max_output_tokens"),
        }
        reply = reply_to(chat, reason=reason)
        suffix = response_id[len("resp_") :] if response_id.startswith("resp_") else response_id
        output = _output(reply, suffix)
        response = _response_object(body, response_id, created_at, reply, output)
        response["usage"] = _usage(prompt_tokens(messages), reply)
        if body.get("store") is not False:
            self.store.save(response, conversation + output)
        if body.get("stream"):
            return ResponsesAnswer(200, response, tuple(_stream(response)))
        return ResponsesAnswer(200, response)

    def _check(self, body: Any) -> Optional[ResponsesAnswer]:
        if not isinstance(body, dict):
            return error_answer(400, "The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return error_answer(400, "Missing required parameter: 'model'.", param="model")
        if model not in self.models:
            return error_answer(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
                param="model",
            )
        for name, moved in (("messages", "input"), ("max_tokens", "max_output_tokens")):
            if name in body:
                return error_answer(
                    400,
                    f"Unsupported parameter: '{name}'. In the Responses API, this "
                    f"parameter has moved to '{moved}'.",
                    code="unsupported_parameter",
                    param=name,
                )
        given = body.get("input")
        if not isinstance(given, str) and not (
            isinstance(given, list) and given and all(isinstance(i, dict) for i in given)
        ):
            return error_answer(
                400, "'input' must be a string or a non-empty array of items.", param="input"
            )
        tools = body.get("tools") or []
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            return error_answer(400, "'tools' must be an array of objects.", param="tools")
        for n, tool in enumerate(tools):
            if tool.get("type") in ("function", "custom") and not tool.get("name"):
                return error_answer(
                    400,
                    f"Missing required parameter: 'tools[{n}].name'.",
                    code="missing_required_parameter",
                    param=f"tools[{n}].name",
                )
        return None


def _messages(items: List[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Input and output items as the chat messages the model reads."""
    messages: List[Dict[str, Any]] = []
    for item in items:
        kind = item.get("type")
        if kind in (None, "message") and item.get("role"):
            messages.append({"role": item["role"], "content": _content(item.get("content"))})
        elif kind in ("function_call_output", "custom_tool_call_output"):
            messages.append({"role": "tool", "content": _content(item.get("output"))})
        elif kind in ("function_call", "custom_tool_call"):
            messages.append({"role": "assistant", "content": None})
    return messages


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") in ("input_text", "output_text")
        )
    return ""


def _chat_tools(tools: List[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """The function tools, in the shape the model reads (chat's)."""
    return [
        {
            "type": "function",
            "function": {"name": tool["name"], "parameters": tool.get("parameters") or {}},
        }
        for tool in tools
        if tool.get("type") == "function"
    ]


def _chat_tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return choice


def _output(reply: Reply, suffix: str) -> List[Dict[str, Any]]:
    output: List[Dict[str, Any]] = []
    if reply.reasoning:
        output.append(
            {
                "type": "reasoning",
                "id": f"rs_{suffix}",
                "summary": [{"type": "summary_text", "text": reply.reasoning}],
            }
        )
    for n, call in enumerate(reply.tool_calls):
        output.append(
            {
                "type": "function_call",
                "id": f"fc_{suffix}_{n}",
                "call_id": f"call_{suffix}_{n}",
                "name": call["function"]["name"],
                "arguments": call["function"]["arguments"],
                "status": "completed",
            }
        )
    if reply.content is not None:
        output.append(
            {
                "type": "message",
                "id": f"msg_{suffix}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": reply.content, "annotations": []}],
            }
        )
    return output


def _response_object(
    body: Mapping[str, Any],
    response_id: str,
    created_at: int,
    reply: Reply,
    output: List[Dict[str, Any]],
) -> Dict[str, Any]:
    incomplete = reply.finish_reason == "length"
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": "incomplete" if incomplete else "completed",
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"],
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "store": body.get("store") is not False,
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": None,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def _usage(input_tokens: int, reply: Reply) -> Dict[str, Any]:
    reasoning = len(pieces(reply.reasoning)) if reply.reasoning else 0
    output = reply.completion_tokens + reasoning
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output,
    }


def _stream(response: Mapping[str, Any]) -> List[bytes]:
    """The SSE events of a streamed response, one bytes value per event."""
    events: List[bytes] = []

    def send(kind: str, **fields: Any) -> None:
        data = {"type": kind, "sequence_number": len(events), **fields}
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        events.append(encode_event(text, event=kind))

    opening = dict(response, status="in_progress", output=[], usage=None, incomplete_details=None)
    send("response.created", response=opening)
    send("response.in_progress", response=opening)
    for index, item in enumerate(response["output"]):
        at = {"output_index": index, "item_id": item["id"]}
        kind = item["type"]
        if kind == "message":
            send(
                "response.output_item.added",
                output_index=index,
                item=dict(item, status="in_progress", content=[]),
            )
            part = item["content"][0]
            text = part["text"]
            send("response.content_part.added", **at, content_index=0, part=dict(part, text=""))
            for piece in pieces(text):
                send("response.output_text.delta", **at, content_index=0, delta=piece, logprobs=[])
            send("response.output_text.done", **at, content_index=0, text=text, logprobs=[])
            send("response.content_part.done", **at, content_index=0, part=part)
        elif kind == "function_call":
            send(
                "response.output_item.added",
                output_index=index,
                item=dict(item, status="in_progress", arguments=""),
            )
            arguments = item["arguments"]
            for start in range(0, len(arguments), 8):  # fragments, as real servers cut them
                send(
                    "response.function_call_arguments.delta",
                    **at,
                    delta=arguments[start : start + 8],
                )
            send("response.function_call_arguments.done", **at, arguments=arguments)
        elif kind == "reasoning":
            send("response.output_item.added", output_index=index, item=dict(item, summary=[]))
            part = item["summary"][0]
            text = part["text"]
            send(
                "response.reasoning_summary_part.added",
                **at,
                summary_index=0,
                part=dict(part, text=""),
            )
            for piece in pieces(text):
                send("response.reasoning_summary_text.delta", **at, summary_index=0, delta=piece)
            send("response.reasoning_summary_text.done", **at, summary_index=0, text=text)
            send("response.reasoning_summary_part.done", **at, summary_index=0, part=part)
        send("response.output_item.done", output_index=index, item=item)
    terminal = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
    send(terminal, response=response)
    return events
