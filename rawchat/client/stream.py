"""Streamed answers, driven over the network: chat completions and Responses.

``Stream`` (``Client.stream()``) and ``ResponseStream``
(``Client.respond_stream()``) are the handles a caller reads. Both pull
bytes from the transport and push them through their protocol's decoder,
yield what each read completes as soon as its bytes arrive, and release the
connection when the body ends, on ``break``, on error and on ``close()``.
If the connection fails before any content reached the caller, the handle
asks its opener for a fresh response (the client's attempt loop retries,
then its fallbacks answer); after that it never does, since the caller has
already shown part of an answer. That much is the same for both APIs and
lives in ``EventStreamCore``; what differs is the decoder, in one class per
protocol (``ChatEvents``, ``ResponseEvents``):

* chat: ``protocol/chat_stream.py``
  (https://platform.openai.com/docs/api-reference/chat-streaming), chunks
  until ``data: [DONE]``;
* Responses: ``protocol/response_events.py``
  (https://platform.openai.com/docs/api-reference/responses-streaming),
  named events until ``response.completed`` or ``response.incomplete``.

``EventStreamCore`` holds the rules as steps that do no I/O: what a new
source is, what a read decodes to, whether a break may be retried, what a
read timeout means, what the finished answer is. ``EventStream`` drives
them from a blocking transport; ``rawchat.client.aio`` drives the very same
steps with ``async for`` over an asyncio transport.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Callable, Generic, Iterable, Iterator, List, Optional, TypeVar
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
from ..protocol.response_events import TERMINAL, ResponseEvent, ResponseStreamDecoder
from ..protocol.responses import Response

__all__ = [
    "ChatEvents",
    "EventStream",
    "EventStreamCore",
    "ResponseEvents",
    "ResponseStream",
    "Stream",
]


# What the client passes in to (re)open the response: given the error that
# ended the previous response (None the first time), it returns a fresh
# source and the retries its call took, after the retry policy's wait, or
# raises.
Opener = Callable[[Optional[APIError]], Any]

#: What the stream yields (a chunk, an event) and what it adds up to.
Item = TypeVar("Item")
Answer = TypeVar("Answer")


class EventStreamCore(Generic[Item, Answer]):
    """What a streamed answer does whatever its protocol and its I/O: the
    rules of opening, retrying before content, the deadline, stalls and the
    finished answer, as steps a driver calls.

    A protocol class says how it decodes (``_decoder_class``), what a whole
    JSON answer is (``_whole``), which items are content (``_is_content``),
    when the answer is final (``_ended``) and what it is so far
    (``_partial``). A driver (``EventStream``, ``AsyncEventStream``) reads.
    """

    def __init__(
        self,
        opener: Opener,
        *,
        clock: Callable[[], float],
        deadline: Optional[float] = None,
        on_complete: Optional[Callable[[Answer], Any]] = None,
    ) -> None:
        self._opener = opener
        self._clock = clock
        self._deadline = deadline  # absolute, on the clock above
        self._on_complete = on_complete
        self._source: Any = None
        self._decoder: Any = self._decoder_class()
        self._whole_json = False
        self._iterator: Any = None
        self._answer: Optional[Answer] = None
        self._content_delivered = False
        self._closed = False
        self.retries_taken = 0
        self.started = clock()
        #: Seconds from the request to the first content delta, once known.
        self.time_to_first_delta: Optional[float] = None

    # -- what each protocol says ------------------------------------------

    _decoder_class: Callable[[], Any]

    def _whole(self, data: Any) -> Iterable[Item]:
        """The items of a whole JSON answer (a server that ignored ``stream``)."""
        raise NotImplementedError

    def _is_content(self, item: Item) -> bool:
        """Whether ``item`` shows the caller part of the answer."""
        raise NotImplementedError

    def _ended(self) -> bool:
        """Whether the answer is final, so reading may stop."""
        raise NotImplementedError

    def _partial(self) -> Answer:
        """The answer so far."""
        raise NotImplementedError

    def _characters(self) -> int:
        """Characters of the answer's text so far, for the stall message."""
        raise NotImplementedError

    # -- the steps a driver calls -------------------------------------------

    def _opened(self, source: Any, retries: int) -> bool:
        """A fresh ``source`` to read from scratch; whether its body is an
        HTML page (the driver reads it for ``_not_a_stream``)."""
        self._source, self.retries_taken = source, retries
        self._decoder = self._decoder_class()
        media = self._media()
        self._whole_json = media == "application/json"
        return media == "text/html"

    def _media(self) -> str:
        return self._source.headers.get("content-type", "").split(";")[0].strip().lower()

    def _not_a_stream(self, body: bytes) -> InvalidResponseError:
        return InvalidResponseError(
            f"expected an event stream, got {describe_body(body, self._media())}",
            status_code=self._source.status_code,
            body=body.decode("utf-8", "replace"),
            hint="something other than the API answered (a proxy or a web "
            f"server); check the base URL, which led to {self._source.url}",
        )

    def _whole_items(self, body: bytes) -> List[Item]:
        """A whole JSON answer's items, as delivered."""
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise InvalidResponseError(
                "the server answered the stream request with malformed JSON",
                status_code=self._source.status_code,
            ) from exc
        return [self._delivered(item) for item in self._whole(data)]

    def _decoded(self, data: bytes) -> Iterator[Item]:
        """What one read of the body completes, each item as soon as it is decoded."""
        if self._deadline is not None and self._clock() > self._deadline:
            raise _DeadlinePassed("the stream passed the call's deadline")
        for item in self._decoder.iter_feed(data):
            # Once content has been handed over there is nothing left to note.
            yield item if self._content_delivered else self._delivered(item)

    def _may_retry(self, exc: APIError) -> bool:
        """Whether a stream broken by ``exc`` may be opened again; if not,
        ``exc`` gets the answer so far as its ``.partial``."""
        # Before any content reached the caller, a cut stream is as good
        # as a failed connection: safe to try again.
        if self._content_delivered or isinstance(exc, _DeadlinePassed):
            exc.partial = self._partial()  # type: ignore[attr-defined]
            return False
        return True

    def _timed_out(self, exc: APITimeoutError, asked: float) -> APITimeoutError:
        """A read timeout, reported as a stall once events have arrived."""
        if not self._decoder.events:
            return exc  # nothing arrived: the transport's words fit
        stalled = self._stalled(self._clock() - asked)
        stalled.__cause__ = exc
        return stalled

    def _stalled(self, seconds: float) -> APITimeoutError:
        host = urlsplit(self._source.url).netloc.rpartition("@")[2]  # no credentials
        return APITimeoutError(
            f"the stream from {host} stalled: nothing for {round(seconds, 1):g} s after "
            f"{self._decoder.events} events ({self._characters()} characters "
            "of the answer)",
            hint="the server stopped mid-answer (the read timeout ran out): it may be "
            "overloaded, or a proxy between you and it buffers the stream; the text "
            "so far is on the error's .partial",
        )

    def _delivered(self, item: Item) -> Item:
        if not self._content_delivered and self._is_content(item):
            self._content_delivered = True
            self.time_to_first_delta = self._clock() - self.started
        return item

    def _complete(self, answer: Answer) -> None:
        """The body ended in ``answer`` (the decoder's): with what the response
        says, it is final."""
        self._answer = replace(
            answer,
            request_id=request_id_of(self._source.headers),
            headers=self._source.headers,
            retries_taken=self.retries_taken,
            elapsed=self._clock() - self.started,
        )
        if self._on_complete is not None:
            # The callback may hand back an amended answer (e.g. marked degraded).
            amended = self._on_complete(self._answer)  # type: ignore[arg-type]
            if isinstance(amended, type(self._answer)):
                self._answer = amended

    def _unfinished(self) -> IncompleteStreamError:
        return IncompleteStreamError(
            "the stream was closed before it finished", partial=self._partial()
        )


