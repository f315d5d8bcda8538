"""Every exercise's check cell passes a right answer and refuses a wrong one.

Each notebook ends with exercises: a code cell tagged ``exercise`` holding a
stub for the learner to replace, then a collapsed cell tagged ``check`` that
prints ``ok: ...`` or ``not yet: ...``. A check that cannot fail teaches
nothing, so each one runs here three ways: after the reference answer below
(must print ok), after the notebook's own stub and after each wrong answer
(must print not yet). Exercises and checks are self-contained, so they run in
a fresh namespace without the cells above them.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))

REFERENCE: Dict[str, str] = {
    "13-multipart": """
def multipart_body(boundary, model, filename, audio):
    delimiter = b"--" + boundary.encode("ascii")
    return (
        delimiter + b"\\r\\n"
        + b'Content-Disposition: form-data; name="model"\\r\\n\\r\\n'
        + model.encode("utf-8") + b"\\r\\n"
        + delimiter + b"\\r\\n"
        + b'Content-Disposition: form-data; name="file"; filename="'
        + filename.encode("utf-8") + b'"\\r\\n'
        + b"Content-Type: audio/wav\\r\\n\\r\\n"
        + audio + b"\\r\\n"
        + delimiter + b"--\\r\\n"
    )
""",
    "13-wav-header": """
import struct

def pcm_wav_header(data_size, sample_rate):
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data_size, b"WAVE", b"fmt ", 16, 1, 1,
        sample_rate, sample_rate * 2, 2, 16, b"data", data_size,
    )
""",
    "13-sentences": """
import re

END = re.compile(r"[.!?]+(?=\\s)|[。！？]+")

def split_sentences(text):
    found, start = [], 0
    for match in END.finditer(text):
        found.append(text[start:match.end()].strip())
        start = match.end()
    return found, text[start:].lstrip()
""",
    "11-connections-opened": """
def connections_opened(calls, k):
    # (time, 0 for an end or 1 for a start): at the same time, ends come first
    events = sorted([(end, 0) for _, end in calls] + [(start, 1) for start, _ in calls])
    idle = opened = 0
    for _, is_start in events:
        if is_start and idle:
            idle -= 1
        elif is_start:
            opened += 1
        elif idle < k:
            idle += 1
    return opened
""",
    "11-gather-bounded": """
import asyncio

async def gather_bounded(coroutines, k):
    slots = asyncio.Semaphore(k)

    async def bounded(coroutine):
        async with slots:
            return await coroutine

    return await asyncio.gather(*(bounded(c) for c in coroutines))
""",
    "01-request-bytes": """
def request_bytes(body, key):
    return (
        b"POST /v1/chat/completions HTTP/1.1\\r\\n"
        b"Host: 127.0.0.1\\r\\n"
        b"Authorization: Bearer " + key.encode("ascii") + b"\\r\\n"
        b"Content-Type: application/json\\r\\n"
        b"Content-Length: " + str(len(body)).encode("ascii") + b"\\r\\n"
        b"Connection: close\\r\\n"
        b"\\r\\n" + body
    )
""",
    "01-content-of": """
import json

def content_of(response):
    _, _, body = response.partition(b"\\r\\n\\r\\n")
    return json.loads(body.decode("utf-8"))["choices"][0]["message"]["content"]
""",
    "02-what-went-wrong": """
import json

def what_went_wrong(status, body):
    error = json.loads(body).get("error") or {}
    if status == 401:
        return "key"
    if status == 404 and error.get("code") == "model_not_found":
        return "model"
    if status == 404 and str(error.get("message", "")).startswith("Invalid URL"):
        return "url"
    return "other"
""",
    "02-resolve-key": """
def resolve_key(argument, environ):
    key = argument if argument is not None else environ.get("OPENAI_API_KEY", "")
    key = key.strip().strip("\\"'").strip()
    if not key:
        raise ValueError("no API key: pass one or set OPENAI_API_KEY")
    return key
""",
    "03-tool-calls-of": """
import json

def tool_calls_of(body):
    calls = body["choices"][0]["message"].get("tool_calls") or []
    return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls]
""",
    "03-is-complete": """
