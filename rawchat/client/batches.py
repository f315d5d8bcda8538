"""``client.files`` and ``client.batches``: the Files and Batch APIs over the attempt loop.

The edge of ``protocol/batches.py`` (https://platform.openai.com/docs/api-reference/files,
https://platform.openai.com/docs/api-reference/batch). Each method builds
its request there, sends it through the client's ``Call`` (auth, key pool,
pacing, breaker, retries, deadline, hooks and traces, as ``chat()`` has)
and parses the answer there::

    client.files.create(file, purpose="batch")   POST   /files     -> FileObject
    client.files.list(purpose=None)              GET    /files     -> [FileObject]
    client.files.retrieve(file_id)               GET    /files/{id}
    client.files.content(file_id, path)          GET    /files/{id}/content, to disk
    client.files.delete(file_id)                 DELETE /files/{id}
    client.batches.create(input_file_id=..., endpoint=...)   POST /batches -> Batch
    client.batches.retrieve(batch_id)            GET    /batches/{id}
    client.batches.list()                        GET    /batches   -> [Batch]
    client.batches.cancel(batch_id)              POST   /batches/{id}/cancel

What the edge adds to the protocol:

* the multipart boundary, from ``os.urandom`` (``create(..., boundary=)``
  fixes it, as ``transcribe()`` does, for tests that check the bytes);
* an upload given as a path is checked (size, name, purpose) before it is
  read, so a 300 MB file is refused without reading it;
* ``POST /files`` and ``POST /batches`` are not sent again after a failure
  that may have reached the server (``RetryPolicy(resend=False)``): each
  would be a second file or a second batch, paid twice. The caller finds
  out what happened with ``list()``;
* ``content()`` writes the body to disk as it arrives, into a temporary
  file beside ``path``, flushed and renamed only once whole: a crash never
  leaves a half file that looks whole. A body that breaks off is fetched
  again from the start while the retry policy allows;
* a refusal carries a hint for this API: a file over the limit, the wrong
  purpose, a server with no Batch API at all, an id it does not know.

``AsyncFiles`` and ``AsyncBatches`` are the same on ``AsyncClient``, awaited.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from ..errors import APIConnectionError, APIStatusError, InvalidResponseError
from ..protocol.batches import (
    FILE_PURPOSES,
    MAX_FILE_BYTES,
    Batch,
    FileObject,
    build_batch_cancel_request,
    build_batch_create_request,
    build_batch_list_request,
    build_batch_retrieve_request,
    build_file_content_request,
    build_file_delete_request,
    build_file_list_request,
    build_file_retrieve_request,
    build_file_upload_request,
    check_batch_file,
    parse_batch,
    parse_file,
)
from ..protocol.http import HTTPRequest, HTTPResponse
from ..protocol.multipart import make_boundary
from ..protocol.response import ErrorContext, error_from_response
from .attempts import Call
from .uploads import FilePath, Upload, read_upload

__all__ = [
    "AsyncBatches",
    "AsyncFiles",
    "Batches",
    "Files",
    "batch_error",
    "batch_error_hint",
    "new_boundary",
]

#: A file's path, as ``open()`` takes it.
Path = FilePath
#: What ``files.create`` uploads: the bytes, a ``Path``, or a file opened with ``"rb"``.
FileInput = Upload

_COLLECTION = re.compile(r"/(files|batches)$")
_ONE = re.compile(r"/(files|batches)/[^/]+(/content|/cancel)?$")


def new_boundary() -> str:
    """A fresh multipart boundary: 16 random bytes, in hex."""
    return make_boundary(os.urandom(16))


def batch_error_hint(
    status: int, *, code: Optional[str], param: Optional[str], message: str, url: str
) -> str:
    """The Files and Batch APIs' own hints (``""``: the general hint stands)."""
    path = urlsplit(url).path
    if code == "file_too_large" or status == 413:
        return (
            f"a batch input file is at most {MAX_FILE_BYTES:,} bytes and 50,000 requests: "
            "split it (plan_batch does; rawchat batch --remote submits each part as its "
            "own batch)"
        )
    if param == "purpose":
        return "purpose is one of " + ", ".join(FILE_PURPOSES) + " (batch input: 'batch')"
    if code == "invalid_file" or "purpose" in message:
        return (
            "a batch reads a file uploaded with purpose='batch', one request a line, each "
            "with a unique custom_id and the batch's endpoint as its url: upload it again "
            "with client.files.create(path, purpose='batch')"
        )
    if status == 409 and path.endswith("/cancel"):
        return "the batch has already ended (completed, failed, expired or cancelled)"
    if status in (404, 405) and code != "model_not_found":
        collection = _COLLECTION.search(path)
        if collection is not None:
            if "/v1/" not in path and "/openai/" not in path:
                return ""  # the general hint says to add /v1 to the base URL
            return (
                f"{url} is not there: this server has no Files and Batch APIs (many "
                "OpenAI-compatible servers offer only /chat/completions); run the "
                "requests one by one instead (rawchat batch without --remote)"
            )
        one = _ONE.search(path)
        if one is not None and status == 404:
            what = "file" if one.group(1) == "files" else "batch"
            return (
                f"this server has no {what} with that id: it was deleted, or belongs to "
                "another project, organization or key"
            )
    return ""


