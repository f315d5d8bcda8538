"""The Files and Batch APIs by hand: upload a JSONL file, run it as a batch, join the results.

The client side of https://platform.openai.com/docs/api-reference/files and
https://platform.openai.com/docs/api-reference/batch
(guide: https://platform.openai.com/docs/guides/batch). The wire is files
and polling, not streams::

    POST   /files                  multipart: purpose=batch, file=input.jsonl
    POST   /batches                {"input_file_id", "endpoint", "completion_window": "24h"}
    GET    /batches/{id}           poll: validating -> in_progress -> finalizing -> completed
    GET    /files/{id}/content     the output file (and the error file), JSON lines
    POST   /batches/{id}/cancel    cancelling -> cancelled
    GET    /files, /files/{id}, DELETE /files/{id}, GET /batches

Each input line is one request, named by a ``custom_id`` unique in the
file; results come back in any order, each naming its ``custom_id``, so
they are joined back to the input by it. A file holds at most 50,000
requests and 200 MB, and all its lines use one endpoint: ``plan_batch``
turns ``rawchat batch`` input lines into as many files as that takes.

A batch ends ``completed``, ``failed`` (the input was refused),
``expired`` (the window ran out: the output holds the lines that finished,
the error file marks the rest ``batch_expired``) or ``cancelled``.
``join_results`` keeps every finished line and lists the rest, to submit
again. Pure: ids, bytes and texts in, requests and values out.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote, urlencode

from ..errors import InvalidRequestError, InvalidResponseError
from .completion import label
from .http import HTTPRequest
from .multipart import MultipartForm, file_part, form_parts
from .request import headers_for
from .response import parse_completion
from .responses import parse_response
from .settings import Settings

__all__ = [
    "BATCH_STATUSES",
    "CHAT_ENDPOINT",
    "FILE_PURPOSES",
    "MAX_FILE_BYTES",
    "MAX_REQUESTS_PER_FILE",
    "RESPONSES_ENDPOINT",
    "RESUBMIT_CODES",
    "TERMINAL_STATUSES",
    "Batch",
    "BatchFile",
    "BatchLine",
    "BatchPlan",
    "BatchResult",
    "FileObject",
    "InvalidLine",
    "JoinedResults",
    "RequestCounts",
    "build_batch_cancel_request",
    "build_batch_create_request",
    "build_batch_list_request",
    "build_batch_retrieve_request",
    "build_file_content_request",
    "build_file_delete_request",
    "build_file_list_request",
    "build_file_retrieve_request",
    "build_file_upload_request",
    "check_batch_file",
    "join_results",
    "parse_batch",
    "parse_file",
    "plan_batch",
    "read_results",
]

#: Every status a batch goes through, in the order it can reach them.
BATCH_STATUSES = (
    "validating",
    "in_progress",
    "finalizing",
    "completed",
    "failed",
    "expired",
    "cancelling",
    "cancelled",
)
#: The statuses a batch never leaves: polling stops there.
TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
#: The documented limits of one batch input file.
MAX_REQUESTS_PER_FILE = 50_000
MAX_FILE_BYTES = 200 * 1024 * 1024
#: What ``purpose`` a file may be uploaded for; a batch reads only ``batch`` files.
FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
CHAT_ENDPOINT = "/v1/chat/completions"
RESPONSES_ENDPOINT = "/v1/responses"
BATCH_ENDPOINTS = (CHAT_ENDPOINT, RESPONSES_ENDPOINT, "/v1/embeddings", "/v1/completions")
#: Error-file codes of lines that never ran: they are worth submitting again.
RESUBMIT_CODES = frozenset({"batch_expired", "batch_cancelled"})


# -- requests ----------------------------------------------------------------------


def check_batch_file(size: int, filename: str, purpose: str = "batch") -> None:
    """Refuse an upload the Files API would refuse, before reading or sending it."""
    if purpose not in FILE_PURPOSES:
        raise InvalidRequestError(
            f"{purpose!r} is not a file purpose",
            hint="use one of " + ", ".join(FILE_PURPOSES) + " (batch input: purpose='batch')",
        )
    if purpose == "batch" and not filename.lower().endswith(".jsonl"):
        raise InvalidRequestError(
            f"{filename!r} is not a .jsonl file; a batch reads JSON lines",
            hint="name the upload something.jsonl, one request a line",
        )
    if purpose == "batch" and size > MAX_FILE_BYTES:
        raise InvalidRequestError(
            f"{filename!r} is {size:,} bytes, over the batch input limit of {MAX_FILE_BYTES:,}",
            hint="split it into several files (plan_batch does; rawchat batch --remote "
            "submits each as its own batch)",
        )
    if size == 0:
        raise InvalidRequestError(f"{filename!r} is empty", hint="there is nothing to upload")


def build_file_upload_request(
    settings: Settings,
    data: bytes,
    *,
    filename: str,
    boundary: str,
    purpose: str = "batch",
    extra_headers: Optional[Mapping[str, str]] = None,
) -> HTTPRequest:
    """``POST /files``: ``purpose`` then the file, as ``multipart/form-data``.

    ``boundary``: ``make_boundary(os.urandom(16))``. The purpose goes first
    so a server can refuse it without reading the file.
    """
    check_batch_file(len(data), filename, purpose)
    kind = (
        "application/jsonl" if filename.lower().endswith(".jsonl") else "application/octet-stream"
    )
    form = MultipartForm(
        (*form_parts({"purpose": purpose}), file_part("file", data, filename, kind)), boundary
    )
    headers = [
        pair
        for pair in headers_for(settings, has_body=False, extra=extra_headers)
        if pair[0].lower() != "content-type"
    ]
    headers.insert(1, ("Content-Type", form.content_type))
    return HTTPRequest(
        "POST", settings.url("/files"), headers=headers, body=form.encode(), form=form
    )


def build_file_list_request(
    settings: Settings,
    *,
    purpose: Optional[str] = None,
    limit: Optional[int] = None,
    after: Optional[str] = None,
    order: Optional[str] = None,
) -> HTTPRequest:
    """``GET /files``, optionally of one ``purpose``, paged with ``limit`` and ``after``."""
    query = {"purpose": purpose, "limit": limit, "after": after, "order": order}
    return _get(settings, "/files", query)


def build_file_retrieve_request(settings: Settings, file_id: str) -> HTTPRequest:
    """``GET /files/{id}``: the file object (size, purpose, status)."""
    return _get(settings, f"/files/{_id(file_id, 'file')}")


def build_file_content_request(settings: Settings, file_id: str) -> HTTPRequest:
    """``GET /files/{id}/content``: the bytes, read incrementally so they go
    to disk as they arrive (an output file can be hundreds of megabytes)."""
    request = _get(settings, f"/files/{_id(file_id, 'file')}/content")
    headers = [(n, "*/*" if n.lower() == "accept" else v) for n, v in request.headers.items()]
    return HTTPRequest("GET", request.url, headers=headers, stream=True)


def build_file_delete_request(settings: Settings, file_id: str) -> HTTPRequest:
    """``DELETE /files/{id}``."""
    path = f"/files/{_id(file_id, 'file')}"
    return HTTPRequest("DELETE", settings.url(path), headers=headers_for(settings, has_body=False))


def build_batch_create_request(
    settings: Settings,
    input_file_id: str,
    *,
    endpoint: str = CHAT_ENDPOINT,
    completion_window: str = "24h",
    metadata: Optional[Mapping[str, str]] = None,
    extra_headers: Optional[Mapping[str, str]] = None,
) -> HTTPRequest:
    """``POST /batches``: run an uploaded ``batch`` file against ``endpoint``."""
    if endpoint not in BATCH_ENDPOINTS:
        raise InvalidRequestError(
            f"{endpoint!r} is not an endpoint the Batch API runs",
            hint="use one of " + ", ".join(BATCH_ENDPOINTS),
        )
    if completion_window != "24h":
        raise InvalidRequestError(
            f"completion_window {completion_window!r} is not offered",
            hint="the Batch API takes completion_window='24h' only",
        )
    body: Dict[str, Any] = {
        "input_file_id": _id(input_file_id, "file"),
        "endpoint": endpoint,
        "completion_window": completion_window,
    }
    if metadata:
        if len(metadata) > 16 or not all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512
            for k, v in metadata.items()
        ):
            raise InvalidRequestError(
                "metadata is up to 16 string pairs (keys up to 64 characters, values up to 512)",
                hint="shorten or drop some metadata",
            )
        body["metadata"] = dict(metadata)
    return HTTPRequest(
        "POST",
        settings.url("/batches"),
        headers=headers_for(settings, extra=extra_headers),
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
    )


def build_batch_retrieve_request(settings: Settings, batch_id: str) -> HTTPRequest:
    """``GET /batches/{id}``: what polling asks."""
    return _get(settings, f"/batches/{_id(batch_id, 'batch')}")


def build_batch_list_request(
    settings: Settings, *, limit: Optional[int] = None, after: Optional[str] = None
) -> HTTPRequest:
    """``GET /batches``, newest first, paged with ``limit`` and ``after``."""
    return _get(settings, "/batches", {"limit": limit, "after": after})


def build_batch_cancel_request(settings: Settings, batch_id: str) -> HTTPRequest:
    """``POST /batches/{id}/cancel`` (no body): ``cancelling``, then ``cancelled``."""
    path = f"/batches/{_id(batch_id, 'batch')}/cancel"
    return HTTPRequest("POST", settings.url(path), headers=headers_for(settings, has_body=False))


def _get(settings: Settings, path: str, query: Optional[Mapping[str, Any]] = None) -> HTTPRequest:
    url = settings.url(path)
    pairs = [(k, str(v)) for k, v in (query or {}).items() if v is not None]
    if pairs:
        url += ("&" if "?" in url else "?") + urlencode(pairs)
    return HTTPRequest("GET", url, headers=headers_for(settings, has_body=False))


def _id(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(f"no {what} id given", hint=f"pass the {what}'s id, a string")
    return quote(value, safe="")


# -- objects -----------------------------------------------------------------------


@dataclass(frozen=True)
class FileObject:
    """A file as the Files API describes it (``object: "file"``)."""

    id: str
    bytes: int = 0
    filename: str = ""
    purpose: str = ""
    created_at: int = 0
    status: Optional[str] = None


@dataclass(frozen=True)
class RequestCounts:
    """How many of a batch's requests are done: ``completed + failed <= total``."""

    total: int = 0
    completed: int = 0
    failed: int = 0

    @property
    def done(self) -> int:
        return self.completed + self.failed


