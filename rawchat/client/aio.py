"""``AsyncClient``: the client on asyncio, one event loop and no thread per call.

The protocol work is the pure core every client shares, as h11 is shared by
the I/O libraries built on it; only the waiting differs. ``AsyncClient``
drives the same steps as ``Client`` (``client.py``: the route of
fallbacks and the cache, request building, usage accounting; ``attempts.py``:
keys, pacing, breaker, retry budget, retries; ``stream.py``: the stream
rules) over ``AsyncTransport`` (``aio_transport.py``, HTTP/1.1 by
``protocol/http11.py``), awaiting where ``Client`` blocks: the transport's
reads, and ``Clock.asleep`` for retry and pacing waits::

    async with rawchat.AsyncClient() as client:
        done = await client.chat(messages, model="gpt-4o-mini")
        async with client.stream(messages, model="gpt-4o-mini") as stream:
            async for text in stream.text():
                print(text, end="", flush=True)
        stream.completion

Where ``Client`` takes a ``requests.Session``, ``AsyncClient`` takes
``verify=`` (a CA bundle path, or ``False``), ``proxy=`` (else the
environment's) and ``pool_maxsize=`` (connections per host; further calls
queue for one). A cancelled task closes its connection. Traces and hooks are
called from the event loop, as they come: keep them quick.
"""

from __future__ import annotations

from typing import (
    Any,
    AsyncIterator,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    TypeVar,
    Union,
)

from ..errors import APIConnectionError, APIError, APITimeoutError, IncompleteStreamError
from ..policies import Policies
from ..policies.fallback import Target
from ..protocol.audio import (
    MAX_UPLOAD_BYTES,
    TranscriptDelta,
    Transcription,
    transcription_from_http,
)
from ..protocol.chunks import Chunk
from ..protocol.completion import Completion
from ..protocol.http import HTTPResponse
from ..protocol.response_events import ResponseEvent
from ..protocol.responses import Response, response_from_http
from ..protocol.retry import RetryPolicy
from ..protocol.settings import DEFAULT_TIMEOUT, TimeoutLike
from .aio_transport import AsyncTransport
from .attempts import Endpoint
from .audio import AudioFile, AudioOpening, FilePath, Speech, SpeechEvents, TranscriptEvents
from .batches import AsyncBatches, AsyncFiles
from .client import BaseClient, _deleted, _models_of, _WholeCall
from .clock import Clock
from .stream import ChatEvents, EventStreamCore, ResponseEvents
from .trace import Trace

__all__ = [
    "AsyncClient",
    "AsyncEventStream",
    "AsyncResponseStream",
    "AsyncSpeechStream",
    "AsyncStream",
    "AsyncTranscriptStream",
]

Item = TypeVar("Item")
Answer = TypeVar("Answer")