def is_complete(body):
    return body["choices"][0]["finish_reason"] in ("stop", "tool_calls")
""",
    "04-line-splitter": """
class LineSplitter:
    def __init__(self):
        self.buffer = b""
        self.skip_lf = False

    def feed(self, data):
        if self.skip_lf and data.startswith(b"\\n"):
            data = data[1:]
        self.skip_lf = False
        self.buffer += data
        lines = []
        while True:
            ends = [i for i in (self.buffer.find(b"\\r"), self.buffer.find(b"\\n")) if i >= 0]
            if not ends:
                return lines
            end = min(ends)
            lines.append(self.buffer[:end])
            if self.buffer[end:end + 2] == b"\\r\\n":
                self.buffer = self.buffer[end + 2:]
            elif self.buffer[end:end + 1] == b"\\r" and end + 1 == len(self.buffer):
                self.buffer, self.skip_lf = b"", True
            else:
                self.buffer = self.buffer[end + 1:]
""",
    "04-stream-text": """
from rawchat.protocol.sse import SSEParser
import json

def stream_text(raw):
    text = []
    for event in SSEParser().feed(raw):
        if event.data == "[DONE]":
            break
        for choice in json.loads(event.data).get("choices") or []:
            text.append(choice["delta"].get("content") or "")
    return "".join(text)
""",
    "05-wait-for": """
def wait_for(attempt, headers):
    lower = {name.lower(): value for name, value in headers.items()}
    if "retry-after-ms" in lower:
        return float(lower["retry-after-ms"]) / 1000
    if "retry-after" in lower:
        return float(lower["retry-after"])
    return min(8.0, 0.5 * 2 ** (attempt - 1))
""",
    "05-should-retry": """
def should_retry(status, body):
    if status == 429:
        return (body.get("error") or {}).get("code") != "insufficient_quota"
    return status in (408, 409) or status >= 500
""",
    "06-trim": """
def trim(messages, budget, count):
    first, rest = messages[:1], messages[1:]
    room = budget - sum(count(m) for m in first)
    kept = []
    for message in reversed(rest):
        if kept and count(message) > room:
            break
        kept.insert(0, message)
        room -= count(message)
    while len(kept) > 1 and kept[0]["role"] == "tool":
        kept.pop(0)
    return first + kept
""",
    "06-total-sent": """
def total_sent(turns, system_tokens, turn_tokens):
    return sum(system_tokens + k * turn_tokens for k in range(1, turns + 1))
""",
    "07-cost": """
def cost(usage, price):
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    fresh = usage["prompt_tokens"] - cached
    return (fresh * price[0] + cached * price[1] + usage["completion_tokens"] * price[2]) / 1_000_000
""",
    "07-cheapest": """
def cheapest(prices, prompt_tokens, completion_tokens):
    return min(prices, key=lambda n: prompt_tokens * prices[n][0] + completion_tokens * prices[n][2])
""",
    "08-pacer-waits": """
def pacer_waits(n, per_minute, burst):
    interval = 60 / per_minute
    return [max(0, i - burst + 1) * interval for i in range(n)]
""",
    "08-breaker-state": """
def breaker_state(outcomes, window, min_calls, failure_rate):
    recent = outcomes[-window:]
    if len(recent) >= min_calls and sum(recent) / len(recent) >= failure_rate:
        return "open"
    return "closed"
""",
    "09-output-text": """
def output_text(response):
    return "".join(
        part["text"]
        for item in response["output"] if item["type"] == "message"
        for part in item["content"] if part["type"] == "output_text"
    )
""",
    "09-responses-stream": """
import json
from rawchat.protocol.sse import SSEParser

def responses_stream_text(raw):
    text, ended = [], False
    for event in SSEParser().feed(raw):
        data = json.loads(event.data)
        if data["type"] == "response.output_text.delta":
            text.append(data["delta"])
        elif data["type"] in ("response.completed", "response.incomplete", "response.failed"):
            ended = True
    if not ended:
        raise ValueError("the stream ended without a terminal event")
    return "".join(text)
""",
    "10-kept": """
def kept(sent, answer):
    for message in sent[:-1]:
        arguments = [c["function"]["arguments"] for c in message.get("tool_calls") or []]
        if any(answer in text for text in [message.get("content") or ""] + arguments):
            return True
    return False