@dataclass(frozen=True)
class Batch:
    """A batch object (``object: "batch"``): where it is, and where its results are.

    ``output_file_id`` holds the lines that succeeded, ``error_file_id``
    those that failed (either may be ``None``); ``errors`` are the reasons
    a ``failed`` batch's input was refused.
    """

    id: str
    status: str
    endpoint: str = ""
    input_file_id: str = ""
    completion_window: str = "24h"
    output_file_id: Optional[str] = None
    error_file_id: Optional[str] = None
    request_counts: RequestCounts = field(default_factory=RequestCounts)
    created_at: int = 0
    expires_at: Optional[int] = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    errors: Tuple[str, ...] = ()

    @property
    def finished(self) -> bool:
        """It will not change any more: stop polling."""
        return self.status in TERMINAL_STATUSES


def parse_file(data: Any) -> FileObject:
    """A decoded file object to a ``FileObject``."""
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise InvalidResponseError("expected a file object with an id", body=data)
    return FileObject(
        id=data["id"],
        bytes=_int(data.get("bytes")),
        filename=label(data.get("filename")) or "",
        purpose=label(data.get("purpose")) or "",
        created_at=_int(data.get("created_at")),
        status=label(data.get("status")),
    )


def parse_batch(data: Any) -> Batch:
    """A decoded batch object to a ``Batch``; an unknown status is kept as it is."""
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise InvalidResponseError("expected a batch object with an id", body=data)
    counts = data.get("request_counts") or {}
    counts = counts if isinstance(counts, dict) else {}
    errors = data.get("errors") or {}
    listed = errors.get("data") if isinstance(errors, dict) else None
    messages = tuple(
        str(item.get("message") or item.get("code") or "")
        for item in (listed or [])
        if isinstance(item, dict)
    )
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    return Batch(
        id=data["id"],
        status=label(data.get("status")) or "",
        endpoint=label(data.get("endpoint")) or "",
        input_file_id=label(data.get("input_file_id")) or "",
        completion_window=label(data.get("completion_window")) or "24h",
        output_file_id=label(data.get("output_file_id")),
        error_file_id=label(data.get("error_file_id")),
        request_counts=RequestCounts(
            _int(counts.get("total")), _int(counts.get("completed")), _int(counts.get("failed"))
        ),
        created_at=_int(data.get("created_at")),
        expires_at=data.get("expires_at") if isinstance(data.get("expires_at"), int) else None,
        metadata=dict(metadata or {}),
        errors=messages,
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# -- input: rawchat batch lines to batch files ---------------------------------------


@dataclass(frozen=True)
class BatchLine:
    """One request of a batch file: input line ``line`` (1-based), its
    ``id`` as the input gave it, and what goes on the wire."""

    line: int
    custom_id: str
    endpoint: str
    body: Mapping[str, Any]
    id: Any = None

    def to_jsonl(self) -> bytes:
        """The line as the batch file holds it, newline included."""
        record = {"custom_id": self.custom_id, "method": "POST", "url": self.endpoint}
        record["body"] = dict(self.body)
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        return (text + "\n").encode("utf-8")


@dataclass(frozen=True)
class InvalidLine:
    """An input line that is not a request: it gets an error result, and is not sent."""

    line: int
    message: str
    id: Any = None


@dataclass(frozen=True)
class BatchFile:
    """One file to upload as one batch: lines of one endpoint, within the limits."""

    endpoint: str
    lines: Tuple[BatchLine, ...]

    @property
    def data(self) -> bytes:
        return b"".join(line.to_jsonl() for line in self.lines)

    @property
    def custom_ids(self) -> Tuple[str, ...]:
        return tuple(line.custom_id for line in self.lines)


@dataclass(frozen=True)
class BatchPlan:
    """What an input becomes: the files to submit, and the lines refused locally."""

    lines: Tuple[BatchLine, ...]
    invalid: Tuple[InvalidLine, ...]
    files: Tuple[BatchFile, ...]

    @property
    def total(self) -> int:
        return len(self.lines) + len(self.invalid)


def plan_batch(
    texts: Sequence[str],
    *,
    model: Optional[str] = None,
    max_requests: int = MAX_REQUESTS_PER_FILE,
    max_bytes: int = MAX_FILE_BYTES,
) -> BatchPlan:
    """``rawchat batch`` input lines (``INPUT_FORMAT``) to batch files.

    ``custom_id`` is a line's ``id`` when it has one, else its line number;
    two lines with one ``custom_id`` are refused (``InvalidRequestError``)
    before anything is built, since their results could not be told apart.
    A line with ``input`` or ``"api": "responses"`` goes to the Responses
    API, any other to Chat Completions; each endpoint gets its own files,
    each under ``max_requests`` lines and ``max_bytes`` bytes.
    """
    lines: List[BatchLine] = []
    invalid: List[InvalidLine] = []
    seen: Dict[str, int] = {}
    for number, text in enumerate(texts, 1):
        entry = _batch_line(number, text, model)
        if isinstance(entry, InvalidLine):
            invalid.append(entry)
            continue
        if entry.custom_id in seen:
            raise InvalidRequestError(
                f"lines {seen[entry.custom_id]} and {number} have the same custom_id "
                f"{entry.custom_id!r}",
                hint="give every line a different id (or none: the line number is used); "
                "results are matched to lines by it",
            )
        seen[entry.custom_id] = number
        lines.append(entry)
    files: List[BatchFile] = []
    for endpoint in (CHAT_ENDPOINT, RESPONSES_ENDPOINT):
        files += _split([x for x in lines if x.endpoint == endpoint], max_requests, max_bytes)
    return BatchPlan(tuple(lines), tuple(invalid), tuple(files))


def _batch_line(number: int, text: str, model: Optional[str]) -> Any:
    try:
        request = json.loads(text)
    except ValueError as exc:
        return InvalidLine(number, f"the line is not JSON ({exc})")
    if not isinstance(request, dict):
        return InvalidLine(number, "each line must be a JSON object")
    request = dict(request)
    given = request.pop("id", None)
    if given is not None and (isinstance(given, bool) or not isinstance(given, (str, int))):
        return InvalidLine(number, '"id" must be a string or an integer', given)
    custom_id = str(given) if given is not None else str(number)
    api = request.pop("api", None)
    responses = api == "responses" or "input" in request
    if api not in (None, "chat", "responses"):
        return InvalidLine(number, f'"api" is {api!r}; use "chat" or "responses"', given)
    chosen = request.pop("model", None) or model
    if not isinstance(chosen, str) or not chosen:
        return InvalidLine(number, "no model: give the line a model, or pass --model", given)
    prompt = request.pop("prompt", None)
    if responses:
        if "input" not in request:
            if not isinstance(prompt, str):
                return InvalidLine(number, 'a Responses line needs "input" or "prompt"', given)
            request["input"] = prompt
        body = dict(model=chosen, **request)
        return BatchLine(number, custom_id, RESPONSES_ENDPOINT, body, given)
    messages = request.pop("messages", None)
    if messages is None:
        if not isinstance(prompt, str):
            return InvalidLine(number, 'a line needs "messages" or "prompt"', given)
        messages = [{"role": "user", "content": prompt}]
    body = dict(model=chosen, messages=messages, **request)
    return BatchLine(number, custom_id, CHAT_ENDPOINT, body, given)


def _split(lines: List[BatchLine], max_requests: int, max_bytes: int) -> List[BatchFile]:
    files: List[BatchFile] = []
    current: List[BatchLine] = []
    size = 0
    for line in lines:
        length = len(line.to_jsonl())
        if length > max_bytes:
            raise InvalidRequestError(
                f"line {line.line} alone is {length:,} bytes, over the {max_bytes:,}-byte "
                "limit of a batch file",
                hint="shorten that request; a batch file cannot carry it",
            )
        if current and (len(current) >= max_requests or size + length > max_bytes):
            files.append(BatchFile(current[0].endpoint, tuple(current)))
            current, size = [], 0
        current.append(line)
        size += length
    if current:
        files.append(BatchFile(current[0].endpoint, tuple(current)))
    return files


# -- output: result files back to input lines ---------------------------------------


@dataclass(frozen=True)
class BatchResult:
    """One line of an output or error file.

    ``status_code`` and ``body`` are the request's response (its request
    id in ``request_id``); ``error`` is set instead when the request never
    ran (``code``: ``batch_expired``, ``batch_cancelled``...).
    """

    custom_id: str
    status_code: Optional[int] = None
    body: Any = None
    request_id: Optional[str] = None
    error: Optional[Mapping[str, Any]] = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300

    @property
    def resubmit(self) -> bool:
        """It never ran (the batch expired or was cancelled first): send it again."""
        return self.error is not None and self.error.get("code") in RESUBMIT_CODES


def read_results(*texts: str) -> Dict[str, BatchResult]:
    """The lines of output and error files, by ``custom_id``.

    A line that ran wins over one that did not, whatever file order: an
    expired batch's output is complete for the lines it holds.
    """
    found: Dict[str, BatchResult] = {}
    for text in texts:
        for number, raw in enumerate(text.split("\n"), 1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
            except ValueError as exc:
                raise InvalidResponseError(
                    f"line {number} of a result file is not JSON ({exc})", body=raw
                ) from None
            if not isinstance(data, dict) or not isinstance(data.get("custom_id"), str):
                raise InvalidResponseError(
                    f"line {number} of a result file has no custom_id", body=data
                )
            response = data.get("response") if isinstance(data.get("response"), dict) else {}
            error = data.get("error") if isinstance(data.get("error"), dict) else None
            status = response.get("status_code")
            result = BatchResult(
                custom_id=data["custom_id"],
                status_code=status if isinstance(status, int) else None,
                body=response.get("body"),
                request_id=label(response.get("request_id")),
                error=error,
            )
            earlier = found.get(result.custom_id)
            if earlier is None or (earlier.resubmit and not result.resubmit):
                found[result.custom_id] = result
    return found


@dataclass(frozen=True)
class JoinedResults:
    """Results in input order (``rawchat batch``'s output records, ``None``
    where a line has none yet) and the lines to submit again."""

    records: Tuple[Optional[Mapping[str, Any]], ...]
    missing: Tuple[BatchLine, ...]

    @property
    def complete(self) -> bool:
        return not self.missing


def join_results(plan: BatchPlan, results: Mapping[str, BatchResult]) -> JoinedResults:
    """Each input line's result record, in input order, in ``rawchat batch``'s
    output format; a line without a result, or one that never ran, is missing."""
    records: List[Optional[Mapping[str, Any]]] = [None] * plan.total
    for bad in plan.invalid:
        records[bad.line - 1] = {
            "line": bad.line,
            "id": bad.id,
            "ok": False,
            "error": {"type": "InvalidInput", "message": bad.message},
        }
    missing = []
    for line in plan.lines:
        result = results.get(line.custom_id)
        if result is None or result.resubmit:
            missing.append(line)
            continue
        records[line.line - 1] = _record(line, result)
    return JoinedResults(tuple(records), tuple(missing))


def _record(line: BatchLine, result: BatchResult) -> Dict[str, Any]:
    record: Dict[str, Any] = {"line": line.line, "id": line.id}
    if not result.ok:
        body = result.body if isinstance(result.body, dict) else {}
        error = body.get("error") if isinstance(body.get("error"), dict) else result.error or {}
        failure: Dict[str, Any] = {
            "type": str(error.get("type") or error.get("code") or "BatchError"),
            "message": str(error.get("message") or "the request failed in the batch"),
        }
        if result.status_code is not None:
            failure["status"] = result.status_code
        return dict(record, ok=False, error=failure)
    try:
        if line.endpoint == RESPONSES_ENDPOINT:
            response = parse_response(result.body)
            model, content, finish = response.model, response.output_text, response.status
            calls = [dict(type=call.type, **asdict(call)) for call in response.tool_calls]
            counts = response.usage and (response.usage.input_tokens, response.usage.output_tokens)
        else:
            completion = parse_completion(result.body)
            model, content, finish = completion.model, completion.content, completion.finish_reason
            calls = [call.to_dict() for call in completion.tool_calls]
            usage = completion.usage
            counts = usage and (usage.prompt_tokens, usage.completion_tokens)
    except InvalidResponseError as exc:
        return dict(record, ok=False, error={"type": type(exc).__name__, "message": exc.message})
    return dict(
        record,
        ok=True,
        model=model,
        content=content,
        finish_reason=finish,
        tool_calls=calls or None,
        usage={"prompt_tokens": counts[0], "completion_tokens": counts[1]} if counts else None,
        retries=0,
        degraded=False,
    )
