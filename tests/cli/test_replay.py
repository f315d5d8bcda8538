"""Replaying captures: events listed, faults named."""

from __future__ import annotations

import json

from rawchat.cli.replay import EventReport, analyse

ROLE = b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
HELLO = b'data: {"choices":[{"index":0,"delta":{"content":"Hello"}}]}\n\n'
STOP = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
USAGE = (
    b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}\n\n'
)
DONE = b"data: [DONE]\n\n"


def test_a_clean_capture_lists_its_events_and_has_no_faults():
    replay = analyse(ROLE + b": ping\n\n" + HELLO + STOP + USAGE + DONE)
    assert replay.events == (
        EventReport(1, "message", "role=assistant"),
        EventReport(2, "message", "content='Hello'"),
        EventReport(3, "message", "finish_reason=stop"),
        EventReport(4, "message", "usage prompt=3 completion=1 total=4"),
        EventReport(5, "message", "[DONE]"),
    )
    assert (replay.comments, replay.line_endings, replay.faults) == (1, (("LF", 12),), ())
    assert replay.completion.content == "Hello"


def test_a_truncated_capture_is_flagged():
    assert analyse(ROLE + HELLO).faults == (
        "no data: [DONE] at the end",
        "no finish_reason: the answer may be truncated",
    )


def test_bom_mixed_line_endings_and_an_unterminated_event_are_flagged():
    data = b"\xef\xbb\xbf" + ROLE.replace(b"\n", b"\r\n") + HELLO + STOP + DONE + b"data: {"
    assert analyse(data).faults == (
        "the stream starts with a UTF-8 byte order mark (allowed, but unusual)",
        "mixed line endings: 6 LF, 2 CRLF",
        "the capture ends inside an event (no blank line after it): it was discarded",
    )


def test_bad_json_and_error_events_are_flagged_with_their_number():
    data = (
        ROLE
        + b"data: {oops\n\n"
        + b'event: error\ndata: {"error":{"message":"boom"}}\n\n'
        + STOP
        + DONE
    )
    replay = analyse(data)
    assert replay.events[1] == EventReport(
        2, "message", "error", "malformed chunk, not JSON: '{oops'"
    )
    assert replay.events[2].event == "error"
    assert replay.faults == (
        "event #2: malformed chunk, not JSON: '{oops'",
        "event #3: the server sent an error inside the stream: boom",
    )


def test_events_after_done_are_flagged():
    assert analyse(ROLE + STOP + DONE + HELLO + DONE).faults == ("event #4 arrives after [DONE]",)


def test_events_after_done_are_listed_but_not_part_of_the_answer():
    replay = analyse(ROLE + HELLO + STOP + DONE + HELLO)
    assert replay.events[4] == EventReport(5, "message", "content='Hello'", "after [DONE]")
    assert replay.completion.content == "Hello"


def test_empty_data_events_are_listed_as_skipped_not_as_faults():
    replay = analyse(ROLE + b"data:\n\n" + HELLO + b"data\n\n" + STOP + DONE)
    assert [e.summary for e in replay.events] == [
        "role=assistant",
        "empty data, skipped",
        "content='Hello'",
        "empty data, skipped",
        "finish_reason=stop",
        "[DONE]",
    ]
    assert (replay.faults, replay.completion.content) == ((), "Hello")


def test_a_deeply_nested_event_is_flagged_as_malformed():
    replay = analyse(ROLE + b"data: " + b"[" * 100_000 + b"\n\n" + STOP + DONE)
    assert replay.faults == (
        "event #2: malformed chunk, nested too deeply to parse: '" + "[" * 120 + "'...",
    )


def test_tool_call_fragments_are_described_and_assembled():
    data = (
        b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"f","arguments":""}}]}}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\n' + DONE
    )
    replay = analyse(data)
    assert [e.summary for e in replay.events[:2]] == ["tool_call[0] f +''", "tool_call[0] +'{}'"]
    assert replay.completion.tool_calls[0].function.arguments == "{}"


# -- Responses API captures ----------------------------------------------------------


def _named(kind, number, **fields):
    data = {"type": kind, "sequence_number": number, **fields}
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


RESPONSE = {"id": "resp_1", "object": "response", "status": "in_progress", "output": []}
DONE_RESPONSE = dict(
    RESPONSE,
    status="completed",
    usage={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
)
OPENING = _named("response.created", 0, response=RESPONSE)
DELTA_HI = _named("response.output_text.delta", 1, output_index=0, content_index=0, delta="Hi")
DELTA_THERE = _named(
    "response.output_text.delta", 2, output_index=0, content_index=0, delta=" there"
)
COMPLETED = _named("response.completed", 3, response=DONE_RESPONSE)


def test_a_responses_capture_is_recognised_and_assembled():
    replay = analyse(OPENING + DELTA_HI + DELTA_THERE + COMPLETED)
    assert replay.api == "responses"
    assert replay.faults == ()
    assert replay.response.output_text == "Hi there"
    assert [event.summary for event in replay.events] == [
        "#0 status=in_progress",
        "#1 delta='Hi'",
        "#2 delta=' there'",
        "#3 status=completed",
    ]


def test_a_responses_capture_without_event_lines_is_recognised_too():
    capture = b"".join(
        part.split(b"\n", 1)[1] for part in (OPENING, DELTA_HI, DELTA_THERE, COMPLETED)
    )
    replay = analyse(capture)
    assert (replay.api, replay.response.output_text) == ("responses", "Hi there")
    assert replay.events[1].summary == "#1 response.output_text.delta delta='Hi'"


def test_a_responses_capture_reports_no_terminal_event_and_gaps():
    replay = analyse(OPENING + DELTA_THERE)
    assert replay.faults == (
        "no terminal event (response.completed or response.incomplete): truncated",
        "sequence_number gaps: 1 never arrived",
    )
    assert replay.response.output_text == " there"


def test_events_after_the_terminal_one_are_reported_and_done_is_tolerated():
    completed = _named("response.completed", 2, response=DONE_RESPONSE)
    replay = analyse(OPENING + DELTA_HI + completed + DELTA_THERE + b"data: [DONE]\n\n")
    assert replay.faults == ("event #4 arrives after the terminal event",)
    assert replay.events[3].fault == "after the terminal event"
    assert replay.events[4].summary == "[DONE] (not part of the Responses protocol; tolerated)"
    assert replay.response.output_text == "Hi"


def test_a_failed_responses_capture_reports_the_error():
    failed = dict(RESPONSE, status="failed", error={"code": "server_error", "message": "boom"})
    replay = analyse(OPENING + DELTA_HI + _named("response.failed", 2, response=failed))
    assert replay.faults == ("event #3: the server sent an error inside the stream: boom",)
