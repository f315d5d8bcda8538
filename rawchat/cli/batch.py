"""``rawchat batch``: many chat requests in parallel, results in input order, resumable.

Input is JSON lines, one request a line::

    {"id": "q1", "prompt": "What is SSE?"}
    {"id": "q2", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}

(``prompt`` is a shortcut for one user message; keys other than ``id``,
``prompt``, ``messages`` and ``model`` are request parameters.) Output is
JSON lines in the same order, one result a line, ``ok`` true with the
answer or false with a typed error; a line that is not valid input gets an
error result, not a crash.

Workers share one client, so its key pool, pacer, breaker and retry budget
govern them all. Results are written in input order as soon as each next
one is ready, and flushed, so after a crash the output holds a prefix of
the results: a rerun counts the complete lines, truncates a half-written
one, and carries on from there, repeating nothing that finished.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any, Callable, Dict, Optional

from ..client.client import Client
from ..errors import APIStatusError, RawchatError

__all__ = ["BatchSummary", "run_batch"]


@dataclass(frozen=True)
class BatchSummary:
    total: int
    skipped: int  # already done in an earlier run
    done: int
    errors: int
    seconds: float


def run_batch(
    client: Client,
    in_path: str,
    out_path: str,
    *,
    workers: int = 4,
    model: Optional[str] = None,
    progress: Optional[IO[str]] = None,
    clock: Callable[[], float] = time.monotonic,
) -> BatchSummary:
    """Answer every line of ``in_path`` into ``out_path``; resume if it exists."""
    with open(in_path, encoding="utf-8") as source:
        lines = source.read().splitlines()
    skipped = _resume_point(out_path)
    started = clock()
    errors = 0
    done = 0
    window = max(1, workers) * 4  # lines in flight at once, bounded
    pending: Dict[int, Future] = {}

    def report(final: bool = False) -> None:
        if progress is None:
            return
        elapsed = max(clock() - started, 1e-9)
        text = (
            f"rawchat batch: {skipped + done}/{len(lines)} done ({errors} errors), "
            f"{done / elapsed:.1f} requests/s"
        )
        tty = hasattr(progress, "isatty") and progress.isatty()
        if tty:
            progress.write("\r" + text + ("\n" if final else ""))
        elif final:
            progress.write(text + "\n")
        progress.flush()

    with open(out_path, "a", encoding="utf-8") as out, ThreadPoolExecutor(max(1, workers)) as pool:
        next_line = skipped
        for index in range(skipped, len(lines)):
            pending[index] = pool.submit(_answer, client, index + 1, lines[index], model)
            while len(pending) >= window or (index == len(lines) - 1 and pending):
                result = pending.pop(next_line).result()
                out.write(json.dumps(result, ensure_ascii=False) + "\n")
                out.flush()
                done += 1
                errors += 0 if result["ok"] else 1
                next_line += 1
                report()
    report(final=True)
    return BatchSummary(len(lines), skipped, done, errors, clock() - started)


def _resume_point(out_path: str) -> int:
    """How many results ``out_path`` already holds; a torn last line is cut off."""
    if not os.path.exists(out_path):
        return 0
    with open(out_path, "rb+") as out:
        data = out.read()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):
            out.truncate(complete)
    count = 0
    for line in data[:complete].splitlines():
        try:
            json.loads(line)
        except ValueError:
            break
        count += 1
    return count


def _answer(client: Client, number: int, line: str, model: Optional[str]) -> Dict[str, Any]:
    record: Dict[str, Any] = {"line": number}
    try:
        try:
            request = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"the line is not JSON ({exc})") from None
        if not isinstance(request, dict):
            raise ValueError("each line must be a JSON object")
        record["id"] = request.pop("id", None)
        prompt = request.pop("prompt", None)
        messages = request.pop("messages", None)
        if messages is None:
            if not isinstance(prompt, str):
                raise ValueError('a line needs "messages" or "prompt"')
            messages = [{"role": "user", "content": prompt}]
        chosen = request.pop("model", None) or model
        completion = client.chat(messages, model=chosen, **request)
    except ValueError as exc:
        if isinstance(exc, RawchatError):
            return _failed(record, exc)
        return dict(record, ok=False, error={"type": "InvalidInput", "message": str(exc)})
    except RawchatError as exc:
        return _failed(record, exc)
    usage = completion.usage
    return dict(
        record,
        ok=True,
        model=completion.model,
        content=completion.content,
        finish_reason=completion.finish_reason,
        tool_calls=[call.to_dict() for call in completion.tool_calls] or None,
        usage=None
        if usage is None
        else {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
        },
        retries=completion.retries_taken,
        degraded=completion.degraded,
    )


def _failed(record: Dict[str, Any], exc: RawchatError) -> Dict[str, Any]:
    error: Dict[str, Any] = {"type": type(exc).__name__, "message": exc.message}
    if isinstance(exc, APIStatusError):
        error["status"] = exc.status_code
    return dict(record, ok=False, error=error)
