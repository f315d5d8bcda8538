"""Replaying captures: events listed, faults named."""

from __future__ import annotations

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
