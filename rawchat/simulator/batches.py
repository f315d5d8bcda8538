"""The simulator's Files and Batch APIs: ``/v1/files`` and ``/v1/batches``.

The server side of https://platform.openai.com/docs/api-reference/files
and https://platform.openai.com/docs/api-reference/batch. A batch moves
through its statuses by the clock value each call passes in (no clock is
read here), ``seconds`` after its creation::

    0 ......... validating
    validate .. in_progress     (request_counts grow line by line)
    + run ..... finalizing
    + finalize  completed       (output and error files written)

A batch whose ``window`` runs out first ends ``expired``: the lines done
by then are in its output file, the others in its error file with code
``batch_expired``. ``cancel`` makes it ``cancelling``, then ``cancelled``
``finalize`` seconds later, with the same kind of partial output. A line
whose request the chat endpoint refuses (an unknown model, no messages)
goes to the error file with that endpoint's status and error body; the
others are answered by ``answer``, the same deterministic model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..protocol.batches import (
    BATCH_ENDPOINTS,
    FILE_PURPOSES,
    MAX_FILE_BYTES,
    MAX_REQUESTS_PER_FILE,
)
from .audio import MultipartError, parse_multipart

__all__ = ["BATCHES_PATH", "FILES_PATH", "BatchAnswer", "BatchTiming", "BatchesEndpoint"]

#: ``/v1/files``, ``/v1/files/{id}``, ``/v1/files/{id}/content``.
FILES_PATH = re.compile(r"^(?:/v1|/openai/v1|/openai)/files(?:/([^/]+)(/content)?)?$")
#: ``/v1/batches``, ``/v1/batches/{id}``, ``/v1/batches/{id}/cancel``.
BATCHES_PATH = re.compile(r"^(?:/v1|/openai/v1|/openai)/batches(?:/([^/]+)(/cancel)?)?$")

#: ``answer(endpoint, body, number)``: the status and JSON body a request gets.
Answer = Callable[[str, Mapping[str, Any], int], Tuple[int, Any]]


@dataclass(frozen=True)
class BatchAnswer:
    """A status and a JSON ``body``, or a file's ``content`` (JSON lines)."""

    status: int
    body: Any = field(default_factory=dict)
    content: Optional[bytes] = None


@dataclass(frozen=True)
class BatchTiming:
    """Seconds a batch spends validating, in progress and finalizing, and its window."""

    validate: float = 1.0
    run: float = 2.0
    finalize: float = 1.0
    window: float = 24 * 3600.0


def _error(status: int, message: str, code: Optional[str] = None, param: Optional[str] = None):
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return BatchAnswer(status, {"error": error})


