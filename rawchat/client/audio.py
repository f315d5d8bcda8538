"""Audio over the network: uploads read once, transcripts and speech as they arrive.

The edge of ``protocol/audio.py`` (transcription and translation,
https://platform.openai.com/docs/api-reference/audio/createTranscription;
speech, https://platform.openai.com/docs/api-reference/audio/createSpeech):
what needs a file system, randomness or a socket. ``Client`` and
``AsyncClient`` build on it::

    client.transcribe(file, model=...)            -> Transcription
    client.translate(file, model=...)             -> Transcription (into English)
    with client.transcribe_stream(file, model=...) as s:
        for text in s.text(): ...                 transcript deltas as they arrive
    s.transcription                               the whole Transcription, usage included
    with client.speak(text, model=..., voice=...) as audio:
        for piece in audio.iter_bytes(): ...      audio bytes as they arrive
    audio.save("hello.mp3")                       or straight to a file

What this module makes explicit:

* **The upload is read once.** ``file`` is bytes, a path or a binary file
  object; its size is known before it is read (the file's size on disk,
  or what a seekable object has left), so a file over the limit is
  refused without being read, let alone sent (``check_upload``). The
  body is built once: a retry sends the very same bytes, boundary
  included. The file name, whose extension tells the API the format,
  comes from ``filename=``, else the path or the file object's name; bytes
  without one are sent as ``audio.wav``.
* **The boundary is random** (``os.urandom``, 16 bytes) here at the edge,
  since the protocol layer draws no randomness; pass ``boundary=`` to fix it.
* **Audio calls take the attempt loop** (``attempts.py``: keys, pacing,
  breaker, retry budget, retries, the deadline, hooks, traces), with
  ``audio_error`` for the hints of 413, 415 and "this model does not
  transcribe". They take no route: a fallback is a chat model, the response
  cache keys chat messages, and the usage they report is not counted in
  chat tokens, so the usage meter and the token calibration leave it out.
* **A streamed transcript** is a ``TranscriptStream``: the stream rules of
  ``stream.py`` (retried while nothing has reached the caller, the read
  timeout reported as a stall, the deadline, a cut stream raising
  ``IncompleteStreamError`` with the text so far on ``.partial``) over
  ``TranscriptStreamDecoder``, which reads OpenAI's ``transcript.text.*``
  events, chat-chunk-shaped ``transcription.chunk`` objects and one
  ``{"text"}`` per segment alike.
* **Speech** is a ``SpeechStream`` under the same rules. Its items are
  audio bytes: the body itself (``stream_format="audio"``, the default), or
  the base64 of ``speech.audio.delta`` events (``stream_format="sse"``,
  ``SpeechStreamDecoder``), which end with ``speech.audio.done`` and its
  usage. The decoder follows what the server sent (its ``Content-Type``),
  not what was asked.
* **PCM becomes WAV only when saved as .wav.** ``response_format="pcm"``
  is raw 24 kHz 16-bit mono samples: ``iter_bytes()`` hands them over as
  they are (a player that takes raw samples wants exactly that), and
  ``save(path)`` writes them as they are, unless ``path`` ends in
  ``.wav``: then a WAV header goes first and is written again with the
  real sizes when the audio has ended (``wav_header``), so the file equals
  ``pcm_to_wav`` of the samples. ``save`` writes to ``PATH.part`` and
  renames it to ``PATH`` once the audio is whole: a cut stream leaves no
  clip that looks complete.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Iterator, Optional, Tuple
from urllib.parse import urlsplit

from ..errors import APITimeoutError, InvalidResponseError
from ..protocol.audio import (
    MAX_UPLOAD_BYTES,
    AudioUsage,
    SpeechStreamDecoder,
    TranscriptDelta,
    Transcription,
    TranscriptStreamDecoder,
    build_transcription_request,
    check_upload,
    wav_header,
)
from ..protocol.http import Headers, HTTPRequest, request_id_of
from ..protocol.multipart import make_boundary
from ..protocol.settings import Settings
from . import uploads
from .attempts import Call
from .stream import EventStream, EventStreamCore

__all__ = [
    "AudioFile",
    "AudioOpening",
    "AudioWriter",
    "FilePath",
    "Speech",
    "SpeechEvents",
    "SpeechStream",
    "TranscriptEvents",
    "TranscriptStream",
    "read_upload",
    "transcription_request",
]


#: Where ``save`` writes: a path.
FilePath = uploads.FilePath

#: What ``transcribe`` takes as the audio: its bytes, a path, or a binary file object.
AudioFile = uploads.Upload

#: The file name of audio given as bytes without ``filename=``.
UNNAMED = "audio.wav"


# -- the upload ----------------------------------------------------------------------


def read_upload(
    file: AudioFile, filename: Optional[str] = None, *, max_bytes: int = MAX_UPLOAD_BYTES
) -> Tuple[bytes, str]:
    """The audio's bytes and its file name, read once (``uploads.read_upload``),
    its size and format checked first (``check_upload``)."""
    return uploads.read_upload(
        file, filename, default_name=UNNAMED, limit=max_bytes, what="audio file",
        check=lambda size, name: check_upload(size, name, max_bytes=max_bytes),
    )  # fmt: skip


def transcription_request(
    settings: Settings,
    file: AudioFile,
    *,
    model: Optional[str],
    filename: Optional[str] = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
    boundary: Optional[str] = None,
    **options: Any,
) -> HTTPRequest:
    """``build_transcription_request`` on the audio ``read_upload`` reads,
    with a random boundary unless one is given. ``options``: ``translate``,
    ``stream``, ``extra_headers`` and the form fields."""
    data, name = read_upload(file, filename, max_bytes=max_bytes)
    return build_transcription_request(
        settings, data, model=model, filename=name, max_bytes=max_bytes,
        boundary=boundary or make_boundary(os.urandom(16)), **options,
    )  # fmt: skip


class AudioOpening:
    """Where an audio stream's response comes from: one ``Call``, opened
    again (its attempt loop deciding) after a break before any content."""

    def __init__(self, call: Call) -> None:
        self.call = call

    def handle(self, kind: Any, opener: Any, **options: Any) -> Any:
        """A stream handle of ``kind`` reading from ``opener`` (``open`` or ``open_async``)."""
        clock, deadline = self.call.clock.monotonic, self.call.deadline.at
        return kind(opener, clock=clock, deadline=deadline, **options)

    def open(self, failure: Any) -> Tuple[Any, int]:
        return self.call.open_stream(failure), self.call.retries

    async def open_async(self, failure: Any) -> Tuple[Any, int]:
        return await self.call.open_stream_async(failure), self.call.retries


# -- streamed transcripts --------------------------------------------------------------


class _TranscriptDecoder(TranscriptStreamDecoder):
    def iter_feed(self, data: bytes) -> Iterator[TranscriptDelta]:
        return iter(self.feed(data))


class TranscriptEvents(EventStreamCore[TranscriptDelta, Transcription]):
    """How a transcript streams (``TranscriptStreamDecoder``): deltas until
    ``transcript.text.done`` or ``[DONE]``, or segments until the body ends."""

    _decoder_class = _TranscriptDecoder

    @property
    def shape(self) -> str:
        """Which of the three shapes the server sends, once seen (see the decoder)."""
        return self._decoder.shape  # type: ignore[no-any-return]

    def _whole(self, data: Any) -> Iterable[TranscriptDelta]:
        return [self._decoder.feed_json(data)]

    def _is_content(self, delta: TranscriptDelta) -> bool:
        return bool(delta.text)

    def _ended(self) -> bool:
        return bool(self._decoder.done)

    def _partial(self) -> Transcription:
        return self._decoder.transcription()  # type: ignore[no-any-return]

    def _characters(self) -> int:
        return len(self._decoder.text)

    def _complete(self, answer: Transcription) -> None:
        # A Transcription keeps the request id; retries and timing stay on the handle.
        self._answer = replace(answer, request_id=request_id_of(self._source.headers))


class TranscriptStream(TranscriptEvents, EventStream[TranscriptDelta, Transcription]):
    """A streamed transcript: iterate it for ``TranscriptDelta`` values, or ``text()``.

    Use it as a context manager, so the connection is released however the
    reading ends::

        with client.transcribe_stream("talk.wav", model="gpt-4o-mini-transcribe") as s:
            for text in s.text():
                print(text, end="", flush=True)
        s.transcription  # the whole Transcription, usage included when sent
    """

    def __enter__(self) -> TranscriptStream:
        return super().__enter__()  # type: ignore[no-any-return]

    def text(self) -> Iterator[str]:
        """The transcript's pieces, each as soon as its bytes arrive."""
        for delta in self:
            if delta.text:
                yield delta.text

    @property
    def transcription(self) -> Transcription:
        """The whole transcript; reads the rest of the stream if needed."""
        return self._final()