class EventStream(EventStreamCore[Item, Answer]):
    """A streamed answer read from a blocking transport (``transport.py``)."""

    def __enter__(self) -> Any:
        self._ensure_open()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __iter__(self) -> Iterator[Item]:
        if self._iterator is None:
            self._iterator = self._items()
        return self._iterator  # type: ignore[no-any-return]

    def _final(self) -> Answer:
        """The assembled answer; reads the rest of the stream if needed."""
        if self._answer is None:
            if self._closed:
                raise self._unfinished()
            for _ in self:
                pass
        assert self._answer is not None
        return self._answer

    def close(self) -> None:
        """Stop reading and release the connection. Safe to call twice."""
        self._closed = True
        if self._iterator is not None:
            self._iterator.close()
        if self._source is not None:
            self._source.close()

    def _ensure_open(self, failure: Optional[APIError] = None) -> None:
        if self._source is not None and failure is None:
            return
        if self._opened(*self._opener(failure)):
            raise self._not_a_stream(self._source.read())

    def _items(self) -> Iterator[Item]:
        self._ensure_open()
        try:
            while True:
                try:
                    yield from self._read_source()
                    answer = self._decoder.close()
                    break
                except (APIConnectionError, IncompleteStreamError) as exc:
                    if not self._may_retry(exc):
                        raise
                    self._source.close()
                    self._ensure_open(failure=exc)  # retries, or raises exc
        finally:
            self._source.close()
        self._complete(answer)

    def _read_source(self) -> Iterator[Item]:
        if self._whole_json:
            yield from self._whole_items(self._source.read())
            return
        for data in self._reads():
            yield from self._decoded(data)
            if self._ended():
                # The answer is final: stop reading, and hand the connection
                # back if the body ends at once. Servers that hold it open
                # would otherwise turn a whole answer into a read timeout.
                self._source.finish()
                return

    def _reads(self) -> Iterator[bytes]:
        """The body's bytes; a read timeout after events is reported as a stall."""
        asked = self._clock()
        try:
            for data in self._source.iter_bytes():
                yield data
                asked = self._clock()  # the caller wants more: the wait starts now
        except APITimeoutError as exc:
            raise self._timed_out(exc, asked)  # noqa: B904 (chained when it is a new error)


