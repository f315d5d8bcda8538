"""The simulator as a pure function: ``SimulatorApp.handle(request) -> response``.

It speaks the server side of the Chat Completions protocol
(https://platform.openai.com/docs/api-reference/chat): ``POST
/v1/chat/completions``, plain or streamed (``chat.completion.chunk``
events, the usage chunk with empty ``choices`` when
``stream_options.include_usage`` is set, then ``data: [DONE]``), and ``GET
/v1/models``; and the Responses API (``responses.py``): ``POST
/v1/responses``, plain or streamed as named events, ``GET`` and ``DELETE
/v1/responses/{id}`` for the responses it stored; and the audio endpoints
(``audio.py``): ``POST /v1/audio/speech``, ``/v1/audio/transcriptions``
and ``/v1/audio/translations``; and the Files and Batch APIs
(``batches.py``): ``/v1/files`` and ``/v1/batches``, each batch line
answered by the chat model. Fault scripts apply to all of their streams.
Failures come back as OpenAI-shaped error bodies with the status codes
OpenAI uses, so clients meet the real thing. ``GET /_rawchat/stats``
reports the requests seen, per key fingerprint, so a test in any language
can count a client's attempts.

No sockets here: ``server.py`` puts these values on the wire. Tests and
notebooks can call ``handle`` directly.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..protocol.http import Headers, fingerprint
from ..protocol.ratelimit import TokenBucket
from ..protocol.sse import encode_event
from .audio import AudioAnswer, speak, transcribe
from .batches import BATCHES_PATH, FILES_PATH, BatchAnswer, BatchesEndpoint
from .faults import (
    HTML_PAGE,
    STATUS_FAULTS,
    Fault,
    FaultError,
    Step,
    error_body,
    parse_faults,
    shape_audio_body,
    shape_audio_stream,
    shape_response_stream,
    shape_stream,
    spaced,
)
from .model import MODELS, Reply, pieces, prompt_tokens, reply_to
from .responses import RESPONSE_PATH, RESPONSES_PATH, ResponsesAnswer, ResponsesEndpoint

__all__ = ["SimRequest", "SimResponse", "SimulatorApp"]

_CHAT_PATH = re.compile(r"^(?:/v1|/openai/deployments/([^/]+)|/openai/v1)/chat/completions$")
_MODELS_PATH = re.compile(r"^(?:/v1|/openai/v1|/openai)/models$")
_AUDIO_PATH = re.compile(
    r"^(?:/v1|/openai/deployments/([^/]+)|/openai/v1)/audio/(speech|transcriptions|translations)$"
)


@dataclass(frozen=True)
class SimRequest:
    """A request as the server received it."""

    method: str
    path: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""


@dataclass(frozen=True)
class SimResponse:
    """A response to write.

    With ``steps`` the body is streamed with chunked transfer encoding: each
    ``bytes`` step is one HTTP chunk, a ``Pause`` waits, a ``Drop`` closes
    the connection mid-body. ``delay`` waits before the headers; ``drop``
    closes the connection without any response.
    """

    status: int
    headers: Tuple[Tuple[str, str], ...] = ()
    body: bytes = b""
    steps: Tuple[Step, ...] = ()
    delay: float = 0.0
    drop: bool = False

    @property
    def streaming(self) -> bool:
        return bool(self.steps)


def error_response(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    code: Optional[str] = None,
    param: Optional[str] = None,
    headers: Sequence[Tuple[str, str]] = (),
) -> SimResponse:
    """An error in OpenAI's shape: ``{"error": {message, type, param, code}}``."""
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return SimResponse(status, (("Content-Type", "application/json"), *headers), _json(body))


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class SimulatorApp:
    """The simulator's behaviour, independent of any socket.

    ``api_keys``: the keys accepted (``None`` accepts any non-empty key).
    ``models``: the model names served. ``clock``: seconds since the epoch,
    for ``created``. ``chunk_interval``: seconds between streamed chunks.
    ``faults``: a fault script (see ``faults.py``) applied to every request,
    on top of any a request asks for in its ``X-Rawchat-Fault`` header.
    ``requests_per_minute`` limits each key as a provider would (a token
    bucket holding ``burst`` requests, a minute's worth by default, timed by
    ``monotonic``) and reports it in ``x-ratelimit-*`` headers.
    """

    def __init__(
        self,
        *,
        api_keys: Optional[Sequence[str]] = None,
        models: Sequence[str] = MODELS,
        clock: Callable[[], float] = lambda: 1700000000.0,
        chunk_interval: float = 0.0,
        faults: str = "",
        requests_per_minute: Optional[float] = None,
        burst: Optional[float] = None,
        monotonic: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.faults = parse_faults(faults)
        self.requests_per_minute = requests_per_minute
        self.burst = burst
        self.monotonic = monotonic
        self._buckets: Dict[str, TokenBucket] = {}
        #: Requests refused with 429 by the rate limit (not by fault scripts).
        self.rate_limited = 0
        self._fault_uses: Dict[Tuple[str, str], int] = {}
        self.api_keys = None if api_keys is None else frozenset(api_keys)
        self.models = tuple(models)
        self.clock = clock
        self.chunk_interval = chunk_interval
        self._lock = threading.Lock()
        self._count = 0
        #: Requests seen per key fingerprint ("none" when no key was sent).
        self.requests_by_key: Dict[str, int] = {}
        #: The Responses API, with the responses stored for previous_response_id.
        self.responses = ResponsesEndpoint(self.models)
        #: The Files and Batch APIs, their lines answered by the same model.
        self.batches = BatchesEndpoint(self._batch_line)

    @property
    def request_count(self) -> int:
        return self._count

    def handle(self, request: SimRequest) -> SimResponse:
        if request.path == "/_rawchat/stats":  # not an API request: not counted
            with self._lock:
                stats = {"requests": self._count, "requests_by_key": dict(self.requests_by_key)}
            return SimResponse(200, (("Content-Type", "application/json"),), _json(stats))
        key = _key_of(request.headers)
        with self._lock:
            self._count += 1
            number = self._count
            label = fingerprint(key) if key else "none"
            self.requests_by_key[label] = self.requests_by_key.get(label, 0) + 1
        try:
            faults = self._active_faults(request.headers.get("x-rawchat-fault", ""), label)
        except FaultError as exc:
            response = error_response(400, str(exc), param="X-Rawchat-Fault")
        else:
            response = self._faulty(request, key, number, faults)
        extra = (("x-request-id", f"req_sim{number:06d}"), ("openai-processing-ms", "0"))
        return replace(response, headers=response.headers + extra)

    def _active_faults(self, script: str, scope: str) -> Tuple[Fault, ...]:
        """The faults that fire on this request; each firing uses one up."""
        candidates = [("server", f) for f in self.faults]
        candidates += [(scope, f) for f in parse_faults(script)]
        active = []
        with self._lock:
            for owner, fault in candidates:
                used = self._fault_uses.get((owner, fault.text), 0)
                if fault.times is None or used < fault.times:
                    self._fault_uses[(owner, fault.text)] = used + 1
                    active.append(fault)
        return tuple(active)

    def _faulty(
        self, request: SimRequest, key: Optional[str], number: int, faults: Tuple[Fault, ...]
    ) -> SimResponse:
        names = {f.name: f for f in faults}
        status = next((f for f in faults if f.name in STATUS_FAULTS), None)
        if status is not None:
            code, headers, body = error_body(status.name, status.value)
            response = SimResponse(code, tuple(headers), body)
        elif "html" in names:
            response = SimResponse(200, (("Content-Type", "text/html"),), HTML_PAGE)
        else:
            limited, limit_headers = self._rate_limit(fingerprint(key) if key else "none")
            response = limited or self._route(request, key, number, faults)
            response = replace(response, headers=response.headers + limit_headers)
        if "delay" in names:
            response = replace(response, delay=float(names["delay"].value or 0))
        if "drop" in names:
            response = replace(response, drop=True)
        return response

    def _rate_limit(self, label: str) -> Tuple[Optional[SimResponse], Tuple[Tuple[str, str], ...]]:
        """A 429 if ``label``'s bucket is empty, else None; and the headers to add."""
        rpm = self.requests_per_minute
        if not rpm:
            return None, ()
        now = self.monotonic()
        with self._lock:
            bucket = self._buckets.get(label)
            if bucket is None:
                bucket = self._buckets[label] = TokenBucket(
                    self.burst or rpm, rpm / 60.0, updated=now
                )
            wait = bucket.wait_for(1, now)
            if wait <= 0:
                bucket.take(1, now)
            remaining = max(0, int(bucket.level))
            reset = (bucket.capacity - bucket.level) / bucket.rate
            if wait > 0:
                self.rate_limited += 1
        headers = (
            ("x-ratelimit-limit-requests", f"{rpm:g}"),
            ("x-ratelimit-remaining-requests", str(remaining)),
            ("x-ratelimit-reset-requests", f"{reset:.3f}s"),
        )
        if wait <= 0:
            return None, headers
        response = error_response(
            429,
            f"Rate limit reached for requests per min (RPM): Limit {rpm:g}. "
            f"Please try again in {wait:.3f}s.",
            type_="requests",
            code="rate_limit_exceeded",
            headers=[("retry-after-ms", str(int(wait * 1000) + 1))],
        )
        return response, ()

    def _route(
        self, request: SimRequest, key: Optional[str], number: int, faults: Tuple[Fault, ...]
    ) -> SimResponse:
        path = request.path.split("?", 1)[0]
        if RESPONSES_PATH.match(path) or RESPONSE_PATH.match(path):
            return self._responses(request, path, number, faults, self._authenticate(key))
        files, batches = FILES_PATH.match(path), BATCHES_PATH.match(path)
        if files is not None or batches is not None:
            return self._authenticate(key) or _batch_response(
                self._files(request, files) if files else self._batch(request, batches)
            )
        audio = _AUDIO_PATH.match(path)
        if audio is not None:
            if request.method != "POST":
                return error_response(405, f"Method {request.method} not allowed on {path}")
            return self._authenticate(key) or self._audio(request, audio.group(2), number, faults)
        chat = _CHAT_PATH.match(path)
        if chat is None and not _MODELS_PATH.match(path):
            return error_response(404, f"Invalid URL ({request.method} {path})")
        if (chat is not None and request.method != "POST") or (
            chat is None and request.method != "GET"
        ):
            return error_response(405, f"Method {request.method} not allowed on {path}")
        denied = self._authenticate(key)
        if denied is not None:
            return denied
        if chat is None:
            data = [
                {
                    "id": m,
                    "object": "model",
                    "created": 1700000000,
                    "owned_by": "rawchat",
                }
                for m in self.models
            ]
            return SimResponse(
                200,
                (("Content-Type", "application/json"),),
                _json({"object": "list", "data": data}),
            )
        return self._chat(request.body, deployment=chat.group(1), number=number, faults=faults)

    def _responses(
        self,
        request: SimRequest,
        path: str,
        number: int,
        faults: Tuple[Fault, ...],
        denied: Optional[SimResponse],
    ) -> SimResponse:
        stored = RESPONSE_PATH.match(path)
        allowed = ("GET", "DELETE") if stored else ("POST",)
        if request.method not in allowed:
            return error_response(405, f"Method {request.method} not allowed on {path}")
        if denied is not None:
            return denied
        if stored is not None:
            found = stored.group(1)
            if request.method == "GET":
                return _answer(self.responses.retrieve(found))
            return _answer(self.responses.delete(found))
        try:
            body = json.loads(request.body)
        except ValueError:
            return error_response(400, "We could not parse the JSON body of your request.")
        names = {f.name for f in faults}
        answer = self.responses.create(
            body,
            response_id=f"resp_sim{number:06d}",
            created_at=int(self.clock()),
            reason="reasoning" in names,
        )
        if not answer.streaming or "json-stream" in names:
            return _answer(answer)
        steps = shape_response_stream(answer.events, faults)
        if self.chunk_interval:
            steps = spaced(steps, self.chunk_interval)
        return SimResponse(200, _STREAM_HEADERS, steps=tuple(steps))

    def _audio(
        self, request: SimRequest, endpoint: str, number: int, faults: Tuple[Fault, ...]
    ) -> SimResponse:
        names = {f.name for f in faults}
        if endpoint == "speech":
            answer = speak(request.body, models=self.models)
        else:
            shape = "transcript.text"
            if "chunk-shape" in names:
                shape = "chunk"
            elif "segment-shape" in names:
                shape = "segments"
            answer = transcribe(
                request.body,
                request.headers.get("content-type", ""),
                translate=endpoint == "translations",
                shape=shape,
                models=self.models,
                number=number,
                created=int(self.clock()),
            )
        return _audio_response(answer, faults, self.chunk_interval)

    def _files(self, request: SimRequest, match: Any) -> BatchAnswer:
        file_id, content = match.group(1), match.group(2)
        allowed = {
            (False, False): ("GET", "POST"),
            (True, False): ("GET", "DELETE"),
            (True, True): ("GET",),
        }[(file_id is not None, content is not None)]
        if request.method not in allowed:
            return BatchAnswer(405, _method_error(request))
        if file_id is None:
            if request.method == "GET":
                return self.batches.list_files()
            content_type = request.headers.get("content-type", "")
            return self.batches.upload(request.body, content_type, self.clock())
        if request.method == "DELETE":
            return self.batches.delete_file(file_id)
        return self.batches.file(file_id, content=content is not None)

    def _batch(self, request: SimRequest, match: Any) -> BatchAnswer:
        batch_id, cancel = match.group(1), match.group(2)
        expected = "POST" if batch_id is None or cancel else "GET"
        if request.method != expected and not (batch_id is None and request.method == "GET"):
            return BatchAnswer(405, _method_error(request))
        now = self.clock()
        if batch_id is None:
            if request.method == "GET":
                return self.batches.list_batches(now)
            return self.batches.create(request.body, now)
        if cancel:
            return self.batches.cancel(batch_id, now)
        return self.batches.retrieve(batch_id, now)

    def _batch_line(self, endpoint: str, body: Mapping[str, Any], number: int) -> Tuple[int, Any]:
        """One batch line, answered as its endpoint answers a request (never streamed)."""
        body = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        if endpoint == "/v1/responses":
            answer = self.responses.create(
                body, response_id=f"resp_batch{number:06d}", created_at=int(self.clock())
            )
            return answer.status, answer.body
        if endpoint != "/v1/chat/completions":
            return 404, json.loads(error_response(404, f"{endpoint} is not simulated").body)
        response = self._chat(_json(body), deployment=None, number=number, faults=())
        return response.status, json.loads(response.body)

    def _authenticate(self, key: Optional[str]) -> Optional[SimResponse]:
        if not key:
            return error_response(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code=None,
            )
        if self.api_keys is not None and key not in self.api_keys:
            shown = key[:3] + "*" * 4 + key[-4:] if len(key) >= 12 else "*" * 4
            return error_response(
                401,
                f"Incorrect API key provided: {shown}. The rawchat simulator accepts "
                "only the keys it was started with.",
                code="invalid_api_key",
            )
        return None

    def _chat(
        self, raw: bytes, *, deployment: Optional[str], number: int, faults: Tuple[Fault, ...]
    ) -> SimResponse:
        try:
            body = json.loads(raw)
        except ValueError:
            return error_response(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return error_response(400, "The request body must be a JSON object.")
        model = deployment or body.get("model")
        if not isinstance(model, str) or not model:
            return error_response(400, "you must provide a model parameter", param="model")
        if model not in self.models:
            return error_response(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
                param="model",
            )
        messages = body.get("messages")
        if (
            not isinstance(messages, list)
            or not messages
            or not all(isinstance(m, dict) for m in messages)
        ):
            return error_response(
                400,
                "'messages' must be a non-empty array of objects.",
                param="messages",
            )
        n = body.get("n", 1)
        if not isinstance(n, int) or not 1 <= n <= 8:
            return error_response(400, "'n' must be an integer from 1 to 8.", param="n")

        names = {f.name for f in faults}
        replies = [reply_to(body, choice, reason="reasoning" in names) for choice in range(n)]
        usage = _usage(prompt_tokens(messages), replies)
        head = {
            "id": f"chatcmpl-sim{number:06d}",
            "created": int(self.clock()),
            "model": model,
            "system_fingerprint": "fp_rawchat_sim",
        }
        if body.get("stream") and "json-stream" not in names:
            options = body.get("stream_options") or {}
            include_usage = isinstance(options, dict) and options.get("include_usage")
            events = _stream_parts(head, replies, usage if include_usage else None)
            steps = shape_stream(events, faults)
            if self.chunk_interval:
                steps = spaced(steps, self.chunk_interval)
            return SimResponse(200, _STREAM_HEADERS, steps=tuple(steps))
        completion = dict(
            head,
            object="chat.completion",
            choices=[
                {
                    "index": i,
                    "message": _message(reply),
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
                for i, reply in enumerate(replies)
            ],
            usage=usage,
        )
        return SimResponse(200, (("Content-Type", "application/json"),), _json(completion))


_STREAM_HEADERS = (
    ("Content-Type", "text/event-stream; charset=utf-8"),
    ("Cache-Control", "no-cache"),
)


def _answer(answer: ResponsesAnswer) -> SimResponse:
    """A plain (not streamed) answer of the Responses API."""
    return SimResponse(answer.status, (("Content-Type", "application/json"),), _json(answer.body))


def _batch_response(answer: BatchAnswer) -> SimResponse:
    """A Files or Batch API answer: a JSON object, or a file's JSON lines."""
    if answer.content is not None:
        return SimResponse(answer.status, (("Content-Type", "application/jsonl"),), answer.content)
    return SimResponse(answer.status, (("Content-Type", "application/json"),), _json(answer.body))


def _method_error(request: SimRequest) -> Dict[str, Any]:
    message = f"Method {request.method} not allowed on {request.path.split('?', 1)[0]}"
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    }


def _audio_response(answer: AudioAnswer, faults: Tuple[Fault, ...], interval: float) -> SimResponse:
    """An audio endpoint's answer on the wire: whole, or streamed with the faults applied."""
    headers = (("Content-Type", answer.content_type),)
    if answer.events:
        steps = shape_audio_stream(answer.events, faults)
        headers += (("Cache-Control", "no-cache"),)
    elif answer.pieces:
        steps = shape_audio_body(answer.pieces, faults)
    else:
        return SimResponse(answer.status, headers, answer.body)
    if interval:
        steps = spaced(steps, interval)
    return SimResponse(answer.status, headers, steps=tuple(steps))


def _key_of(headers: Headers) -> Optional[str]:
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("api-key") or None


def _message(reply: Reply) -> Dict[str, Any]:
    message: Dict[str, Any] = {
        "role": "assistant",
        "content": reply.content,
        "refusal": None,
    }
    if reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = list(reply.tool_calls)
    return message


def _usage(prompt: int, replies: List[Reply]) -> Dict[str, Any]:
    completion = sum(r.completion_tokens for r in replies)
    reasoning = sum(len(pieces(r.reasoning)) for r in replies if r.reasoning)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion + reasoning,
        "total_tokens": prompt + completion + reasoning,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def _stream_parts(
    head: Mapping[str, Any], replies: List[Reply], usage: Optional[Mapping[str, Any]]
) -> List[bytes]:
    """The SSE events of a streamed answer, one bytes object per event."""
    base = dict(head, object="chat.completion.chunk")

    def event(choices: List[Dict[str, Any]], **extra: Any) -> bytes:
        chunk = dict(base, choices=choices, **extra)
        return encode_event(json.dumps(chunk, ensure_ascii=False, separators=(",", ":")))

    def delta(index: int, finish: Optional[str] = None, **fields: Any) -> Dict[str, Any]:
        return {
            "index": index,
            "delta": fields,
            "logprobs": None,
            "finish_reason": finish,
        }

    parts = []
    for index, reply in enumerate(replies):
        parts.append(event([delta(index, role="assistant", content="", refusal=None)]))
        for piece in pieces(reply.reasoning or ""):
            parts.append(event([delta(index, reasoning_content=piece)]))
        for piece in pieces(reply.content or ""):
            parts.append(event([delta(index, content=piece)]))
        for position, call in enumerate(reply.tool_calls):
            function = call["function"]
            opening = {
                "index": position,
                "id": call["id"],
                "type": "function",
                "function": {"name": function["name"], "arguments": ""},
            }
            parts.append(event([delta(index, tool_calls=[opening])]))
            arguments = function["arguments"]
            for start in range(0, len(arguments), 8):  # fragments, as real servers cut them
                fragment = {
                    "index": position,
                    "function": {"arguments": arguments[start : start + 8]},
                }
                parts.append(event([delta(index, tool_calls=[fragment])]))
        parts.append(event([delta(index, reply.finish_reason)]))
    if usage is not None:
        parts.append(event([], usage=usage))
    parts.append(encode_event("[DONE]"))
    return parts