""",
    "10-verdict": """
def verdict(sent, answer, stale):
    text = " ".join(message.get("content") or "" for message in sent)
    if answer in text:
        return "kept"
    if stale and stale in text:
        return "stale"
    return "lost"
""",
    "12-stream-usage": """
def stream_text_and_usage(chunks):
    text, usage = [], None
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            text.append(choice["delta"].get("content") or "")
        if chunk.get("usage"):
            usage = chunk["usage"]
    return "".join(text), usage
""",
    "12-retry-delay": """
def retry_delay(attempt, headers, rand, cap=8.0):
    lower = {name.lower(): value for name, value in headers.items()}
    if "retry-after-ms" in lower:
        wait = float(lower["retry-after-ms"]) / 1000
    elif "retry-after" in lower:
        wait = float(lower["retry-after"])
    else:
        return rand * min(cap, 2 ** (attempt - 1))
    return wait if wait <= 60 else None
""",
    "14-join-results": """
def join_by_custom_id(custom_ids, records):
    ran = {}
    for record in records:
        if record.get("response") is not None:
            ran[record["custom_id"]] = record["response"]
    return [ran.get(custom_id) for custom_id in custom_ids]
""",
    "14-poll-times": """
def poll_times(first, done, cap=60.0):
    times, wait = [0.0], first
    while times[-1] < done:
        times.append(times[-1] + wait)
        wait = min(cap, wait * 1.5)
    return times
""",
    "14-resubmit": """
def to_resubmit(custom_ids, records):
    settled = set()
    for record in records:
        response = record.get("response")
        if response is not None and response["status_code"] != 429 and response["status_code"] < 500:
            settled.add(record["custom_id"])
    return [custom_id for custom_id in custom_ids if custom_id not in settled]