class AsyncClient(BaseClient):
    """``Client``'s methods, awaited, on an asyncio event loop.

    Takes ``Client``'s arguments, but for ``session``: ``verify`` (a CA
    bundle path, or ``False``; by default what ``requests`` would trust),
    ``proxy`` (a URL, or ``False`` for none; by default ``HTTPS_PROXY`` and
    the rest of the environment) and ``pool_maxsize`` (connections per
    host). The policies are the same values; waits go through
    ``clock.asleep`` (``Clock(asleep=...)`` in tests).
    """

    transport: AsyncTransport

    def __init__(
        self,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        *,
        profile: Optional[str] = None,
        model: Optional[str] = None,
        organization: Optional[str] = None,
        project: Optional[str] = None,
        api_version: Optional[str] = None,
        default_headers: Optional[Mapping[str, str]] = None,
        timeout: TimeoutLike = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        deadline: Optional[float] = None,
        pool_maxsize: int = 10,
        verify: Union[bool, str, None] = None,
        proxy: Union[str, bool, None] = None,
        trace: Optional[Trace] = None,
        policies: Optional[Policies] = None,
        clock: Optional[Clock] = None,
        **removed: Any,
    ) -> None:
        super().__init__(
            api_key, base_url, profile=profile, model=model, organization=organization,
            project=project, api_version=api_version, default_headers=default_headers,
            timeout=timeout, max_retries=max_retries, deadline=deadline, policies=policies,
            clock=clock, removed=removed,
            # Deadlines are times on the client's clock: the transport keeps the same one.
            transport=lambda clock: AsyncTransport(
                pool_maxsize=pool_maxsize, verify=verify, proxy=proxy,
                clock=clock.monotonic, trace=trace,
            ),
        )  # fmt: skip
        #: The Files and Batch APIs (``batches.py``), awaited.
        self.files = AsyncFiles(self)
        self.batches = AsyncBatches(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections; those in use close when their response ends."""
        await self.transport.aclose()

    # -- the API, as Client's ------------------------------------------------

    async def chat(
        self,
        messages: Sequence[Any],
        *,
        model: Optional[str] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        retry: Optional[RetryPolicy] = None,
        **params: Any,
    ) -> Completion:
        """``Client.chat()``, awaited: the whole answer as a ``Completion``."""
        return await self._whole(self._chat(messages, model, extra_headers, retry, params))  # type: ignore[no-any-return]

    def stream(
        self,
        messages: Sequence[Any],
        *,
        model: Optional[str] = None,
        include_usage: bool = True,
        extra_headers: Optional[Mapping[str, str]] = None,
        on_complete: Optional[Callable[[Completion], None]] = None,
        retry: Optional[RetryPolicy] = None,
        **params: Any,
    ) -> AsyncStream:
        """``Client.stream()`` for ``async with`` and ``async for``; the
        request goes out when the block is entered."""
        opening = self._chat_stream(
            messages, model, include_usage, extra_headers, on_complete, retry, params
        )
        return opening.handle(AsyncStream, opening.open_async)

    async def respond(
        self,
        input: Union[str, Sequence[Any]],
        *,
        model: Optional[str] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        retry: Optional[RetryPolicy] = None,
        **params: Any,
    ) -> Response:
        """``Client.respond()``, awaited: ``POST /responses``, the whole ``Response``."""
        return await self._whole(self._respond(input, model, extra_headers, retry, params))  # type: ignore[no-any-return]

    def respond_stream(
        self,
        input: Union[str, Sequence[Any]],
        *,
        model: Optional[str] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        on_complete: Optional[Callable[[Response], None]] = None,
        retry: Optional[RetryPolicy] = None,
        **params: Any,
    ) -> AsyncResponseStream:
        """``Client.respond_stream()`` for ``async with`` and ``async for``."""
        opening = self._respond_stream(input, model, extra_headers, on_complete, retry, params)
        return opening.handle(AsyncResponseStream, opening.open_async)

    async def retrieve_response(self, response_id: str) -> Response:
        """``GET /responses/{id}``: a stored response."""
        return response_from_http(await self._stored("GET", response_id).send_async())

    async def delete_response(self, response_id: str) -> Dict[str, Any]:
        """``DELETE /responses/{id}``: forget a stored response."""
        return _deleted(await self._stored("DELETE", response_id).send_async())

    async def transcribe(
        self,
        file: AudioFile,
        *,
        model: Optional[str] = None,
        filename: Optional[str] = None,
        max_bytes: int = MAX_UPLOAD_BYTES,
        boundary: Optional[str] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        retry: Optional[RetryPolicy] = None,
        **params: Any,
    ) -> Transcription:
        """``Client.transcribe()``, awaited: ``POST /audio/transcriptions``.

        The file is read on the event loop's thread (once, up front).
        """
        call = self._transcription(
            file, model, retry, filename=filename, max_bytes=max_bytes, boundary=boundary,
            extra_headers=extra_headers, **params,
        )  # fmt: skip
        return transcription_from_http(await call.send_async(), params.get("response_format"))

    async def translate(
        self,
        file: AudioFile,
        *,
        model: Optional[str] = None,
        filename: Optional[str] = None,
        max_bytes: int = MAX_UPLOAD_BYTES,
        boundary: Optional[str] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        retry: Optional[RetryPolicy] = None,
        **params: Any,
    ) -> Transcription:
        """``Client.translate()``, awaited: ``POST /audio/translations``."""
        call = self._transcription(
            file, model, retry, filename=filename, max_bytes=max_bytes, boundary=boundary,
            extra_headers=extra_headers, translate=True, **params,
        )  # fmt: skip
        return transcription_from_http(await call.send_async(), params.get("response_format"))

    def transcribe_stream(
        self,
        file: AudioFile,
        *,
        model: Optional[str] = None,
        filename: Optional[str] = None,
        max_bytes: int = MAX_UPLOAD_BYTES,
        boundary: Optional[str] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        retry: Optional[RetryPolicy] = None,
        **params: Any,
    ) -> AsyncTranscriptStream:
        """``Client.transcribe_stream()`` for ``async with`` and ``async for``."""
        call = self._transcription(
            file, model, retry, filename=filename, max_bytes=max_bytes, boundary=boundary,
            extra_headers=extra_headers, stream=True, **params,
        )  # fmt: skip
        opening = AudioOpening(call)
        return opening.handle(AsyncTranscriptStream, opening.open_async)  # type: ignore[no-any-return]

    def speak(
        self,
        text: str,
        *,
        model: Optional[str] = None,
        voice: Any = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        retry: Optional[RetryPolicy] = None,
        **params: Any,
    ) -> AsyncSpeechStream:
        """``Client.speak()`` for ``async with``: ``async for`` over ``iter_bytes()``,
        or ``await save(path)``."""
        opening = self._speech(text, model, voice, extra_headers, retry, params)
        return opening.handle(  # type: ignore[no-any-return]
            AsyncSpeechStream, opening.open_async, response_format=params.get("response_format")
        )

    async def models(self) -> List[Dict[str, Any]]:
        """``GET /models``: the model objects the server lists."""
        return _models_of(await self.request("GET", "/models"))

    async def request(self, method: str, path: str, json: Any = None) -> HTTPResponse:
        """Any other endpoint, with the same auth, retries and errors (``Client.request()``)."""
        return await self._any(method, path, json).send_async()

    async def _whole(self, whole: _WholeCall) -> Any:
        """Each target of the route in turn, until one answers whole."""

        async def ask(target: Target[Endpoint]) -> Any:
            call, estimate = whole.call(target)
            return whole.answer(call, estimate, await call.send_async())

        return whole.route.answered(await whole.route.run_async(ask, whole.from_cache))


class AsyncEventStream(EventStreamCore[Item, Answer]):
    """A streamed answer read on the event loop: ``EventStream``'s rules
    (``stream.py``), driven by ``async for`` over the transport's body."""

    async def __aenter__(self) -> Any:
        await self._ensure_open()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[Item]:
        if self._iterator is None:
            self._iterator = self._items()
        return self._iterator  # type: ignore[no-any-return]

    def _final(self) -> Answer:
        """The assembled answer, once the stream has been read to its end."""
        if self._answer is None:
            if self._closed:
                raise self._unfinished()
            raise IncompleteStreamError(
                "the stream has not been read to its end yet: read it with `async for` first",
                partial=self._partial(),
            )
        return self._answer

    async def aclose(self) -> None:
        """Stop reading and release the connection. Safe to call twice."""
        self._closed = True
        if self._iterator is not None:
            await self._iterator.aclose()
        if self._source is not None:
            await self._source.aclose()

    async def _ensure_open(self, failure: Optional[APIError] = None) -> None:
        if self._source is not None and failure is None:
            return
        if self._opened(*await self._opener(failure)):
            raise self._not_a_stream(await self._source.read())

    async def _items(self) -> AsyncIterator[Item]:
        await self._ensure_open()
        try:
            while True:
                items = self._read_source()
                try:
                    async for item in items:
                        yield item
                    answer = self._decoder.close()
                    break
                except (APIConnectionError, IncompleteStreamError) as exc:
                    if not self._may_retry(exc):
                        raise
                    await self._source.aclose()
                    await self._ensure_open(failure=exc)  # retries, or raises exc
                finally:
                    # Closed now, not whenever the collector finds it: its
                    # reads end with the connection.
                    await items.aclose()  # type: ignore[attr-defined]
        finally:
            await self._source.aclose()
        self._complete(answer)

    async def _read_source(self) -> AsyncIterator[Item]:
        if self._whole_json:
            for item in self._whole_items(await self._source.read()):
                yield item
            return
        reads = self._reads()
        try:
            async for data in reads:
                for item in self._decoded(data):
                    yield item
                if self._ended():
                    # As EventStream: the answer is final; the connection goes
                    # back to the pool if the body ends at once, else closes.
                    await self._source.finish()
                    return
        finally:
            await reads.aclose()  # type: ignore[attr-defined]

    async def _reads(self) -> AsyncIterator[bytes]:
        """The body's bytes; a read timeout after events is reported as a stall."""
        body = self._source.iter_bytes()
        asked = self._clock()
        try:
            async for data in body:
                yield data
                asked = self._clock()  # the caller wants more: the wait starts now
        except APITimeoutError as exc:
            raise self._timed_out(exc, asked)  # noqa: B904 (chained when it is a new error)
        finally:
            await body.aclose()  # type: ignore[attr-defined]


class AsyncStream(ChatEvents, AsyncEventStream[Chunk, Completion]):
    """A streamed chat completion on the event loop: ``async for`` it for
    ``Chunk`` values, or ``text()``::

        async with client.stream(messages, model="gpt-4o-mini") as stream:
            async for text in stream.text():
                print(text, end="", flush=True)
        stream.completion  # the assembled Completion, once read to the end
    """

    async def __aenter__(self) -> AsyncStream:
        return await super().__aenter__()  # type: ignore[no-any-return]

    async def text(self) -> AsyncIterator[str]:
        """The first choice's text deltas, each as soon as its bytes arrive."""
        async for chunk in self:
            text = chunk.content  # the first choice's
            if text:
                yield text

    @property
    def completion(self) -> Completion:
        """The assembled answer (read the stream to its end first)."""
        return self._final()


class AsyncResponseStream(ResponseEvents, AsyncEventStream[ResponseEvent, Response]):
    """A streamed Responses answer on the event loop: ``async for`` it (or
    ``events()``) for every ``ResponseEvent``, or ``text()`` for the text."""

    async def __aenter__(self) -> AsyncResponseStream:
        return await super().__aenter__()  # type: ignore[no-any-return]

    def events(self) -> AsyncIterator[ResponseEvent]:
        """Every event, decoded, as soon as its bytes arrive."""
        return self.__aiter__()

    async def text(self) -> AsyncIterator[str]:
        """The ``output_text`` deltas, each as soon as its bytes arrive."""
        async for event in self:
            if event.text:
                yield event.text

    @property
    def response(self) -> Response:
        """The assembled ``Response`` (read the stream to its end first)."""
        return self._final()


class AsyncTranscriptStream(TranscriptEvents, AsyncEventStream[TranscriptDelta, Transcription]):
    """A streamed transcript on the event loop (``audio.py``'s ``TranscriptStream``).

    ``async for`` it for ``TranscriptDelta`` values, or over ``text()``::

        async with client.transcribe_stream("talk.wav", model="gpt-4o-mini-transcribe") as s:
            async for text in s.text():
                print(text, end="", flush=True)
        s.transcription  # the whole Transcription, once read to the end
    """

    async def __aenter__(self) -> AsyncTranscriptStream:
        return await super().__aenter__()  # type: ignore[no-any-return]

    async def text(self) -> AsyncIterator[str]:
        """The transcript's pieces, each as soon as its bytes arrive."""
        async for delta in self:
            if delta.text:
                yield delta.text

    @property
    def transcription(self) -> Transcription:
        """The whole transcript (read the stream to its end first)."""
        return self._final()


class AsyncSpeechStream(SpeechEvents, AsyncEventStream[bytes, Speech]):
    """Speech as it arrives, on the event loop (``audio.py``'s ``SpeechStream``).

    ``async for`` over ``iter_bytes()`` for the audio, or ``await save(path)``::

        async with client.speak("Hello!", model="gpt-4o-mini-tts", voice="coral") as audio:
            await audio.save("hello.mp3")
    """

    async def __aenter__(self) -> AsyncSpeechStream:
        return await super().__aenter__()  # type: ignore[no-any-return]

    def iter_bytes(self) -> AsyncIterator[bytes]:
        """The audio, each piece as soon as it arrives (decoded from base64 for SSE)."""
        return self.__aiter__()

    async def save(self, path: FilePath) -> Speech:
        """Write the audio to ``path`` as it arrives (``SpeechStream.save``).
        The writes are small and local, made on the event loop's thread."""
        with self._writer(path) as writer:
            async for piece in self:
                writer.write(piece)
        return self._final()

    @property
    def speech(self) -> Speech:
        """What the answer came to (read the audio to its end first)."""
        return self._final()
