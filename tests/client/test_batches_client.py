"""client.files and client.batches against the simulator: the bytes sent, the objects back."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os

import pytest
import responses

import rawchat
from rawchat.client.batches import batch_error_hint
from rawchat.errors import (
    APIConnectionError,
    BadRequestError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
)
from rawchat.protocol.batches import MAX_FILE_BYTES, FileObject, RequestCounts
from rawchat.simulator.batches import BatchTiming
from rawchat.simulator.faults import parse_faults

from ..conftest import KEY
from ..raw_server import RawServer

LINE = (
    b'{"custom_id":"a","method":"POST","url":"/v1/chat/completions",'
    b'"body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}}\n'
)


class Clock:
    """The simulator's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1700000000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def provider(sim):
    sim.app.clock = clock = Clock()
    sim.app.batches.timing = BatchTiming(validate=1, run=4, finalize=1)
    return clock


def spy_on_uploads(sim):
    seen = []
    upload = sim.app.batches.upload

    def spy(body, content_type, now):
        seen.append((content_type, body))
        return upload(body, content_type, now)

    sim.app.batches.upload = spy
    return seen


def test_an_upload_sends_the_purpose_then_the_file_as_multipart_form_data(sim, client, provider):
    seen = spy_on_uploads(sim)
    made = client.files.create(LINE, boundary="bnd")
    assert seen == [
        (
            "multipart/form-data; boundary=bnd",
            b"--bnd\r\n"
            b'Content-Disposition: form-data; name="purpose"\r\n'
            b"\r\n"
            b"batch\r\n"
            b"--bnd\r\n"
            b'Content-Disposition: form-data; name="file"; filename="input.jsonl"\r\n'
            b"Content-Type: application/jsonl\r\n"
            b"\r\n" + LINE + b"\r\n"
            b"--bnd--\r\n",
        )
    ]
    assert made == FileObject(
        id="file-sim000001",
        bytes=len(LINE),
        filename="input.jsonl",
        purpose="batch",
        created_at=1700000000,
        status="processed",
    )


def test_each_upload_has_a_fresh_random_boundary(sim, client):
    seen = spy_on_uploads(sim)
    client.files.create(LINE)
    client.files.create(LINE)
    first, second = (kind for kind, _ in seen)
    assert first.startswith("multipart/form-data; boundary=rawchat-") and len(first) == 70
    assert first != second


def test_a_path_is_uploaded_under_its_own_name_and_a_file_object_under_its_name(
    sim, client, tmp_path
):
    path = tmp_path / "questions.jsonl"
    path.write_bytes(LINE)
    assert client.files.create(str(path)).filename == "questions.jsonl"
    with open(path, "rb") as opened:
        assert client.files.create(opened).filename == "questions.jsonl"
    assert client.files.create(io.BytesIO(LINE), filename="x.jsonl").filename == "x.jsonl"
    assert sim.app.batches.contents["file-sim000002"] == LINE


def test_a_file_over_the_limit_is_refused_before_it_is_read_or_sent(sim, client, tmp_path):
    path = tmp_path / "huge.jsonl"
    with open(path, "wb") as huge:
        huge.truncate(MAX_FILE_BYTES + 1)  # sparse: nothing is written to disk
    with pytest.raises(InvalidRequestError) as refused:
        client.files.create(path)
    assert refused.value.message == (
        "'huge.jsonl' is 209,715,201 bytes, over the batch input limit of 209,715,200"
    )
    assert "split it into several files" in refused.value.hint
    assert sim.request_count == 0


def test_a_batch_input_must_be_json_lines_and_text_must_come_as_bytes(sim, client):
    with pytest.raises(InvalidRequestError) as named:
        client.files.create(LINE, filename="input.txt")
    assert named.value.hint == "name the upload something.jsonl, one request a line"
    with pytest.raises(InvalidRequestError) as purpose:
        client.files.create(LINE, purpose="batches")
    assert purpose.value.message == "'batches' is not a file purpose"
    with pytest.raises(InvalidRequestError) as text:
        client.files.create(io.StringIO("{}"))
    assert text.value.hint == "open the file with open(path, 'rb')"
    assert sim.request_count == 0


