"""``rawchat batch``: many chat requests in parallel, results in input order, resumable.

Input is JSON lines (UTF-8, lines separated by ``\n``, a ``\r`` before it
ignored), one request a line::

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
one, and carries on from there, repeating nothing that finished. Ctrl-C
stops sending new requests, waits for the ones already sent, and writes
their answers (they are paid for) before it returns.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any, Callable, Dict, List, Optional, Tuple

from ..client.client import Client
from ..errors import APIStatusError, ConfigError, RawchatError

__all__ = ["INPUT_FORMAT", "BatchSummary", "read_lines", "run_batch"]

INPUT_FORMAT = """\
input: one JSON object a line (UTF-8), for example
  {"id": "q1", "prompt": "What is SSE?"}
  {"id": "q2", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}
  id        copied to the result, to match answers to questions (optional)
  prompt    a shortcut for one user message
  messages  the chat messages (instead of prompt)
  model     the model for this line (default: --model)
  any other key is a request parameter (max_tokens, temperature, ...)
output: one JSON object a line, in input order: "ok" true with the answer,
or false with a typed "error"; a rerun resumes after the last complete line"""


@dataclass(frozen=True)
class BatchSummary:
    total: int
    skipped: int  # already done in an earlier run
    done: int
    errors: int  # failed lines in the whole output, earlier runs' included
    seconds: float
    interrupted: bool = False  # Ctrl-C: the output holds skipped + done lines


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
    lines = read_lines(in_path)
    skipped, errors = _resume_point(out_path)
    started = clock()
    done = 0
    interrupted = False
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

    try:
        out = open(out_path, "a", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise ConfigError(f"cannot write {out_path}: {exc.strerror}") from exc

    def write(result: Dict[str, Any]) -> None:
        nonlocal done, errors
        out.write(json.dumps(result, ensure_ascii=False) + "\n")
        out.flush()
        done += 1
        errors += 0 if result["ok"] else 1

    pool = ThreadPoolExecutor(max(1, workers))
    next_line = skipped
    try:
        for index in range(skipped, len(lines)):
            pending[index] = pool.submit(_answer, client, index + 1, lines[index], model)
            while len(pending) >= window or (index == len(lines) - 1 and pending):
                write(pending.pop(next_line).result())
                next_line += 1
                report()
    except KeyboardInterrupt:
        interrupted = True
        # Requests not yet sent are dropped; those on the wire are paid for,
        # so their answers are awaited and written, in order, up to the
        # first dropped line. A second Ctrl-C keeps only what has arrived.
        for future in pending.values():
            future.cancel()
        try:
            while next_line in pending and not pending[next_line].cancelled():
                write(pending.pop(next_line).result())
                next_line += 1
        except KeyboardInterrupt:
            while next_line in pending and pending[next_line].done():
                future = pending.pop(next_line)
                if future.cancelled():
                    break
                write(future.result())
                next_line += 1
    finally:
        pool.shutdown(wait=not interrupted)
        out.close()
    report(final=True)
    return BatchSummary(len(lines), skipped, done, errors, clock() - started, interrupted)


def read_lines(in_path: str) -> List[str]:
    """The input's lines: split on ``\n`` only, since JSON text may hold U+2028,
    U+0085 or a form feed, which ``str.splitlines`` would also break on."""
    try:
        with open(in_path, "rb") as source:
            data = source.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {in_path}: {exc.strerror}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{in_path} is not UTF-8 (byte {exc.start}: {data[exc.start : exc.start + 1]!r})"
        ) from exc
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _resume_point(out_path: str) -> Tuple[int, int]:
    """How many results ``out_path`` already holds, and how many of them are
    failures; a torn last line is cut off."""
    if not os.path.exists(out_path):
        return 0, 0
    try:
        with open(out_path, "rb+") as out:
            data = out.read()
            complete = data.rfind(b"\n") + 1
            if complete < len(data):
                out.truncate(complete)
    except OSError as exc:
        raise ConfigError(f"cannot resume {out_path}: {exc.strerror}") from exc
    count = errors = 0
    for line in data[:complete].split(b"\n")[:-1]:
        try:
            result = json.loads(line)
        except ValueError:
            break
        count += 1
        errors += 0 if isinstance(result, dict) and result.get("ok") else 1
    return count, errors


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