def batch_error(response: HTTPResponse, context: Optional[ErrorContext] = None) -> APIStatusError:
    """The typed error for a failed Files or Batch API call, with its hint."""
    return error_from_response(response, context, hints=batch_error_hint)


class _Namespace:
    """What both APIs' namespaces share: the client, and a ``Call`` for a request.

    ``client`` is a ``Client`` or an ``AsyncClient``: its settings, its
    endpoint (transport and policies), its clock and its deadline.
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    def _call(self, request: HTTPRequest, *, resend: bool = True) -> Call:
        client = self._client
        retry = client.endpoint.policies.retry
        if not resend and retry is not None:
            retry = replace(retry, resend=False)
        return Call(
            client.endpoint, request, clock=client.clock,
            deadline=client.clock.deadline(client.deadline), retry=retry, errors=batch_error,
        )  # fmt: skip


class _FilesRequests(_Namespace):
    """The Files API's requests, for the blocking and the asyncio namespaces."""

    def _upload(
        self, file: FileInput, purpose: str, filename: Optional[str], boundary: Optional[str]
    ) -> HTTPRequest:
        data, name = _upload_data(file, purpose, filename)
        return build_file_upload_request(
            self._client.settings, data, filename=name, boundary=boundary or new_boundary(),
            purpose=purpose,
        )  # fmt: skip

    def _list(self, purpose: Optional[str], limit: Optional[int], after: Optional[str]) -> Any:
        settings = self._client.settings
        return lambda cursor: build_file_list_request(
            settings, purpose=purpose, limit=limit, after=cursor or after
        )


class Files(_FilesRequests):
    """``client.files``: upload, list, read, download and delete files."""

    def create(
        self, file: FileInput, *, purpose: str = "batch", filename: Optional[str] = None,
        boundary: Optional[str] = None,
    ) -> FileObject:  # fmt: skip
        """``POST /files``: upload ``file`` (bytes, a path, or a binary file object).

        ``filename`` names it on the server (default: the path's or the file
        object's name, else ``input.jsonl``); a batch input must end in
        ``.jsonl``. ``boundary`` fixes the multipart boundary (random by
        default). Not sent again after a failure the server may have seen.
        """
        request = self._upload(file, purpose, filename, boundary)
        return parse_file(self._call(request, resend=False).send().json())

    def list(
        self, *, purpose: Optional[str] = None, limit: Optional[int] = None,
        after: Optional[str] = None,
    ) -> List[FileObject]:  # fmt: skip
        """``GET /files``, every page (``limit`` is the page size), of one ``purpose`` or all."""
        return [parse_file(item) for item in _pages(self._list(purpose, limit, after), self._get)]

    def retrieve(self, file_id: str) -> FileObject:
        """``GET /files/{id}``: the file's size, name, purpose and status."""
        return parse_file(self._get(build_file_retrieve_request(self._client.settings, file_id)))

    def content(self, file_id: str, path: Path) -> int:
        """``GET /files/{id}/content`` into ``path``, as it arrives; returns the bytes written.

        ``path`` appears only once the whole body is on disk (flushed, then
        renamed into place); an earlier file there is replaced.
        """
        call = self._call(build_file_content_request(self._client.settings, file_id))
        source = call.open_stream()
        with _Download(path) as sink:
            while True:
                try:
                    for piece in source.iter_bytes():
                        sink.write(piece)
                    break
                except APIConnectionError as exc:  # broke off: from the start, if allowed
                    source.close()
                    sink.restart()
                    source = call.open_stream(exc)
            source.close()
        return sink.size

    def delete(self, file_id: str) -> Dict[str, Any]:
        """``DELETE /files/{id}``; the server's confirmation (``"deleted": true``)."""
        return _object(self._get(build_file_delete_request(self._client.settings, file_id)))

    def _get(self, request: HTTPRequest) -> Any:
        return self._call(request).send().json()