def test_a_batch_of_a_file_with_another_purpose_is_refused_with_a_hint(sim, client):
    made = client.files.create(LINE, purpose="user_data")
    with pytest.raises(BadRequestError) as refused:
        client.batches.create(input_file_id=made.id, endpoint="/v1/chat/completions")
    assert refused.value.code == "invalid_file"
    assert "upload it again with client.files.create(path, purpose='batch')" in refused.value.hint


def test_files_are_listed_retrieved_and_deleted(sim, client, provider):
    first = client.files.create(LINE)
    second = client.files.create(LINE, purpose="user_data", filename="notes.jsonl")
    assert client.files.list() == [first, second]
    assert client.files.list(purpose="batch") == [first, second]  # the simulator ignores it
    assert client.files.retrieve(second.id) == second
    assert client.files.delete(first.id) == {
        "id": "file-sim000001",
        "object": "file",
        "deleted": True,
    }
    with pytest.raises(NotFoundError) as gone:
        client.files.retrieve(first.id)
    assert gone.value.hint == (
        "this server has no file with that id: it was deleted, or belongs to another "
        "project, organization or key"
    )
    assert client.files.create(LINE).id == "file-sim000003"  # an id is never given twice


def test_a_file_is_downloaded_whole_into_place_and_nothing_is_left_beside_it(sim, client, tmp_path):
    made = client.files.create(LINE * 3)
    target = tmp_path / "copy.jsonl"
    assert client.files.content(made.id, target) == len(LINE) * 3
    assert target.read_bytes() == LINE * 3
    with pytest.raises(NotFoundError):
        client.files.content("file-missing", tmp_path / "missing.jsonl")
    assert sorted(os.listdir(tmp_path)) == ["copy.jsonl"]


def test_a_download_that_breaks_off_is_fetched_again_from_the_start(tmp_path):
    whole = LINE * 4

    def script(conn, request):
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/jsonl\r\n"
        if len(server.requests) == 1:  # the first answer stops halfway
            conn.sendall(head + b"Content-Length: %d\r\n\r\n" % len(whole) + whole[:100])
        else:
            conn.sendall(head + b"Content-Length: %d\r\n\r\n" % len(whole) + whole)

    with RawServer(script) as server:
        no_wait = rawchat.Clock(sleep=lambda seconds: None)
        with rawchat.Client(KEY, server.base_url, clock=no_wait) as client:
            target = tmp_path / "out.jsonl"
            assert client.files.content("file-1", target) == len(whole)
    assert target.read_bytes() == whole
    assert len(server.requests) == 2
    assert os.listdir(tmp_path) == ["out.jsonl"]


def test_a_download_that_keeps_breaking_off_leaves_no_file(tmp_path):
    def script(conn, request):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n" + LINE)

    with RawServer(script) as server:
        no_wait = rawchat.Clock(sleep=lambda seconds: None)
        with rawchat.Client(KEY, server.base_url, clock=no_wait, max_retries=1) as client:
            with pytest.raises(APIConnectionError):
                client.files.content("file-1", tmp_path / "out.jsonl")
    assert len(server.requests) == 2
    assert os.listdir(tmp_path) == []


def test_a_batch_goes_from_validating_to_completed_with_its_metadata(client, provider):
    made = client.files.create(LINE)
    batch = client.batches.create(
        input_file_id=made.id, endpoint="/v1/chat/completions", metadata={"job": "7"}
    )
    assert (batch.id, batch.status, batch.metadata) == (
        "batch_sim000001",
        "validating",
        {"job": "7"},
    )
    provider.now += 6
    done = client.batches.retrieve(batch.id)
    assert (done.status, done.request_counts) == ("completed", RequestCounts(1, 1, 0))
    assert done.output_file_id == "file-batch_sim000001-output"
    assert client.batches.list() == [done]