# -- speech ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Speech:
    """What a speech answer came to once its body ended (or so far, on an
    error's ``.partial``): the media type the server sent, the bytes of
    audio handed over, the usage (SSE speech only), and as for every answer
    the request id, the response headers, the retries and the seconds taken."""

    content_type: str = ""
    audio_bytes: int = 0
    usage: Optional[AudioUsage] = None
    request_id: Optional[str] = None
    headers: Headers = field(default_factory=Headers, repr=False)
    retries_taken: int = 0
    elapsed: float = 0.0


class _AudioBody:
    """The "decoder" of a body that is the audio itself: every read is
    audio, and only the body's end ends it."""

    done = False
    usage: Optional[AudioUsage] = None

    def __init__(self) -> None:
        self.events = 0
        self.audio_bytes = 0

    def iter_feed(self, data: bytes) -> Iterator[bytes]:
        self.events += 1
        self.audio_bytes += len(data)
        return iter((data,))

    def close(self) -> None:
        return None


class _SpeechEventsDecoder(SpeechStreamDecoder):
    def iter_feed(self, data: bytes) -> Iterator[bytes]:
        return iter(self.feed(data))


class SpeechEvents(EventStreamCore[bytes, Speech]):
    """How speech streams: audio bytes from the body, or from
    ``speech.audio.delta`` events when the server answers with SSE.

    ``response_format`` is the one asked for: with ``"pcm"`` the audio is
    raw samples, which ``save`` wraps in WAV for a ``.wav`` path.
    """

    _decoder_class = _AudioBody

    def __init__(self, *args: Any, response_format: Optional[str] = None, **options: Any) -> None:
        super().__init__(*args, **options)
        self.response_format = response_format

    @property
    def content_type(self) -> str:
        """The media type of the answer (``audio/mpeg``, ``text/event-stream``...)."""
        return self._media() if self._source is not None else ""

    @property
    def is_pcm(self) -> bool:
        """Whether the audio is raw PCM samples (24 kHz, 16-bit, mono)."""
        return self.content_type == "audio/pcm" or self.response_format == "pcm"

    @property
    def usage(self) -> Optional[AudioUsage]:
        """The usage ``speech.audio.done`` reported, once it came (SSE only)."""
        return self._decoder.usage  # type: ignore[no-any-return]

    def _opened(self, source: Any, retries: int) -> bool:
        html = super()._opened(source, retries)
        if self._media() == "text/event-stream":
            self._decoder = _SpeechEventsDecoder()
        return html

    def _whole(self, data: Any) -> Iterable[bytes]:
        raise InvalidResponseError(
            "expected audio, got a JSON object",
            body=data,
            hint="the server does not speak the speech API; check the base URL",
        )

    def _is_content(self, piece: bytes) -> bool:
        return bool(piece)

    def _ended(self) -> bool:
        return bool(self._decoder.done)

    def _partial(self) -> Speech:
        usage = self._decoder.usage
        return Speech(self.content_type, self._decoder.audio_bytes, usage)

    def _complete(self, answer: Any) -> None:
        # The decoder ends in the usage (or nothing, for a body of audio):
        # the answer is what was handed over, with that usage.
        super()._complete(self._partial())

    def _stalled(self, seconds: float) -> APITimeoutError:
        host = urlsplit(self._source.url).netloc.rpartition("@")[2]  # no credentials
        return APITimeoutError(
            f"the speech from {host} stalled: nothing for {round(seconds, 1):g} s after "
            f"{self._decoder.audio_bytes:,} bytes of audio",
            hint="the server stopped mid-answer (the read timeout ran out); the audio so "
            "far has been handed over: ask again for the rest of the text",
        )

    def _writer(self, path: FilePath) -> AudioWriter:
        path = os.fspath(path)
        return AudioWriter(path, wav=self.is_pcm and path.lower().endswith(".wav"))