class Batches(_Namespace):
    """``client.batches``: create, poll, list and cancel batches."""

    def create(
        self, *, input_file_id: str, endpoint: str, completion_window: str = "24h",
        metadata: Optional[Mapping[str, str]] = None,
    ) -> Batch:  # fmt: skip
        """``POST /batches``: run the uploaded ``batch`` file against ``endpoint``
        (``/v1/chat/completions``, ``/v1/responses``...). Not sent again after
        a failure the server may have seen: find the batch with ``list()``
        (``metadata`` is the way to recognise it)."""
        request = build_batch_create_request(
            self._client.settings, input_file_id, endpoint=endpoint,
            completion_window=completion_window, metadata=metadata,
        )  # fmt: skip
        return parse_batch(self._call(request, resend=False).send().json())

    def retrieve(self, batch_id: str) -> Batch:
        """``GET /batches/{id}``: its status, counts and result files."""
        request = build_batch_retrieve_request(self._client.settings, batch_id)
        return parse_batch(self._call(request).send().json())

    def list(self, *, limit: Optional[int] = None, after: Optional[str] = None) -> List[Batch]:
        """``GET /batches``, newest first, every page (``limit`` is the page size)."""
        settings = self._client.settings

        def page(cursor: Optional[str]) -> HTTPRequest:
            return build_batch_list_request(settings, limit=limit, after=cursor or after)

        return [parse_batch(item) for item in _pages(page, self._get)]

    def cancel(self, batch_id: str) -> Batch:
        """``POST /batches/{id}/cancel``: ``cancelling``, then ``cancelled`` with
        the lines done so far in its output file."""
        request = build_batch_cancel_request(self._client.settings, batch_id)
        return parse_batch(self._call(request).send().json())

    def _get(self, request: HTTPRequest) -> Any:
        return self._call(request).send().json()


class AsyncFiles(_FilesRequests):
    """``Files`` on ``AsyncClient``: each method awaited."""

    async def create(
        self, file: FileInput, *, purpose: str = "batch", filename: Optional[str] = None,
        boundary: Optional[str] = None,
    ) -> FileObject:  # fmt: skip
        """``Files.create``, awaited (a path or file object is read before the first await)."""
        request = self._upload(file, purpose, filename, boundary)
        return parse_file((await self._call(request, resend=False).send_async()).json())

    async def list(
        self, *, purpose: Optional[str] = None, limit: Optional[int] = None,
        after: Optional[str] = None,
    ) -> List[FileObject]:  # fmt: skip
        """``Files.list``, awaited."""
        page, found, cursor = self._list(purpose, limit, after), [], None
        while True:
            data = await self._get(page(cursor))
            items, cursor = _page_of(data)
            found += [parse_file(item) for item in items]
            if cursor is None:
                return found

    async def retrieve(self, file_id: str) -> FileObject:
        """``Files.retrieve``, awaited."""
        request = build_file_retrieve_request(self._client.settings, file_id)
        return parse_file(await self._get(request))

    async def content(self, file_id: str, path: Path) -> int:
        """``Files.content``, awaited (the disk writes themselves block, piece by piece)."""
        call = self._call(build_file_content_request(self._client.settings, file_id))
        source = await call.open_stream_async()
        with _Download(path) as sink:
            while True:
                try:
                    async for piece in source.iter_bytes():
                        sink.write(piece)
                    break
                except APIConnectionError as exc:
                    await source.aclose()
                    sink.restart()
                    source = await call.open_stream_async(exc)
            await source.aclose()
        return sink.size

    async def delete(self, file_id: str) -> Dict[str, Any]:
        """``Files.delete``, awaited."""
        return _object(await self._get(build_file_delete_request(self._client.settings, file_id)))

    async def _get(self, request: HTTPRequest) -> Any:
        return (await self._call(request).send_async()).json()


