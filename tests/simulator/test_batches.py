"""The simulator plays the provider's Files and Batch APIs, driven by its clock."""

from __future__ import annotations

import json

from rawchat.protocol.batches import (
    build_batch_cancel_request,
    build_batch_create_request,
    build_batch_retrieve_request,
    build_file_content_request,
    build_file_delete_request,
    build_file_upload_request,
    join_results,
    parse_batch,
    plan_batch,
    read_results,
)
from rawchat.protocol.http import HTTPRequest
from rawchat.protocol.settings import Settings
from rawchat.simulator import SimRequest, SimulatorApp
from rawchat.simulator.batches import BatchTiming

SETTINGS = Settings(api_key="sk-test-0123456789abcdef", base_url="http://sim/v1")
LINES = [
    '{"id": "a", "prompt": "one"}',
    '{"id": "b", "prompt": "two", "model": "no-such-model"}',
    '{"id": "c", "prompt": "three"}',
    '{"id": "d", "input": "four"}',
]


class Provider:
    """The simulator app with a clock the test moves."""

    def __init__(self) -> None:
        self.now = 1700000000.0
        self.app = SimulatorApp(clock=lambda: self.now)
        self.app.batches.timing = BatchTiming(validate=1, run=4, finalize=1, window=100)

    def send(self, request: HTTPRequest):
        path = request.url.split("//", 1)[1].partition("/")[2]
        answer = self.app.handle(
            SimRequest(request.method, "/" + path, request.headers, request.body)
        )
        return answer.status, answer.body

    def submit(self, plan):
        batches = []
        for number, batch_file in enumerate(plan.files):
            status, body = self.send(
                build_file_upload_request(
                    SETTINGS, batch_file.data, filename=f"in{number}.jsonl", boundary="bnd"
                )
            )
            assert status == 200
            request = build_batch_create_request(
                SETTINGS, json.loads(body)["id"], endpoint=batch_file.endpoint
            )
            batches.append(parse_batch(json.loads(self.send(request)[1])))
        return batches

    def poll(self, batch_id):
        return parse_batch(
            json.loads(self.send(build_batch_retrieve_request(SETTINGS, batch_id))[1])
        )

    def results(self, batches):
        texts = []
        for batch in batches:
            for file_id in (batch.output_file_id, batch.error_file_id):
                if file_id:
                    texts.append(
                        self.send(build_file_content_request(SETTINGS, file_id))[1].decode()
                    )
        return read_results(*texts)


def test_a_batch_goes_through_its_statuses_by_the_clock():
    provider = Provider()
    (chat, _) = provider.submit(plan_batch(LINES, model="gpt-4o-mini"))
    seen = []
    for step in range(8):
        provider.now = 1700000000.0 + step
        batch = provider.poll(chat.id)
        seen.append((batch.status, batch.request_counts.done))
    assert seen == [
        ("validating", 0),
        ("in_progress", 0),
        ("in_progress", 0),
        ("in_progress", 1),
        ("in_progress", 2),
        ("finalizing", 3),
        ("completed", 3),
        ("completed", 3),
    ]
    assert batch.request_counts.failed == 1


def test_results_with_a_partial_failure_join_back_to_the_input():
    provider = Provider()
    plan = plan_batch(LINES, model="gpt-4o-mini")
    batches = provider.submit(plan)
    provider.now += 10
    batches = [provider.poll(b.id) for b in batches]
    assert [b.status for b in batches] == ["completed", "completed"]
    joined = join_results(plan, provider.results(batches))
    assert joined.complete
    assert [(r["id"], r["ok"]) for r in joined.records] == [
        ("a", True), ("b", False), ("c", True), ("d", True),
    ]  # fmt: skip
    assert joined.records[1]["error"]["status"] == 404
    assert joined.records[0]["content"].startswith("Hello from the rawchat simulator")
    assert (provider.app.batches.uploads, provider.app.batches.created) == (2, 2)


def test_an_expired_batch_has_partial_output_and_the_rest_to_resubmit():
    provider = Provider()
    provider.app.batches.timing = BatchTiming(validate=1, run=4, finalize=1, window=3)
    plan = plan_batch(LINES[:3], model="gpt-4o-mini")
    (batch,) = provider.submit(plan)
    provider.now += 3
    batch = provider.poll(batch.id)
    assert batch.status == "expired"
    joined = join_results(plan, provider.results([batch]))
    assert [r and r["ok"] for r in joined.records] == [True, None, None]
    assert [line.custom_id for line in joined.missing] == ["b", "c"]


def test_a_cancelled_batch_goes_cancelling_then_cancelled():
    provider = Provider()
    (batch,) = provider.submit(plan_batch(LINES[:1], model="gpt-4o-mini"))
    status, body = provider.send(build_batch_cancel_request(SETTINGS, batch.id))
    assert (status, json.loads(body)["status"]) == (200, "cancelling")
    provider.now += 1
    assert provider.poll(batch.id).status == "cancelled"
    status, _ = provider.send(build_batch_cancel_request(SETTINGS, batch.id))
    assert status == 409


def test_a_batch_of_a_file_not_uploaded_for_batch_is_refused():
    provider = Provider()
    upload = build_file_upload_request(
        SETTINGS, b"{}\n", filename="x.jsonl", boundary="bnd", purpose="user_data"
    )
    file_id = json.loads(provider.send(upload)[1])["id"]
    status, body = provider.send(build_batch_create_request(SETTINGS, file_id))
    assert status == 400
    assert json.loads(body)["error"]["code"] == "invalid_file"


def test_a_batch_keeps_the_timing_it_was_created_with():
    provider = Provider()
    (slow,) = provider.submit(plan_batch(LINES[:1], model="gpt-4o-mini"))
    provider.app.batches.timing = BatchTiming(validate=0, run=0, finalize=0)
    (quick,) = provider.submit(plan_batch(LINES[:1], model="gpt-4o-mini"))
    assert (provider.poll(slow.id).status, provider.poll(quick.id).status) == (
        "validating",
        "completed",
    )


def test_file_ids_are_never_given_twice_and_reads_of_content_are_counted():
    provider = Provider()
    upload = build_file_upload_request(SETTINGS, b"{}\n", filename="x.jsonl", boundary="bnd")
    first = json.loads(provider.send(upload)[1])["id"]
    assert provider.send(build_file_delete_request(SETTINGS, first))[0] == 200
    assert json.loads(provider.send(upload)[1])["id"] == "file-sim000002"
    provider.send(build_file_content_request(SETTINGS, "file-sim000002"))
    provider.send(build_file_content_request(SETTINGS, "file-sim000002"))
    assert provider.app.batches.downloads == 2