def test_a_cancelled_batch_is_cancelling_then_cancelled_and_cannot_be_cancelled_again(
    client, provider
):
    made = client.files.create(LINE)
    batch = client.batches.create(input_file_id=made.id, endpoint="/v1/chat/completions")
    assert client.batches.cancel(batch.id).status == "cancelling"
    provider.now += 1
    assert client.batches.retrieve(batch.id).status == "cancelled"
    with pytest.raises(ConflictError) as ended:
        client.batches.cancel(batch.id)
    assert ended.value.hint == (
        "the batch has already ended (completed, failed, expired or cancelled)"
    )


def test_a_batch_create_that_may_have_arrived_is_not_sent_again(sim, client):
    made = client.files.create(LINE)
    sim.app.faults = parse_faults("drop*1")  # the server creates it, then hangs up
    with pytest.raises(APIConnectionError):
        client.batches.create(
            input_file_id=made.id, endpoint="/v1/chat/completions", metadata={"job": "7"}
        )
    assert sim.app.batches.created == 1
    (found,) = client.batches.list()
    assert found.metadata == {"job": "7"}


def test_a_status_read_that_fails_is_retried(sim, client):
    made = client.files.create(LINE)
    sim.app.faults = parse_faults("drop*1")
    assert client.files.retrieve(made.id) == made


@responses.activate
def test_every_page_of_a_list_is_read(client):
    url = "http://example.test/v1/files"
    page = {"object": "file", "bytes": 1, "filename": "a.jsonl", "purpose": "batch"}
    responses.get(
        url,
        json={"data": [dict(page, id="file-1"), dict(page, id="file-2")], "has_more": True},
        match=[responses.matchers.query_param_matcher({"limit": "2"})],
    )
    responses.get(
        url,
        json={"data": [dict(page, id="file-3")], "has_more": False},
        match=[responses.matchers.query_param_matcher({"limit": "2", "after": "file-2"})],
    )
    listing = rawchat.Client(KEY, "http://example.test/v1").files.list(limit=2)
    assert [f.id for f in listing] == ["file-1", "file-2", "file-3"]


@pytest.mark.parametrize(
    ("status", "code", "url", "hint"),
    [
        (413, "file_too_large", "https://api.openai.com/v1/files", "at most 209,715,200 bytes"),
        (400, "invalid_value", "https://api.openai.com/v1/files", "purpose is one of"),
        (404, None, "http://localhost:8000/v1/batches", "has no Files and Batch APIs"),
        (404, None, "http://localhost:8000/batches", ""),  # the general hint: add /v1
        (404, None, "https://api.openai.com/v1/batches/batch_1", "has no batch with that id"),
        (404, "model_not_found", "https://api.openai.com/v1/files", ""),
    ],
)
def test_the_batch_apis_refusals_have_their_own_hints(status, code, url, hint):
    param = "purpose" if code == "invalid_value" else None
    found = batch_error_hint(status, code=code, param=param, message="", url=url)
    assert hint in found and (hint or not found)


def test_the_async_client_has_the_same_namespaces(sim, provider, tmp_path):
    async def go():
        async with rawchat.AsyncClient(KEY, sim.base_url) as client:
            made = await client.files.create(LINE, boundary="bnd")
            batch = await client.batches.create(
                input_file_id=made.id, endpoint="/v1/chat/completions"
            )
            provider.now += 6
            done = await client.batches.retrieve(batch.id)
            size = await client.files.content(done.output_file_id, tmp_path / "out.jsonl")
            listed = await client.files.list(), await client.batches.list()
            cancelled = await client.batches.create(
                input_file_id=made.id, endpoint="/v1/chat/completions"
            )
            cancelling = await client.batches.cancel(cancelled.id)
            deleted = await client.files.delete(made.id)
            return made, done, size, listed, cancelling, deleted

    made, done, size, (files, batches), cancelling, deleted = asyncio.run(go())
    assert dataclasses.replace(made, created_at=0) == FileObject(
        "file-sim000001", len(LINE), "input.jsonl", "batch", 0, "processed"
    )
    assert done.status == "completed" and size == (tmp_path / "out.jsonl").stat().st_size
    assert [f.id for f in files] == ["file-sim000001", "file-batch_sim000001-output"]
    assert [b.id for b in batches] == ["batch_sim000001"]
    assert cancelling.status == "cancelling" and deleted["deleted"] is True