""",
}

# Plausible mistakes, beyond each notebook's own stub, that a check must refuse.
WRONG: Dict[str, List[str]] = {
    "13-multipart": [
        REFERENCE["13-multipart"].replace("\\r\\n", "\\n"),
        REFERENCE["13-multipart"].replace('delimiter + b"--\\r\\n"', 'delimiter + b"\\r\\n"'),
        REFERENCE["13-multipart"].replace('audio + b"\\r\\n"', "audio"),
        REFERENCE["13-multipart"].replace(
            'filename.encode("utf-8")', 'filename.encode("ascii", "replace")'
        ),
    ],
    "13-wav-header": [
        REFERENCE["13-wav-header"].replace("sample_rate * 2, 2", "sample_rate, 2"),
        REFERENCE["13-wav-header"].replace("36 + data_size", "44 + data_size"),
        REFERENCE["13-wav-header"].replace('"<4sI4s', '">4sI4s'),
    ],
    "13-sentences": [
        REFERENCE["13-sentences"].replace("(?=\\s)", "(?=\\s|$)"),
        REFERENCE["13-sentences"].replace("|[。！？]+", ""),
        REFERENCE["13-sentences"].replace("(?=\\s)", ""),
        REFERENCE["13-sentences"].replace(
            "text[start:match.end()].strip()", "text[start:match.end()]"
        ),
    ],
    "11-connections-opened": [
        REFERENCE["11-connections-opened"].replace("(end, 0)", "(end, 2)"),
        REFERENCE["11-connections-opened"].replace("elif idle < k:", "else:"),
        "def connections_opened(calls, k):\n"
        "    return max((sum(s <= t < e for s, e in calls) for t, _ in calls), default=0)\n",
    ],
    "11-gather-bounded": [
        "import asyncio\n"
        "async def gather_bounded(coroutines, k):\n"
        "    results = []\n"
        "    for i in range(0, len(coroutines), k):\n"
        "        results += await asyncio.gather(*coroutines[i:i + k])\n"
        "    return results\n",
        "import asyncio\n"
        "async def gather_bounded(coroutines, k):\n"
        "    async with asyncio.Semaphore(k):\n"
        "        return await asyncio.gather(*coroutines)\n",
    ],
    "01-request-bytes": [REFERENCE["01-request-bytes"].replace("len(body)", "len(body.decode())")],
    "02-what-went-wrong": [
        "def what_went_wrong(status, body):\n"
        "    return {401: 'key', 404: 'model'}.get(status, 'other')\n"
    ],
    "02-resolve-key": [
        "def resolve_key(argument, environ):\n"
        "    return (argument or environ.get('OPENAI_API_KEY', '')).strip()\n"
    ],
    "04-line-splitter": [
        "class LineSplitter:\n"
        "    def __init__(self):\n"
        "        self.buffer = b''\n"
        "    def feed(self, data):\n"
        "        self.buffer += data\n"
        "        *lines, self.buffer = self.buffer.replace(b'\\r\\n', b'\\n').replace(b'\\r', b'\\n').split(b'\\n')\n"
        "        return lines\n"
    ],
    "05-wait-for": [
        "def wait_for(attempt, headers):\n"
        "    if 'retry-after' in headers:\n"
        "        return float(headers['retry-after'])\n"
        "    return min(8.0, 0.5 * 2 ** (attempt - 1))\n"
    ],
    "05-should-retry": [
        "def should_retry(status, body):\n    return status in (429, 500, 502, 503)\n"
    ],
    "06-trim": [REFERENCE["06-trim"].replace('kept[0]["role"] == "tool"', "False")],
    "07-cost": [
        REFERENCE["07-cost"].replace("fresh * price[0]", "usage['prompt_tokens'] * price[0]")
    ],
    "08-breaker-state": [REFERENCE["08-breaker-state"].replace("outcomes[-window:]", "outcomes")],
    "09-output-text": [
        "def output_text(response):\n"
        "    return ''.join(i['content'][0].get('text', '') for i in response['output'] if i['type'] == 'message')\n"
    ],
    "10-kept": [REFERENCE["10-kept"].replace("sent[:-1]", "sent")],
    "10-verdict": [REFERENCE["10-verdict"].replace('return "stale"', 'return "lost"')],
    "12-stream-usage": [
        "def stream_text_and_usage(chunks):\n"
        "    text, usage = '', None\n"
        "    for chunk in chunks:\n"
        "        if chunk['choices']:\n"
        "            text += chunk['choices'][0]['delta'].get('content', '')\n"
        "        usage = chunk.get('usage')\n"
        "    return text, usage\n",
        "def stream_text_and_usage(chunks):\n"
        "    text, usage = '', None\n"
        "    for chunk in chunks:\n"
        "        choice = chunk['choices'][0]\n"
        "        text += choice['delta'].get('content') or ''\n"
        "        usage = chunk.get('usage')\n"
        "        if choice['finish_reason']:\n"
        "            break\n"
        "    return text, usage\n",
        REFERENCE["12-stream-usage"].replace(
            'get("content") or ""',
            'get("content") or choice["delta"].get("reasoning_content") or ""',
        ),
    ],
    "12-retry-delay": [
        REFERENCE["12-retry-delay"].replace("rand * min(cap", "min(cap"),
        REFERENCE["12-retry-delay"].replace(
            "lower = {name.lower(): value for name, value in headers.items()}", "lower = headers"
        ),
        REFERENCE["12-retry-delay"].replace(
            "return wait if wait <= 60 else None", "return min(wait, cap)"
        ),
        REFERENCE["12-retry-delay"].replace(
            "return wait if wait <= 60 else None", "return rand * wait if wait <= 60 else None"
        ),
    ],
    "14-join-results": [
        REFERENCE["14-join-results"].replace(
            '        if record.get("response") is not None:\n'
            '            ran[record["custom_id"]] = record["response"]\n',
            '        ran[record["custom_id"]] = record.get("response")\n',
        ),
        REFERENCE["14-join-results"].replace(
            "return [ran.get(custom_id) for custom_id in custom_ids]",
            "return [ran[custom_id] for custom_id in custom_ids if custom_id in ran]",
        ),
        "def join_by_custom_id(custom_ids, records):\n"
        "    ordered = sorted(records, key=lambda record: record['custom_id'])\n"
        "    return [record['response'] for record in ordered]\n",
    ],
    "14-poll-times": [
        REFERENCE["14-poll-times"].replace("wait * 1.5", "wait * 2"),
        REFERENCE["14-poll-times"].replace("min(cap, wait * 1.5)", "wait * 1.5"),
        REFERENCE["14-poll-times"].replace("times[-1] < done", "times[-1] + wait < done"),
        REFERENCE["14-poll-times"].replace(
            "times, wait = [0.0], first", "times, wait = [first], first"
        ),
    ],
    "14-resubmit": [
        REFERENCE["14-resubmit"].replace(
            ' and response["status_code"] != 429 and response["status_code"] < 500', ""
        ),
        REFERENCE["14-resubmit"].replace(
            ' and response["status_code"] != 429 and response["status_code"] < 500',
            ' and response["status_code"] < 300',
        ),
        "def to_resubmit(custom_ids, records):\n"
        "    return [r['custom_id'] for r in records if r['response'] is None]\n",
        "def to_resubmit(custom_ids, records):\n"
        "    ran = {r['custom_id'] for r in records if r['response'] is not None}\n"
        "    return [r['custom_id'] for r in records if r['custom_id'] not in ran]\n",
    ],
}


def _exercises() -> List[Tuple[str, str, str, str]]:
    """(notebook, exercise id, stub source, check source) for every check cell, in order."""
    found = []
    for path in NOTEBOOKS:
        cells = nbformat.read(str(path), as_version=4).cells
        for index, cell in enumerate(cells):
            if "check" in cell.metadata.get("tags", []):
                stub = cells[index - 1]
                found.append(
                    (path.stem, cell.metadata.get("exercise", ""), stub.source, cell.source)
                )
    return found


EXERCISES = _exercises()


def _run(*sources: str) -> str:
    namespace: dict = {"__name__": "__exercise__"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for source in sources:
            exec(compile(source, "<exercise>", "exec"), namespace)
    return printed.getvalue()


def test_every_notebook_has_at_least_two_exercises():
    per_notebook = {path.stem: 0 for path in NOTEBOOKS}
    for notebook, *_ in EXERCISES:
        per_notebook[notebook] += 1
    assert {name for name, count in per_notebook.items() if count < 2} == set()


def test_every_check_follows_its_exercise_and_starts_collapsed():
    for path in NOTEBOOKS:
        cells = nbformat.read(str(path), as_version=4).cells
        for index, cell in enumerate(cells):
            if "check" in cell.metadata.get("tags", []):
                assert cell.metadata["jupyter"]["source_hidden"] is True
                assert "exercise" in cells[index - 1].metadata.get("tags", []), (path.stem, index)
                assert cells[index - 2].cell_type == "markdown", (path.stem, index)


def test_every_check_has_a_reference_answer():
    assert sorted(exercise for _, exercise, _, _ in EXERCISES) == sorted(REFERENCE)


@pytest.mark.parametrize(
    "notebook, exercise, stub, check", EXERCISES, ids=[e[1] for e in EXERCISES]
)
def test_a_check_passes_the_reference_answer(notebook, exercise, stub, check):
    printed = _run(REFERENCE[exercise], check)
    assert printed.startswith("ok:"), printed


@pytest.mark.parametrize(
    "notebook, exercise, stub, check", EXERCISES, ids=[e[1] for e in EXERCISES]
)
def test_a_check_refuses_the_stub_without_raising(notebook, exercise, stub, check):
    printed = _run(stub, check)
    assert printed.startswith("not yet:"), printed


@pytest.mark.parametrize(
    "notebook, exercise, stub, check", EXERCISES, ids=[e[1] for e in EXERCISES]
)
def test_a_check_refuses_a_missing_answer_without_raising(notebook, exercise, stub, check):
    printed = _run(check)
    assert printed.startswith("not yet:"), printed


@pytest.mark.parametrize(
    "exercise, wrong",
    [(exercise, wrong) for exercise, answers in WRONG.items() for wrong in answers],
    ids=[f"{exercise}-{n}" for exercise, answers in WRONG.items() for n in range(len(answers))],
)
def test_a_check_refuses_a_plausible_mistake(exercise, wrong):
    check = next(source for _, name, _, source in EXERCISES if name == exercise)
    printed = _run(wrong, check)
    assert printed.startswith("not yet:"), printed