class AsyncBatches(_Namespace):
    """``Batches`` on ``AsyncClient``: each method awaited."""

    async def create(
        self, *, input_file_id: str, endpoint: str, completion_window: str = "24h",
        metadata: Optional[Mapping[str, str]] = None,
    ) -> Batch:  # fmt: skip
        """``Batches.create``, awaited."""
        request = build_batch_create_request(
            self._client.settings, input_file_id, endpoint=endpoint,
            completion_window=completion_window, metadata=metadata,
        )  # fmt: skip
        return parse_batch((await self._call(request, resend=False).send_async()).json())

    async def retrieve(self, batch_id: str) -> Batch:
        """``Batches.retrieve``, awaited."""
        request = build_batch_retrieve_request(self._client.settings, batch_id)
        return parse_batch((await self._call(request).send_async()).json())

    async def list(
        self, *, limit: Optional[int] = None, after: Optional[str] = None
    ) -> List[Batch]:
        """``Batches.list``, awaited."""
        found: List[Batch] = []
        cursor: Optional[str] = None
        while True:
            request = build_batch_list_request(
                self._client.settings, limit=limit, after=cursor or after
            )
            items, cursor = _page_of((await self._call(request).send_async()).json())
            found += [parse_batch(item) for item in items]
            if cursor is None:
                return found

    async def cancel(self, batch_id: str) -> Batch:
        """``Batches.cancel``, awaited."""
        request = build_batch_cancel_request(self._client.settings, batch_id)
        return parse_batch((await self._call(request).send_async()).json())


# -- helpers -------------------------------------------------------------------------


def _upload_data(file: FileInput, purpose: str, filename: Optional[str]) -> Tuple[bytes, str]:
    """The bytes to upload and the name to give them, read once, checked first."""
    return read_upload(
        file, filename, default_name="input.jsonl", limit=MAX_FILE_BYTES,
        check=lambda size, name: check_batch_file(size, name, purpose),
    )  # fmt: skip


def _page_of(data: Any) -> Tuple[List[Any], Optional[str]]:
    """A list page's items, and the cursor of the next page (``None``: the last page)."""
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise InvalidResponseError("expected a list object with 'data'", body=data)
    more = data.get("has_more") is True and items and isinstance(items[-1], dict)
    return items, items[-1].get("id") if more else None


def _pages(page: Callable[[Optional[str]], HTTPRequest], get: Callable[[HTTPRequest], Any]) -> Any:
    """Every item of every page, following ``has_more`` from the last item's id."""
    cursor: Optional[str] = None
    while True:
        items, cursor = _page_of(get(page(cursor)))
        yield from items
        if cursor is None:
            return


def _object(data: Any) -> Dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidResponseError("expected a JSON object", body=data)
    return data


class _Download:
    """A file written beside ``path`` and renamed into place once whole.

    Until ``__exit__`` without an error, ``path`` is untouched; on an error
    the temporary file is removed. ``restart()`` empties it, for a body
    fetched again from the start.
    """

    def __init__(self, path: Path) -> None:
        self.path = os.fspath(path)
        self.size = 0
        folder, name = os.path.split(os.path.abspath(self.path))
        handle, self._temporary = tempfile.mkstemp(
            prefix=f".{name}.", suffix=".partial", dir=folder
        )
        self._file = os.fdopen(handle, "wb")

    def __enter__(self) -> _Download:
        return self

    def write(self, piece: bytes) -> None:
        self._file.write(piece)
        self.size += len(piece)

    def restart(self) -> None:
        self._file.seek(0)
        self._file.truncate()
        self.size = 0

    def __exit__(self, kind: Any, *exc_info: Any) -> None:
        try:
            if kind is None:
                self._file.flush()
                os.fsync(self._file.fileno())
            self._file.close()
            if kind is None:
                os.replace(self._temporary, self.path)
        finally:
            if os.path.exists(self._temporary):
                os.remove(self._temporary)