class BatchesEndpoint:
    """Files and batches held in memory; ``uploads``, ``created`` and
    ``downloads`` count the files uploaded, the batches created and the file
    contents read, so a test sees what was sent or fetched twice. A batch
    keeps the ``timing`` it was created with."""

    def __init__(self, answer: Answer, timing: BatchTiming = BatchTiming()) -> None:
        self.answer = answer
        self.timing = timing
        self.files: Dict[str, Dict[str, Any]] = {}
        self.contents: Dict[str, bytes] = {}
        self.batches: Dict[str, Dict[str, Any]] = {}
        self._lines: Dict[str, List[Dict[str, Any]]] = {}
        self.uploads = 0
        self.created = 0
        self.downloads = 0

    # -- files --------------------------------------------------------------

    def upload(self, body: bytes, content_type: str, now: float) -> BatchAnswer:
        try:
            parts = {part.name: part for part in parse_multipart(body, content_type)}
        except MultipartError as exc:
            return _error(400, f"Could not parse multipart form: {exc}.")
        purpose = parts.get("purpose")
        upload = parts.get("file")
        if purpose is None or upload is None or not upload.is_file:
            return _error(400, "Missing required parameter: 'file' and 'purpose'.")
        kind = purpose.data.decode("utf-8", "replace")
        if kind not in FILE_PURPOSES:
            return _error(400, f"Invalid purpose {kind!r}.", "invalid_value", "purpose")
        if len(upload.data) > MAX_FILE_BYTES:
            return _error(413, f"File is larger than {MAX_FILE_BYTES} bytes.", "file_too_large")
        self.uploads += 1
        file_id = f"file-sim{self.uploads:06d}"  # never reused, even after a delete
        self.contents[file_id] = upload.data
        return BatchAnswer(200, self._new_file(file_id, upload.filename or "", kind, now))

    def _new_file(self, file_id: str, name: str, purpose: str, now: float) -> Dict[str, Any]:
        self.contents.setdefault(file_id, b"")
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "bytes": len(self.contents[file_id]),
            "created_at": int(now),
            "filename": name,
            "purpose": purpose,
            "status": "processed",
        }
        return self.files[file_id]

    def list_files(self) -> BatchAnswer:
        return BatchAnswer(200, {"object": "list", "data": list(self.files.values())})

    def file(self, file_id: str, content: bool = False) -> BatchAnswer:
        if file_id not in self.files:
            return _error(404, f"No such File object: {file_id}", param="id")
        if content:
            self.downloads += 1
            return BatchAnswer(200, content=self.contents[file_id])
        return BatchAnswer(200, self.files[file_id])

    def delete_file(self, file_id: str) -> BatchAnswer:
        if self.files.pop(file_id, None) is None:
            return _error(404, f"No such File object: {file_id}", param="id")
        self.contents.pop(file_id, None)
        return BatchAnswer(200, {"id": file_id, "object": "file", "deleted": True})

    # -- batches ------------------------------------------------------------

    def create(self, raw: bytes, now: float) -> BatchAnswer:
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.")
        file_id = body.get("input_file_id")
        endpoint = body.get("endpoint")
        if endpoint not in BATCH_ENDPOINTS:
            return _error(400, f"Invalid endpoint {endpoint!r}.", "invalid_value", "endpoint")
        if body.get("completion_window") != "24h":
            return _error(400, "completion_window must be '24h'.", "invalid_value")
        if file_id not in self.files:
            return _error(404, f"No such File object: {file_id}", param="input_file_id")
        if self.files[file_id]["purpose"] != "batch":
            return _error(
                400, "The input file must be uploaded with purpose 'batch'.", "invalid_file"
            )
        lines, problem = _read_input(self.contents[file_id], endpoint)
        self.created += 1
        batch_id = f"batch_sim{len(self.batches) + 1:06d}"
        self.batches[batch_id] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": endpoint,
            "errors": None,
            "input_file_id": file_id,
            "completion_window": "24h",
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": int(now),
            "expires_at": int(now + self.timing.window),
            "cancelled_at": None,
            "metadata": body.get("metadata") or None,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "_started": now,
            "_timing": self.timing,
        }
        self._lines[batch_id] = lines
        if problem:
            self.batches[batch_id].update(
                status="failed",
                errors={"object": "list", "data": [{"code": "invalid_file", "message": problem}]},
            )
        return self.retrieve(batch_id, now)

    def retrieve(self, batch_id: str, now: float) -> BatchAnswer:
        batch = self.batches.get(batch_id)
        if batch is None:
            return _error(404, f"No such Batch object: {batch_id}", param="batch_id")
        self._advance(batch, now)
        return BatchAnswer(200, {k: v for k, v in batch.items() if not k.startswith("_")})

    def list_batches(self, now: float) -> BatchAnswer:
        data = [self.retrieve(i, now).body for i in reversed(list(self.batches))]
        return BatchAnswer(200, {"object": "list", "data": data, "has_more": False})

    def cancel(self, batch_id: str, now: float) -> BatchAnswer:
        batch = self.batches.get(batch_id)
        if batch is None:
            return _error(404, f"No such Batch object: {batch_id}", param="batch_id")
        self._advance(batch, now)
        if batch["status"] in ("completed", "failed", "expired", "cancelled"):
            return _error(409, f"Cannot cancel a batch with status {batch['status']}.")
        if batch["status"] != "cancelling":
            batch.update(status="cancelling", _cancelled=now, cancelled_at=int(now))
        return self.retrieve(batch_id, now)

    def _advance(self, batch: Dict[str, Any], now: float) -> None:
        """Move the batch to where ``now`` has it."""
        if batch["status"] in ("completed", "failed", "expired", "cancelled"):
            return
        timing = batch["_timing"]
        elapsed = now - batch["_started"]
        total = batch["request_counts"]["total"]
        running = max(0.0, min(elapsed - timing.validate, timing.run))
        done = total if timing.run <= 0 else int(total * running / timing.run)
        if "_cancelled" in batch:
            done = min(
                done,
                int(
                    total
                    * max(0.0, batch["_cancelled"] - batch["_started"] - timing.validate)
                    / (timing.run or 1)
                ),
            )
            if now - batch["_cancelled"] >= timing.finalize:
                self._finish(batch, "cancelled", done, "batch_cancelled")
            return
        if elapsed >= timing.window:
            window_done = int(total * max(0.0, timing.window - timing.validate) / (timing.run or 1))
            self._finish(batch, "expired", min(total, window_done), "batch_expired")
        elif elapsed >= timing.validate + timing.run + timing.finalize:
            self._finish(batch, "completed", total, "")
        elif elapsed >= timing.validate + timing.run:
            self._count(batch, total)
            batch["status"] = "finalizing"
        elif elapsed >= timing.validate:
            self._count(batch, done)
            batch["status"] = "in_progress"

    def _count(self, batch: Dict[str, Any], done: int) -> None:
        failed = sum(1 for n in range(done) if self._answered(batch, n)[0] >= 300)
        batch["request_counts"].update(completed=done - failed, failed=failed)

    def _answered(self, batch: Dict[str, Any], position: int) -> Tuple[int, Any]:
        """Line ``position``'s answer, made once (a line runs once)."""
        line = self._lines[batch["id"]][position]
        if "answer" not in line:
            line["answer"] = self.answer(batch["endpoint"], line["body"], position + 1)
        return line["answer"]

    def _finish(self, batch: Dict[str, Any], status: str, done: int, never_ran: str) -> None:
        """Write the output and error files: the first ``done`` lines ran."""
        output, errors = [], []
        for position, line in enumerate(self._lines[batch["id"]]):
            record: Dict[str, Any] = {
                "id": f"batch_req_{batch['id']}_{position + 1}",
                "custom_id": line["custom_id"],
            }
            if position >= done:
                message = f"This request could not be executed before the batch was {status}."
                errors.append(
                    dict(record, response=None, error={"code": never_ran, "message": message})
                )
                continue
            status_code, body = self._answered(batch, position)
            record["response"] = {
                "status_code": status_code,
                "request_id": f"req_{batch['id']}_{position + 1}",
                "body": body,
            }
            record["error"] = None
            (output if status_code < 300 else errors).append(record)
        # Results arrive out of order, as the provider's do: here, reversed.
        for name, records in (("output_file_id", output), ("error_file_id", errors)):
            if records:
                file_id = f"file-{batch['id']}-{name.split('_')[0]}"
                data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in reversed(records))
                self.contents[file_id] = data.encode("utf-8")
                self._new_file(
                    file_id,
                    f"{batch['id']}_{name.split('_')[0]}.jsonl",
                    "batch_output",
                    batch["_started"],
                )
                batch[name] = file_id
        self._count(batch, done)
        batch["status"] = status


def _read_input(data: bytes, endpoint: str) -> Tuple[List[Dict[str, Any]], str]:
    """The input's lines, or what makes the file unusable."""
    lines: List[Dict[str, Any]] = []
    seen = set()
    text = data.decode("utf-8", "replace")
    for number, raw in enumerate(text.split("\n"), 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            return [], f"Line {number} is not valid JSON."
        if not isinstance(record, dict) or not isinstance(record.get("custom_id"), str):
            return [], f"Line {number} has no custom_id."
        if record["custom_id"] in seen:
            return [], f"Line {number}: duplicate custom_id {record['custom_id']!r}."
        if record.get("url") != endpoint or record.get("method") != "POST":
            return [], f"Line {number}: every request must be POST {endpoint}."
        if not isinstance(record.get("body"), dict):
            return [], f"Line {number} has no body."
        seen.add(record["custom_id"])
        lines.append({"custom_id": record["custom_id"], "body": record["body"]})
    if not lines:
        return [], "The input file holds no requests."
    if len(lines) > MAX_REQUESTS_PER_FILE:
        return [], f"The input file holds more than {MAX_REQUESTS_PER_FILE} requests."
    return lines, ""