class ChatEvents(EventStreamCore[Chunk, Completion]):
    """How a chat completion streams (``protocol/chat_stream.py``): chunks until ``[DONE]``."""

    _decoder_class = ChatStreamDecoder

    def _whole(self, data: Any) -> Iterable[Chunk]:
        return [self._decoder.feed_completion(data)]

    def _is_content(self, chunk: Chunk) -> bool:
        return any(
            choice.content or choice.tool_calls or choice.reasoning or choice.refusal
            for choice in chunk.choices
        )

    def _ended(self) -> bool:
        return bool(self._decoder.done)

    def _partial(self) -> Completion:
        return self._decoder.accumulator.completion()  # type: ignore[no-any-return]

    def _characters(self) -> int:
        return len(self._partial().content or "")


class Stream(ChatEvents, EventStream[Chunk, Completion]):
    """A streamed chat completion: iterate it for ``Chunk`` values, or ``text()``.

    Use it as a context manager so the connection is released even when
    you stop reading early::

        with client.stream(messages, model="gpt-4o-mini") as stream:
            for text in stream.text():
                print(text, end="", flush=True)
        stream.completion  # the assembled Completion, usage included
    """

    def __enter__(self) -> Stream:
        return super().__enter__()  # type: ignore[no-any-return]

    def text(self) -> Iterator[str]:
        """The first choice's text deltas, each as soon as its bytes arrive."""
        for chunk in self:
            text = chunk.content  # the first choice's
            if text:
                yield text

    @property
    def completion(self) -> Completion:
        """The assembled answer; reads the rest of the stream if needed."""
        return self._final()


class ResponseEvents(EventStreamCore[ResponseEvent, Response]):
    """How a Responses answer streams (``protocol/response_events.py``):
    named events until ``response.completed`` or ``response.incomplete``."""

    _decoder_class = ResponseStreamDecoder

    @property
    def gaps(self) -> tuple:
        """The ``sequence_number`` values missed so far."""
        return self._decoder.gaps  # type: ignore[no-any-return]

    def _whole(self, data: Any) -> Iterable[ResponseEvent]:
        # Shown as the events a stream would have ended with, so text()
        # still yields the answer's text.
        response = self._decoder.feed_response(data)
        events = []
        if response.output_text:
            delta = {"type": "response.output_text.delta", "delta": response.output_text}
            events.append(ResponseEvent(delta["type"], None, delta))
        terminal = TERMINAL[1] if response.status == "incomplete" else TERMINAL[0]
        events.append(ResponseEvent(terminal, None, {"type": terminal, "response": data}))
        return events

    def _is_content(self, event: ResponseEvent) -> bool:
        # Deltas of text, arguments, reasoning, refusals; or a whole item.
        return event.type.endswith(".delta") or event.type == "response.output_item.done"

    def _ended(self) -> bool:
        return bool(self._decoder.finished)

    def _partial(self) -> Response:
        return self._decoder.response()  # type: ignore[no-any-return]

    def _characters(self) -> int:
        return len(self._partial().output_text)


class ResponseStream(ResponseEvents, EventStream[ResponseEvent, Response]):
    """A streamed Responses answer: iterate it (or ``events()``) for every
    named ``ResponseEvent``, or ``text()`` for the answer's text::

        with client.respond_stream("hi", model="gpt-4o-mini") as stream:
            for text in stream.text():
                print(text, end="", flush=True)
        stream.response  # the assembled Response, usage included

    A body that ends before ``response.completed`` or
    ``response.incomplete`` raises ``IncompleteStreamError`` (``.partial``
    is the ``Response`` so far); ``response.failed`` and an ``error`` event
    raise ``StreamError``. ``gaps`` lists the ``sequence_number`` values
    that never arrived.
    """

    def __enter__(self) -> ResponseStream:
        return super().__enter__()  # type: ignore[no-any-return]

    def events(self) -> Iterator[ResponseEvent]:
        """Every event, decoded, as soon as its bytes arrive."""
        return iter(self)

    def text(self) -> Iterator[str]:
        """The ``output_text`` deltas, each as soon as its bytes arrive."""
        for event in self:
            if event.text:
                yield event.text

    @property
    def response(self) -> Response:
        """The assembled ``Response``; reads the rest of the stream if needed."""
        return self._final()


class _DeadlinePassed(APITimeoutError):
    """The total deadline ran out between two reads of a stream."""
