"""Files and batches by hand: the requests, the input plan, the results joined back."""

from __future__ import annotations

import json

import pytest

from rawchat.errors import InvalidRequestError
from rawchat.protocol.batches import (
    BATCH_STATUSES,
    Batch,
    RequestCounts,
    build_batch_cancel_request,
    build_batch_create_request,
    build_batch_list_request,
    build_file_content_request,
    build_file_delete_request,
    build_file_upload_request,
    join_results,
    parse_batch,
    plan_batch,
    read_results,
)
from rawchat.protocol.settings import Settings

SETTINGS = Settings(api_key="sk-test-0123456789abcdef", base_url="https://api.example.com/v1")


def _completion(text):
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


def test_an_upload_is_a_form_with_the_purpose_before_the_file():
    request = build_file_upload_request(
        SETTINGS, b'{"a":1}\n', filename="in.jsonl", boundary="b0undary"
    )
    assert (request.method, request.url) == ("POST", "https://api.example.com/v1/files")
    assert request.headers["content-type"] == "multipart/form-data; boundary=b0undary"
    assert request.body == (
        b'--b0undary\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\n'
        b'Content-Type: application/jsonl\r\n\r\n{"a":1}\n\r\n--b0undary--\r\n'
    )


def test_a_wrong_purpose_is_refused_with_the_list_of_purposes():
    with pytest.raises(InvalidRequestError, match="'batches' is not a file purpose") as caught:
        build_file_upload_request(
            SETTINGS, b"x", filename="in.jsonl", boundary="b", purpose="batches"
        )
    assert "purpose='batch'" in caught.value.hint


def test_a_file_over_the_limit_is_refused_before_it_is_sent(monkeypatch):
    import rawchat.protocol.batches as batches

    monkeypatch.setattr(batches, "MAX_FILE_BYTES", 4)
    with pytest.raises(InvalidRequestError, match="over the batch input limit of 4") as caught:
        build_file_upload_request(SETTINGS, b"12345", filename="in.jsonl", boundary="b")
    assert caught.value.hint.startswith("split it into several files")


def test_the_batch_requests_on_the_wire():
    create = build_batch_create_request(SETTINGS, "file-1", metadata={"job": "nightly"})
    assert (create.method, create.url) == ("POST", "https://api.example.com/v1/batches")
    assert create.json() == {
        "input_file_id": "file-1",
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        "metadata": {"job": "nightly"},
    }
    cancel = build_batch_cancel_request(SETTINGS, "batch_1")
    assert (cancel.method, cancel.url, cancel.body) == (
        "POST", "https://api.example.com/v1/batches/batch_1/cancel", b"",
    )  # fmt: skip
    listed = build_batch_list_request(SETTINGS, limit=5, after="batch_0")
    assert listed.url == "https://api.example.com/v1/batches?limit=5&after=batch_0"
    content = build_file_content_request(SETTINGS, "file-2")
    assert (content.url, content.stream) == (
        "https://api.example.com/v1/files/file-2/content",
        True,
    )
    assert build_file_delete_request(SETTINGS, "file-2").method == "DELETE"


def test_a_completion_window_other_than_24h_is_refused():
    with pytest.raises(InvalidRequestError, match="completion_window '1h' is not offered"):
        build_batch_create_request(SETTINGS, "file-1", completion_window="1h")


def test_a_batch_object_reads_into_frozen_values():
    batch = parse_batch(
        {
            "id": "batch_1",
            "status": "in_progress",
            "endpoint": "/v1/chat/completions",
            "input_file_id": "file-1",
            "request_counts": {"total": 3, "completed": 1, "failed": 1},
            "output_file_id": None,
        }
    )
    assert batch == Batch(
        id="batch_1",
        status="in_progress",
        endpoint="/v1/chat/completions",
        input_file_id="file-1",
        request_counts=RequestCounts(3, 1, 1),
    )
    assert (batch.finished, batch.request_counts.done) == (False, 2)
    assert [s for s in BATCH_STATUSES if Batch("b", s).finished] == [
        "completed", "failed", "expired", "cancelled",
    ]  # fmt: skip


