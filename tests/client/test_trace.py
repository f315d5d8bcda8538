"""Wire traces: what they show, in what order, and what they never show."""

from __future__ import annotations

import io
import json
import re

import pytest

import rawchat
from rawchat.client.trace import HARTrace, JSONLinesTrace, MultiTrace, TextTrace, escape
from rawchat.errors import APIConnectionError

from ..conftest import KEY

HI = [{"role": "user", "content": "你好"}]


@pytest.mark.parametrize(
    "data, shown",
    [
        (b"data: x\r\n\r\n", "data: x\\r\\n\\r\\n"),
        (b": keep-alive\n\n", ": keep-alive\\n\\n"),
        ("data: 你好\n".encode(), "data: 你好\\n"),
        ("你".encode()[:2], "\\xe4\\xbd"),
        (b"\xef\xbb\xbfdata", "\\ufeffdata"),
        ("a\u2028b\x00".encode(), "a\\u2028b\\x00"),
        (b"back\\slash\t", "back\\\\slash\\t"),
    ],
)
def test_escape_makes_line_ends_controls_and_split_characters_visible(data, shown):
    assert escape(data) == shown


def masked(text: str) -> str:
    text = (
        re.sub(r" *\d+\.\d ms", "T ms", text).replace("<T ms", "< T ms").replace(".T ms", ". T ms")
    )
    text = re.sub(r"127\.0\.0\.1:\d+", "HOST", text)
    text = re.sub(r'"created":\d+', '"created":N', text)
    return re.sub(r"(Date|Server|User-Agent): .*", r"\1: X", text)


def test_a_text_trace_shows_request_response_head_and_each_raw_piece(sim):
    out = io.StringIO()
    client = rawchat.Client(KEY, sim.base_url, trace=TextTrace(out))
    client.chat(HI, model="gpt-4o-mini", max_tokens=1, extra_headers={"X-Rawchat-Fault": "crlf"})
    lines = masked(out.getvalue()).splitlines()
    assert lines[:8] == [
        "#1 > POST http://HOST/v1/chat/completions HTTP/1.1",
        "#1 > User-Agent: X",
        "#1 > Accept-Encoding: gzip, deflate"
        + lines[2][len("#1 > Accept-Encoding: gzip, deflate") :],
        "#1 > Accept: application/json",
        "#1 > Connection: keep-alive",
        "#1 > Authorization: Bearer ...cdef",
        "#1 > Content-Type: application/json",
        "#1 > X-Rawchat-Fault: crlf",
    ]
    assert '#1 >       "content": "你好"' in lines
    assert "#1 < HTTP/1.1 200 OK  (T ms)" in lines
    assert "#1 < x-request-id: req_sim000001" in lines
    assert lines[-1] == "#1 . T ms  end of body"
    assert KEY not in out.getvalue()


def test_a_streamed_trace_shows_every_piece_with_escaped_line_ends(sim):
    out = io.StringIO()
    client = rawchat.Client(KEY, sim.base_url, trace=TextTrace(out))
    with client.stream(
        HI, model="gpt-4o-mini", max_tokens=1, extra_headers={"X-Rawchat-Fault": "crlf,split"}
    ) as s:
        s.completion
    pieces = [line for line in masked(out.getvalue()).splitlines() if " B  " in line]
    assert pieces[1] == "#1 < T ms      2 B  \\n\\r"
    # The read that completes data: [DONE] is the last: nothing is read after it.
    assert pieces[-1] == "#1 < T ms      2 B  \\n\\r"
    assert sum(1 for p in pieces if p.endswith("data: [DONE]\\r")) == 1


class _Exchange:
    number = 3
    response_headers = ()


def test_a_read_holding_several_events_shows_one_per_line_under_its_time():
    out = io.StringIO()
    TextTrace(out).on_body(_Exchange(), 12.5, b"data: a\r\n\r\ndata: b\r\n\r\ndata: c")
    assert out.getvalue().splitlines() == [
        "#3 <      12.5 ms     29 B  data: a\\r\\n\\r\\n",
        "#3 <                     +  data: b\\r\\n\\r\\n",
        "#3 <                     +  data: c",
    ]


def test_a_read_inside_one_event_is_one_line():
    out = io.StringIO()
    TextTrace(out).on_body(_Exchange(), 1.0, b'data: {"a"')
    assert out.getvalue().splitlines() == ['#3 <       1.0 ms     10 B  data: {"a"']


def test_a_failed_connection_ends_its_exchange_with_the_error():
    out = io.StringIO()
    client = rawchat.Client(
        KEY,
        "http://127.0.0.1:9/v1",
        trace=TextTrace(out),
        max_retries=1,
        clock=rawchat.Clock(sleep=lambda s: None),
    )
    with pytest.raises(APIConnectionError):
        client.chat(HI, model="m")
    ends = [line for line in out.getvalue().splitlines() if " . " in line]
    assert len(ends) == 2  # one per attempt
    assert "APIConnectionError: could not connect to 127.0.0.1:9" in ends[0]


def test_a_stream_closed_early_says_so(sim):
    out = io.StringIO()
    client = rawchat.Client(KEY, sim.base_url, trace=TextTrace(out))
    with client.stream(HI, model="gpt-4o-mini") as stream:
        next(stream.text())
    assert out.getvalue().splitlines()[-1].endswith("closed before the end of the body")


def test_json_lines_record_each_event_in_order(sim):
    out = io.StringIO()
    rawchat.Client(KEY, sim.base_url, trace=JSONLinesTrace(out)).chat(HI, model="gpt-4o-mini")
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["event"] for r in records] == ["request", "response", "body", "end"]
    assert (
        records[0]["method"] == "POST"
        and ["Authorization", "Bearer ...cdef"] in records[0]["headers"]
    )
    assert records[1]["status"] == 200
    assert records[2]["bytes"].startswith('{"id":"chatcmpl-sim000001","created":')
    assert records[2]["size"] == len(records[2]["bytes"].replace("\\\\", "\\").encode())
    assert records[3]["error"] is None


def test_a_har_file_has_the_exchanges_and_no_key(sim, tmp_path):
    path = tmp_path / "session.har"
    trace = HARTrace(str(path))
    client = rawchat.Client(KEY, sim.base_url, trace=trace)
    client.chat(HI, model="gpt-4o-mini")
    with client.stream(HI, model="gpt-4o-mini") as stream:
        stream.completion
    trace.close()
    text = path.read_text(encoding="utf-8")
    har = json.loads(text)["log"]
    assert har["version"] == "1.2" and har["creator"]["name"] == "rawchat"
    assert [e["response"]["status"] for e in har["entries"]] == [200, 200]
    first = har["entries"][0]
    assert first["request"]["postData"]["mimeType"] == "application/json"
    assert json.loads(first["request"]["postData"]["text"])["messages"] == HI
    assert har["entries"][1]["response"]["content"]["text"].endswith("data: [DONE]\n\n")
    assert set(first["timings"]) == {"send", "wait", "receive"}
    assert KEY not in text


def test_multi_trace_feeds_every_sink(sim):
    a, b = io.StringIO(), io.StringIO()
    rawchat.Client(KEY, sim.base_url, trace=MultiTrace([TextTrace(a), JSONLinesTrace(b)])).chat(
        HI, model="gpt-4o-mini"
    )
    assert a.getvalue().startswith("#1 > POST")
    assert len(b.getvalue().splitlines()) == 4