class SpeechStream(SpeechEvents, EventStream[bytes, Speech]):
    """Speech as it arrives: ``iter_bytes()`` for the audio, ``save(path)`` for a file::

        with client.speak("Hello!", model="gpt-4o-mini-tts", voice="coral") as audio:
            audio.save("hello.mp3")
        audio.speech.request_id

    A connection that fails before any audio was handed over is tried again;
    after that the error carries ``.partial``, the ``Speech`` so far.
    """

    def __enter__(self) -> SpeechStream:
        return super().__enter__()  # type: ignore[no-any-return]

    def iter_bytes(self) -> Iterator[bytes]:
        """The audio, each piece as soon as it arrives (decoded from base64 for SSE)."""
        return iter(self)

    def save(self, path: FilePath) -> Speech:
        """Write the audio to ``path`` as it arrives, never holding the whole
        clip; ``pcm`` into a ``.wav`` path becomes a WAV file."""
        with self._writer(path) as writer:
            for piece in self:
                writer.write(piece)
        return self._final()

    @property
    def speech(self) -> Speech:
        """What the answer came to; reads (and drops) any audio not read yet."""
        return self._final()


class AudioWriter:
    """Audio into a file as it arrives: written to ``PATH.part``, renamed to
    ``PATH`` by ``commit`` once whole, removed by ``abort``. As a context
    manager, it commits when the block ends and aborts when it raises.

    With ``wav``, the pieces are PCM samples: a WAV header of unknown size
    goes first, and is written again with the real sizes on ``commit``
    (with the pad byte RIFF wants after an odd-sized chunk).
    """

    def __init__(self, path: str, *, wav: bool = False) -> None:
        self.path = path
        self.partial_path = path + ".part"
        self.wav = wav
        self.size = 0
        self._out = open(self.partial_path, "wb")  # noqa: SIM115 (open until commit or abort)
        if wav:
            self._out.write(wav_header())

    def __enter__(self) -> AudioWriter:
        return self

    def __exit__(self, kind: Any, *exc_info: Any) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()

    def write(self, piece: bytes) -> None:
        self._out.write(piece)
        self.size += len(piece)

    def commit(self) -> None:
        if self.wav:
            self._out.write(b"\0" * (self.size % 2))
            self._out.seek(0)
            self._out.write(wav_header(self.size))
        self._out.close()
        os.replace(self.partial_path, self.path)

    def abort(self) -> None:
        self._out.close()
        os.unlink(self.partial_path)
