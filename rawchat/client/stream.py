"""A streamed chat completion, driven over the network.

``Stream`` is the handle ``Client.stream()`` returns. It pulls bytes from
the transport and pushes them through the decoder, yields each text delta
as soon as its bytes arrive, and releases the connection when the body
ends, on ``break``, on error and on ``close()``. If the connection fails
before any content reached the caller, it asks its opener for a fresh
response (the client's attempt loop retries, then its fallbacks answer);
after that it never does, since the caller has already shown part of an
answer. The decoding itself is ``protocol/chat_stream.py``
(https://platform.openai.com/docs/api-reference/chat-streaming).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Callable, Iterator, Optional
from urllib.parse import urlsplit

from ..errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    IncompleteStreamError,
    InvalidResponseError,
)
from ..protocol.chat_stream import ChatStreamDecoder
from ..protocol.chunks import Chunk
from ..protocol.completion import Completion
from ..protocol.http import describe_body, request_id_of

__all__ = ["Stream"]


# What the client passes in to (re)open the response: given the error that
# ended the previous response (None the first time), it returns a fresh
# source and the retries its call took, after the retry policy's wait, or
# raises.
Opener = Callable[[Optional[APIError]], Any]


class Stream:
    """A streamed answer: iterate it for ``Chunk`` values, or ``text()``.

    Use it as a context manager so the connection is released even when
    you stop reading early::

        with client.stream(messages, model="gpt-4o-mini") as stream:
            for text in stream.text():
                print(text, end="", flush=True)
        stream.completion  # the assembled Completion, usage included
    """

    def __init__(
        self,
        opener: Opener,
        *,
        clock: Callable[[], float],
        deadline: Optional[float] = None,
        on_complete: Optional[Callable[[Completion], Any]] = None,
    ) -> None:
        self._opener = opener
        self._clock = clock
        self._deadline = deadline  # absolute, on the clock above
        self._on_complete = on_complete
        self._source: Any = None
        self._decoder = ChatStreamDecoder()
        self._iterator: Optional[Iterator[Chunk]] = None
        self._completion: Optional[Completion] = None
        self._content_delivered = False
        self._closed = False
        self.retries_taken = 0
        self.started = clock()
        #: Seconds from the request to the first content delta, once known.
        self.time_to_first_delta: Optional[float] = None

    # -- the context manager and iteration ------------------------------

    def __enter__(self) -> Stream:
        self._ensure_open()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __iter__(self) -> Iterator[Chunk]:
        if self._iterator is None:
            self._iterator = self._chunks()
        return self._iterator

    def text(self) -> Iterator[str]:
        """The first choice's text deltas, each as soon as its bytes arrive."""
        for chunk in self:
            for choice in chunk.choices:
                if choice.index == 0 and choice.content:
                    yield choice.content

    @property
    def completion(self) -> Completion:
        """The assembled answer; reads the rest of the stream if needed."""
        if self._completion is None:
            if self._closed:
                raise IncompleteStreamError(
                    "the stream was closed before it finished",
                    partial=self._decoder.accumulator.completion(),
                )
            for _ in self:
                pass
        assert self._completion is not None
        return self._completion

    def close(self) -> None:
        """Stop reading and release the connection. Safe to call twice."""
        self._closed = True
        if self._iterator is not None:
            self._iterator.close()  # type: ignore[attr-defined]
        if self._source is not None:
            self._source.close()

    # -- internals --------------------------------------------------------

    def _ensure_open(self, failure: Optional[APIError] = None) -> None:
        if self._source is not None and failure is None:
            return
        self._source, self.retries_taken = self._opener(failure)
        self._decoder = ChatStreamDecoder()
        media = self._source.headers.get("content-type", "").split(";")[0].strip().lower()
        if media == "text/html":
            body = self._source.read()
            raise InvalidResponseError(
                f"expected an event stream, got {describe_body(body, media)}",
                status_code=self._source.status_code,
                body=body.decode("utf-8", "replace"),
                hint="something other than the API answered (a proxy or a web "
                f"server); check the base URL, which led to {self._source.url}",
            )
        self._whole_json = media == "application/json"

    def _chunks(self) -> Iterator[Chunk]:
        self._ensure_open()
        try:
            while True:
                try:
                    yield from self._read_source()
                    completion = self._decoder.close()
                    break
                except (APIConnectionError, IncompleteStreamError) as exc:
                    # Before any content reached the caller, a cut stream is
                    # as good as a failed connection: safe to try again.
                    if self._content_delivered or isinstance(exc, _DeadlinePassed):
                        exc.partial = self._decoder.accumulator.completion()  # type: ignore[attr-defined]
                        raise
                    self._source.close()
                    self._ensure_open(failure=exc)  # retries, or raises exc
        finally:
            self._source.close()
        self._completion = replace(
            completion,
            request_id=request_id_of(self._source.headers),
            headers=self._source.headers,
            retries_taken=self.retries_taken,
            elapsed=self._clock() - self.started,
        )
        if self._on_complete is not None:
            # The callback may hand back an amended completion (e.g. marked degraded).
            amended = self._on_complete(self._completion)
            if isinstance(amended, Completion):
                self._completion = amended

    def _read_source(self) -> Iterator[Chunk]:
        decoder = self._decoder
        if self._whole_json:
            try:
                data = json.loads(self._source.read())
            except (ValueError, RecursionError) as exc:
                raise InvalidResponseError(
                    "the server answered the stream request with malformed JSON",
                    status_code=self._source.status_code,
                ) from exc
            yield self._delivered(decoder.feed_completion(data))
            return
        deadline, clock = self._deadline, self._clock
        for data in self._reads():
            if deadline is not None and clock() > deadline:
                raise _DeadlinePassed("the stream passed the call's deadline")
            for chunk in decoder.iter_feed(data):
                # Once content has been handed over there is nothing left to note.
                yield chunk if self._content_delivered else self._delivered(chunk)
            if decoder.done:
                # [DONE]: the answer is final. Servers that hold the connection
                # open after it would otherwise turn it into a read timeout.
                return

    def _reads(self) -> Iterator[bytes]:
        """The body's bytes; a read timeout after events is reported as a stall."""
        asked = self._clock()
        try:
            for data in self._source.iter_bytes():
                yield data
                asked = self._clock()  # the caller wants more: the wait starts now
        except APITimeoutError as exc:
            if not self._decoder.events:
                raise  # nothing arrived: the transport's words fit
            raise self._stalled(self._clock() - asked) from exc

    def _stalled(self, seconds: float) -> APITimeoutError:
        characters = len(self._decoder.accumulator.completion().content or "")
        host = urlsplit(self._source.url).netloc.rpartition("@")[2]  # no credentials
        return APITimeoutError(
            f"the stream from {host} stalled: nothing for {round(seconds, 1):g} s after "
            f"{self._decoder.events} events ({characters} characters "
            "of the answer)",
            hint="the server stopped mid-answer (the read timeout ran out): it may be "
            "overloaded, or a proxy between you and it buffers the stream; the text "
            "so far is on the error's .partial",
        )

    def _delivered(self, chunk: Chunk) -> Chunk:
        if not self._content_delivered:
            for choice in chunk.choices:
                if choice.content or choice.tool_calls or choice.reasoning or choice.refusal:
                    self._content_delivered = True
                    self.time_to_first_delta = self._clock() - self.started
        return chunk


class _DeadlinePassed(APITimeoutError):
    """The total deadline ran out between two reads of a stream."""