def test_custom_id_is_the_line_id_else_its_number_and_invalid_lines_stay_local():
    plan = plan_batch(
        ['{"id": "q1", "prompt": "hi"}', "not json", '{"prompt": "yo", "max_tokens": 5}'],
        model="gpt-4o-mini",
    )
    assert [(x.line, x.custom_id) for x in plan.lines] == [(1, "q1"), (3, "3")]
    assert plan.lines[1].to_jsonl() == (
        b'{"custom_id":"3","method":"POST","url":"/v1/chat/completions","body":'
        b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"yo"}],"max_tokens":5}}\n'
    )
    assert [x.line for x in plan.invalid] == [2]


def test_duplicate_ids_are_refused_before_anything_is_built():
    with pytest.raises(InvalidRequestError, match="lines 1 and 3 have the same custom_id 'a'"):
        plan_batch(
            ['{"id": "a", "prompt": "1"}', '{"prompt": "2"}', '{"id": "a", "prompt": "3"}'],
            model="m",
        )


def test_responses_lines_go_to_their_own_files():
    plan = plan_batch(
        ['{"prompt": "a"}', '{"input": "b"}', '{"api": "responses", "prompt": "c"}'],
        model="m",
    )
    assert [(f.endpoint, f.custom_ids) for f in plan.files] == [
        ("/v1/chat/completions", ("1",)),
        ("/v1/responses", ("2", "3")),
    ]
    assert plan.lines[2].body == {"model": "m", "input": "c"}


def test_an_input_is_split_by_request_count_and_by_size():
    texts = [json.dumps({"prompt": "x" * 10}) for _ in range(5)]
    assert [len(f.lines) for f in plan_batch(texts, model="m", max_requests=2).files] == [2, 2, 1]
    size = len(plan_batch(texts[:1], model="m").files[0].data)
    by_size = plan_batch(texts, model="m", max_bytes=size * 3 - 1)
    assert [len(f.lines) for f in by_size.files] == [2, 2, 1]


def test_results_out_of_order_are_joined_back_in_input_order():
    plan = plan_batch(['{"id": "a", "prompt": "1"}', "[]", '{"id": "b", "prompt": "2"}'], model="m")
    output = "\n".join(
        json.dumps({"custom_id": cid, "response": {"status_code": 200, "body": _completion(text)}})
        for cid, text in (("b", "two"), ("a", "one"))
    )
    errors = json.dumps(
        {
            "custom_id": "zz",
            "response": {"status_code": 400, "body": {"error": {"message": "bad", "type": "x"}}},
        }
    )
    joined = join_results(plan, read_results(output, errors))
    assert joined.complete
    assert [(r["line"], r["ok"], r.get("content")) for r in joined.records] == [
        (1, True, "one"), (2, False, None), (3, True, "two"),
    ]  # fmt: skip
    assert joined.records[0]["usage"] == {"prompt_tokens": 3, "completion_tokens": 2}


def test_a_failed_line_keeps_its_status_and_error():
    plan = plan_batch(['{"prompt": "1"}'], model="m")
    errors = json.dumps(
        {
            "custom_id": "1",
            "response": {
                "status_code": 404,
                "body": {"error": {"message": "no model", "type": "invalid_request_error"}},
            },
        }
    )
    record = join_results(plan, read_results("", errors)).records[0]
    assert record == {
        "line": 1,
        "id": None,
        "ok": False,
        "error": {"type": "invalid_request_error", "message": "no model", "status": 404},
    }


def test_an_expired_batch_keeps_its_finished_lines_and_lists_the_rest():
    plan = plan_batch(['{"prompt": "1"}', '{"prompt": "2"}', '{"prompt": "3"}'], model="m")
    output = json.dumps(
        {"custom_id": "2", "response": {"status_code": 200, "body": _completion("b")}}
    )
    errors = "\n".join(
        json.dumps({"custom_id": c, "response": None, "error": {"code": "batch_expired"}})
        for c in ("1", "3")
    )
    joined = join_results(plan, read_results(output, errors))
    assert [r and r["content"] for r in joined.records] == [None, "b", None]
    assert [line.custom_id for line in joined.missing] == ["1", "3"]
