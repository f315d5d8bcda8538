"""Audio in and out: transcription, translation and speech, request to answer.

Covers ``POST /audio/transcriptions`` and ``POST /audio/translations``
(https://platform.openai.com/docs/api-reference/audio/createTranscription),
whose request is a ``multipart/form-data`` upload (``multipart.py``), and
``POST /audio/speech``
(https://platform.openai.com/docs/api-reference/audio/createSpeech), whose
request is JSON and whose answer is audio. What this module makes explicit:

* A file over the size limit (25 MB on OpenAI) or with an extension the
  API does not read is refused before a single byte is uploaded; so is a
  request without a model (transcription models are not chat models, so
  the settings' chat model is no default here).
* A transcription comes back in the ``response_format`` asked for: JSON
  (``json``, ``verbose_json`` with ``segments`` and ``words`` timed in
  seconds, ``diarized_json``) or plain text (``text``, ``srt``, ``vtt``,
  whose cues are read back into segments). ``Transcription`` holds both
  readings and the body as it came.
* Streamed transcripts come in three shapes, all SSE (``sse.py``):
  OpenAI's ``transcript.text.delta`` events ended by
  ``transcript.text.done`` (with usage); the chat-chunk shape of vLLM and
  others (``{"object": "transcription.chunk", "choices": [{"delta":
  {"content": ...}}]}`` then ``data: [DONE]``); and one ``data: {"text":
  ...}`` per segment, with no end marker at all (faster-whisper servers).
  ``TranscriptStreamDecoder`` reads all three.
* Speech arrives as the audio itself (``stream_format="audio"``: the body
  is the file, handed over as it arrives), or as SSE (``"sse"``):
  ``speech.audio.delta`` events carrying base64 audio, then
  ``speech.audio.done`` with usage (``SpeechStreamDecoder``). ``pcm`` is
  raw 24 kHz 16-bit mono samples: ``wav_header`` makes it a WAV file.
* A talk loop speaks each sentence as soon as it is complete:
  ``sentences`` cuts the text so far on ``.!?`` (before whitespace) and on
  ``。！？``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import quote, urlsplit

from ..errors import (
    APIStatusError,
    IncompleteStreamError,
    InvalidRequestError,
    InvalidResponseError,
    StreamError,
)
from .chunks import event_object, excerpt, loads_or_text, stream_error
from .http import HTTPRequest, HTTPResponse
from .multipart import MultipartForm, file_part, form_parts
from .request import encode_json, headers_for
from .response import ErrorContext, error_from_response
from .settings import Settings
from .sse import ServerSentEvent, SSEParser

__all__ = [
    "AUDIO_TYPES",
    "MAX_UPLOAD_BYTES",
    "PCM_SAMPLE_RATE",
    "SPEECH_FORMATS",
    "SPEECH_TYPES",
    "TRANSCRIPTION_FORMATS",
    "AudioUsage",
    "Segment",
    "SpeechStreamDecoder",
    "TranscriptDelta",
    "TranscriptStreamDecoder",
    "Transcription",
    "Wav",
    "Word",
    "audio_error",
    "audio_error_hint",
    "build_speech_request",
    "build_transcription_request",
    "check_upload",
    "parse_transcription",
    "parse_wav",
    "pcm_to_wav",
    "sentences",
    "transcription_from_http",
    "wav_header",
]

#: OpenAI's upload limit for audio files (its 413 says 26214400 bytes).
MAX_UPLOAD_BYTES = 25 * 1024 * 1024

#: The file types the transcription endpoints read, by extension, with the
#: ``Content-Type`` their part is sent with. OpenAI decides by the extension.
AUDIO_TYPES = {
    "flac": "audio/flac",
    "m4a": "audio/mp4",
    "mp3": "audio/mpeg",
    "mp4": "audio/mp4",
    "mpeg": "audio/mpeg",
    "mpga": "audio/mpeg",
    "oga": "audio/ogg",
    "ogg": "audio/ogg",
    "wav": "audio/wav",
    "webm": "audio/webm",
}

TRANSCRIPTION_FORMATS = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")
_JSON_FORMATS = ("json", "verbose_json", "diarized_json")
_TRANSLATION_PARAMS = ("prompt", "response_format", "temperature")
_GRANULARITIES = ("word", "segment")

#: Speech formats and the media type of each.
SPEECH_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
SPEECH_FORMATS = tuple(SPEECH_TYPES)
SPEECH_STREAM_FORMATS = ("audio", "sse")
#: OpenAI's limit on ``input`` of ``/audio/speech``, in characters.
SPEECH_MAX_CHARACTERS = 4096

#: ``response_format="pcm"``: raw samples at 24 kHz, 16-bit signed little-endian, mono.
PCM_SAMPLE_RATE = 24000


# -- requests ----------------------------------------------------------------------


def check_upload(size: int, filename: str, *, max_bytes: int = MAX_UPLOAD_BYTES) -> str:
    """Refuse a file the endpoint cannot take; return its part's ``Content-Type``.

    Call it with the file's size before reading it: a file over the limit
    is refused without being read, let alone uploaded.
    """
    extension = filename.rpartition(".")[2].lower() if "." in filename else ""
    if extension not in AUDIO_TYPES:
        raise InvalidRequestError(
            f"{filename!r} is not an audio format the transcription API reads",
            hint="send one of " + ", ".join(AUDIO_TYPES) + " (the API goes by the file "
            "name's extension: give filename=... the right one, or convert the audio)",
        )
    if size > max_bytes:
        raise InvalidRequestError(
            f"{filename!r} is {size:,} bytes, over the {max_bytes:,}-byte upload limit",
            hint="cut the audio into shorter pieces, or compress it "
            "(e.g. ffmpeg -i in.wav -ac 1 -b:a 48k out.mp3)",
        )
    if size == 0:
        raise InvalidRequestError(f"{filename!r} is empty", hint="there is no audio to send")
    return AUDIO_TYPES[extension]


def build_transcription_request(
    settings: Settings,
    file: bytes,
    *,
    model: Optional[str],
    boundary: str,
    filename: str = "audio.wav",
    translate: bool = False,
    stream: bool = False,
    max_bytes: int = MAX_UPLOAD_BYTES,
    request_id: Optional[str] = None,
    extra_headers: Optional[Mapping[str, str]] = None,
    **params: Any,
) -> HTTPRequest:
    """The ``POST /audio/transcriptions`` request (``translate``: ``/audio/translations``).

    ``file`` is the audio's bytes, ``filename`` its name (the API reads the
    format from its extension). ``boundary`` is the multipart boundary
    (``make_boundary(os.urandom(16))``). ``params``: ``language``,
    ``prompt``, ``temperature``, ``response_format``,
    ``timestamp_granularities`` (a list: sent as
    ``timestamp_granularities[]`` parts), ``include``, anything a server
    accepts. The text fields come before the file, so a server can refuse a
    bad parameter without reading the audio first.
    """
    what = "translation" if translate else "transcription"
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError(
            f"no {what} model given",
            hint="pass model=... (OpenAI: gpt-4o-mini-transcribe, gpt-4o-transcribe or "
            "whisper-1; a chat model does not transcribe)",
        )
    content_type = check_upload(len(file), filename, max_bytes=max_bytes)
    _check_transcription_params(params, translate=translate, stream=stream)
    fields: Dict[str, Any] = {"model": model}
    for name, value in params.items():
        key = "timestamp_granularities[]" if name == "timestamp_granularities" else name
        fields[key] = value
    if stream:
        fields["stream"] = True
    form = MultipartForm(
        (*form_parts(fields), file_part("file", file, filename, content_type)), boundary
    )
    path = "/audio/translations" if translate else "/audio/transcriptions"
    headers = headers_for(
        settings, stream=stream, has_body=False, request_id=request_id, extra=extra_headers
    )
    return HTTPRequest(
        "POST",
        _url(settings, path, model),
        headers=_set_header(headers, "Content-Type", form.content_type),
        body=form.encode(),
        stream=stream,
        form=form,
    )


def _check_transcription_params(
    params: Mapping[str, Any], *, translate: bool, stream: bool
) -> None:
    if translate:
        extra = sorted(set(params) - set(_TRANSLATION_PARAMS))
        if extra or stream:
            name = extra[0] if extra else "stream"
            raise InvalidRequestError(
                f"translations take no {name!r}",
                hint="a translation is always into English and is not streamed; it takes "
                "file, model, prompt, response_format and temperature",
            )
    response_format = params.get("response_format")
    _check_format(response_format, TRANSCRIPTION_FORMATS, "a transcription")
    granularities = params.get("timestamp_granularities")
    if granularities is not None:
        if isinstance(granularities, str):
            granularities = [granularities]
        wrong = [g for g in granularities if g not in _GRANULARITIES]
        if wrong:
            raise InvalidRequestError(
                f"timestamp_granularities {wrong[0]!r} is not 'word' or 'segment'",
                hint='e.g. timestamp_granularities=["word", "segment"]',
            )
        if response_format != "verbose_json":
            raise InvalidRequestError(
                "timestamp_granularities needs response_format='verbose_json'",
                hint="only verbose_json carries timestamps",
            )
    temperature = params.get("temperature")
    if temperature is not None and not (
        isinstance(temperature, (int, float)) and 0 <= temperature <= 1
    ):
        raise InvalidRequestError(
            f"temperature {temperature!r} is not a number from 0 to 1",
            hint="transcription temperature runs from 0 (most likely) to 1",
        )


def build_speech_request(
    settings: Settings,
    input: str,
    *,
    model: Optional[str],
    voice: Any,
    request_id: Optional[str] = None,
    extra_headers: Optional[Mapping[str, str]] = None,
    **params: Any,
) -> HTTPRequest:
    """The ``POST /audio/speech`` request: ``input`` spoken by ``voice``.

    ``params``: ``instructions``, ``response_format`` (mp3, opus, aac,
    flac, wav, pcm), ``speed`` (0.25 to 4), ``stream_format`` (``audio``
    or ``sse``), anything a server accepts. The answer is always read as
    it arrives (``stream`` is set): audio is long, and playing can start
    with its first bytes.
    """
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError(
            "no speech model given",
            hint="pass model=... (OpenAI: gpt-4o-mini-tts, tts-1 or tts-1-hd)",
        )
    if not isinstance(input, str) or not input.strip():
        raise InvalidRequestError("there is no text to speak", hint="pass a non-empty input")
    if len(input) > SPEECH_MAX_CHARACTERS:
        raise InvalidRequestError(
            f"the input is {len(input):,} characters, over the "
            f"{SPEECH_MAX_CHARACTERS:,}-character limit of one speech request",
            hint="speak it sentence by sentence (rawchat.protocol.audio.sentences cuts it)",
        )
    if not voice or not isinstance(voice, (str, Mapping)):
        raise InvalidRequestError(
            "no voice given", hint="pass voice=... (OpenAI: alloy, ash, coral, echo, nova, ...)"
        )
    response_format = params.get("response_format")
    _check_format(response_format, SPEECH_FORMATS, "a speech")
    stream_format = params.get("stream_format")
    if stream_format is not None and stream_format not in SPEECH_STREAM_FORMATS:
        raise InvalidRequestError(
            f"stream_format {stream_format!r} is not 'audio' or 'sse'",
            hint="'audio' sends the file itself, 'sse' sends base64 audio events",
        )
    speed = params.get("speed")
    if speed is not None and not (isinstance(speed, (int, float)) and 0.25 <= speed <= 4):
        raise InvalidRequestError(
            f"speed {speed!r} is not a number from 0.25 to 4", hint="1 is normal speed"
        )
    body: Dict[str, Any] = {"model": model, "input": input, "voice": voice}
    body.update(params)
    headers = headers_for(settings, stream=True, request_id=request_id, extra=extra_headers)
    # An audio body is whatever the format makes; only SSE has a media type to ask for.
    accept = "text/event-stream" if stream_format == "sse" else "*/*"
    return HTTPRequest(
        "POST",
        _url(settings, "/audio/speech", model),
        headers=_set_header(headers, "Accept", accept),
        body=encode_json(body),
        stream=True,
    )


def _check_format(value: Any, formats: Tuple[str, ...], what: str) -> None:
    if value is not None and value not in formats:
        raise InvalidRequestError(
            f"response_format {value!r} is not {what} format",
            hint="use one of " + ", ".join(formats),
        )


def _url(settings: Settings, path: str, model: str) -> str:
    # Azure's deployment URLs name the deployment for audio as they do for chat.
    if settings.auth == "api-key" and settings.api_version:
        path = f"/deployments/{quote(model, safe='')}{path}"
    return settings.url(path)


def _set_header(headers: List[tuple], name: str, value: str) -> List[tuple]:
    """``headers`` with ``name`` set to ``value``, in the place it had (else second)."""
    found = [n for n, (key, _) in enumerate(headers) if key.lower() == name.lower()]
    if found:
        headers = [pair for n, pair in enumerate(headers) if n not in found[1:]]
        headers[found[0]] = (name, value)
        return headers
    return [*headers[:1], (name, value), *headers[1:]]


# -- transcriptions ---------------------------------------------------------------


@dataclass(frozen=True)
class AudioUsage:
    """What an audio call used, as reported (``usage`` on the wire).

    Token-billed models (``gpt-4o-transcribe``, ``gpt-4o-mini-tts``) report
    ``type="tokens"`` with input (audio and text) and output tokens;
    ``whisper-1`` reports ``type="duration"`` and the ``seconds`` billed.
    Servers that count in chat's names (``prompt_tokens``,
    ``completion_tokens``) are read alike.
    """

    type: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    audio_tokens: int = 0
    text_tokens: int = 0
    seconds: Optional[float] = None

    @classmethod
    def from_wire(cls, data: Any) -> Optional[AudioUsage]:
        if not isinstance(data, dict):
            return None
        details = data.get("input_token_details")
        details = details if isinstance(details, dict) else {}
        seconds = data.get("seconds")
        # Chat-chunk style servers (vLLM) count in chat's names.
        counts = (
            _count(data.get("input_tokens", data.get("prompt_tokens"))),
            _count(data.get("output_tokens", data.get("completion_tokens"))),
        )
        return cls(
            type=data.get("type") if isinstance(data.get("type"), str) else "",
            input_tokens=counts[0],
            output_tokens=counts[1],
            total_tokens=max(_count(data.get("total_tokens")), sum(counts)),
            audio_tokens=_count(details.get("audio_tokens")),
            text_tokens=_count(details.get("text_tokens")),
            seconds=_number(seconds),
        )


@dataclass(frozen=True)
class Segment:
    """A stretch of the transcript, timed in seconds from the start of the audio."""

    id: int
    start: float
    end: float
    text: str
    speaker: Optional[str] = None


@dataclass(frozen=True)
class Word:
    """One word and when it was said (``verbose_json`` with word granularity)."""

    word: str
    start: float
    end: float


@dataclass(frozen=True)
class Transcription:
    """A transcription (or translation), whatever format it came in.

    ``text``: the transcript. ``segments`` and ``words``: timed pieces, when
    the format has them (``verbose_json``; ``srt`` and ``vtt`` give
    segments). ``language`` and ``duration`` (seconds) come with
    ``verbose_json``. ``body``: the answer as it came, the text itself for
    ``text``, ``srt`` and ``vtt``; ``raw``: the decoded JSON object, for the
    JSON formats.
    """

    text: str
    response_format: str = "json"
    segments: Tuple[Segment, ...] = ()
    words: Tuple[Word, ...] = ()
    language: Optional[str] = None
    duration: Optional[float] = None
    usage: Optional[AudioUsage] = None
    body: str = ""
    raw: Optional[Mapping[str, Any]] = field(default=None, repr=False)
    request_id: Optional[str] = None


def parse_transcription(
    body: bytes, response_format: Optional[str] = None, content_type: str = ""
) -> Transcription:
    """The ``Transcription`` in a successful answer's body.

    A JSON body is read as JSON whatever format was asked for (some servers
    ignore ``response_format``); otherwise ``srt`` and ``vtt`` cues become
    segments and any other text is the transcript.
    """
    response_format = response_format or "json"
    # bytes.decode: vermin takes ``body`` for a str, whose decode() is Python 2's.
    text = body.decode("utf-8", "replace")  # novermin
    stripped = text.lstrip()
    looks_json = content_type == "application/json" or stripped[:1] == "{"
    if response_format in _JSON_FORMATS or (looks_json and response_format == "text"):
        return _from_json(text, response_format)
    if stripped[:1] == "<":
        raise InvalidResponseError(
            f"expected a transcription, got an HTML page: {excerpt(stripped)}",
            body=text,
            hint="something other than the API answered (a proxy, a login page); "
            "check the base URL",
        )
    if response_format in ("srt", "vtt"):
        segments = _cues(text)
        joined = " ".join(s.text for s in segments)
        return Transcription(joined, response_format, segments=segments, body=text)
    return Transcription(text.strip(), response_format, body=text)


def transcription_from_http(
    response: HTTPResponse, response_format: Optional[str] = None
) -> Transcription:
    """A successful (2xx) answer to a transcription or translation request."""
    parsed = parse_transcription(response.body, response_format, response.content_type)
    return replace(parsed, request_id=response.request_id)


def _from_json(text: str, response_format: str) -> Transcription:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidResponseError(
            f"expected a JSON transcription, got {excerpt(text)}",
            body=text,
            hint="the server may not honour response_format; try response_format='text'",
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise InvalidResponseError(
            f"a transcription object has a 'text' string; got {excerpt(text)}", body=data
        )
    return replace(transcription_from_object(data, response_format), body=text)


def transcription_from_object(
    data: Mapping[str, Any], response_format: str = "json"
) -> Transcription:
    """A decoded transcription object (``json``, ``verbose_json``, ``diarized_json``)."""
    segments = data.get("segments")
    words = data.get("words")
    return Transcription(
        text=str(data.get("text", "")),
        response_format=response_format,
        segments=tuple(_segment(n, s) for n, s in enumerate(segments or ()) if isinstance(s, dict)),
        words=tuple(
            Word(
                str(w.get("word", "")), _number(w.get("start")) or 0.0, _number(w.get("end")) or 0.0
            )
            for w in (words or ())
            if isinstance(w, dict)
        ),
        language=data.get("language") if isinstance(data.get("language"), str) else None,
        duration=_number(data.get("duration")),
        usage=AudioUsage.from_wire(data.get("usage")),
        body=json.dumps(data, ensure_ascii=False),
        raw=data,
    )


def _segment(position: int, data: Mapping[str, Any]) -> Segment:
    ident = data.get("id")
    speaker = data.get("speaker")
    return Segment(
        id=ident if isinstance(ident, int) and not isinstance(ident, bool) else position,
        start=_number(data.get("start")) or 0.0,
        end=_number(data.get("end")) or 0.0,
        text=str(data.get("text", "")),
        speaker=speaker if isinstance(speaker, str) else None,
    )


# SRT writes 00:00:01,500 and VTT 00:00:01.500 or 00:01.500.
_CUE_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{3})"
_CUE = re.compile(_CUE_TIME + r"\s+-->\s+" + _CUE_TIME)


def _cues(text: str) -> Tuple[Segment, ...]:
    """The cues of an SRT or WebVTT file, as segments (their text lines joined)."""
    segments = []
    blocks = re.split(r"\r?\n\s*\r?\n", text.replace("\r\n", "\n"))
    for block in blocks:
        lines = block.strip("\n").split("\n")
        for n, line in enumerate(lines):
            found = _CUE.search(line)
            if found:
                times = found.groups()
                start, end = _seconds(*times[:4]), _seconds(*times[4:])
                words = " ".join(part.strip() for part in lines[n + 1 :] if part.strip())
                segments.append(Segment(len(segments), start, end, words))
                break
    return tuple(segments)


def _seconds(hours: Optional[str], minutes: str, seconds: str, millis: str) -> float:
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def _count(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9:
        return value
    return 0


def _number(value: Any) -> Optional[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


# -- streamed transcripts ---------------------------------------------------------


@dataclass(frozen=True)
class TranscriptDelta:
    """A piece of a streamed transcript: ``text`` to append, and the event it came in."""

    text: str
    raw: Optional[Mapping[str, Any]] = field(default=None, repr=False)


class TranscriptStreamDecoder:
    """Bytes of a streamed transcript in, ``TranscriptDelta`` values out; no I/O.

    ``shape`` tells which of the three shapes the server sends, once seen:
    ``"transcript.text"`` (OpenAI), ``"chunk"`` (chat-chunk style) or
    ``"segments"`` (one ``{"text"}`` object per segment). The first two end
    with a marker (``transcript.text.done``, ``[DONE]`` or a
    ``finish_reason``): a stream closed without it raises
    ``IncompleteStreamError`` from ``close``. The segment shape has no end
    marker, so only a stream with no segment at all counts as cut.

    Segments are joined with a space where neither side brings one, except
    between two pieces of CJK text, which is written without spaces. After the end
    marker, events are counted in ``ignored_events`` and not read.
    """

    def __init__(self, parser: Optional[SSEParser] = None) -> None:
        self.parser = parser or SSEParser()
        self.shape = ""
        self.done = False
        self.events = 0
        self.ignored_events = 0
        self.usage: Optional[AudioUsage] = None
        self.segments: List[Segment] = []
        self._pieces: List[str] = []
        self._final: Optional[str] = None
        self._deltas_seen = False
        self._finished = False

    @property
    def text(self) -> str:
        """The transcript so far (the final text, once the server sent it)."""
        return self._final if self._final is not None else "".join(self._pieces)

    def feed(self, data: bytes) -> List[TranscriptDelta]:
        """Decode the next bytes; return the transcript pieces they complete."""
        deltas = []
        for event in self.parser.feed(data):
            self.events += 1
            if self.done:
                self.ignored_events += 1
                continue
            try:
                deltas += self._event(event)
            except StreamError as exc:
                exc.partial = self.transcription()
                raise
        return deltas

    def feed_json(self, data: Any) -> TranscriptDelta:
        """A whole transcription object, from a server that ignored ``stream``."""
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise InvalidResponseError(
                f"a transcription object has a 'text' string; got {excerpt(repr(data))}",
                body=data,
            )
        whole = transcription_from_object(data)
        self.usage = whole.usage
        self.segments = list(whole.segments)
        self._pieces, self._final, self.done = [whole.text], whole.text, True
        return TranscriptDelta(whole.text, data)

    def close(self) -> Transcription:
        """End of the body: the whole ``Transcription``, if the stream was whole."""
        self.parser.close()
        whole = self.done or self._finished or (self.shape == "segments" and self.events)
        cut = not whole
        if cut:
            got = f"{self.events} events" if self.events else "no events"
            raise IncompleteStreamError(
                f"the transcript stream ended after {got} without its end "
                "(transcript.text.done or [DONE]): the transcript is truncated",
                hint="the connection was cut; the text so far is on the error's .partial",
                partial=self.transcription(),
            )
        return self.transcription()

    def transcription(self) -> Transcription:
        """What has arrived so far, as a ``Transcription``."""
        return Transcription(
            self.text, "json", segments=tuple(self.segments), usage=self.usage, body=self.text
        )

    def _event(self, event: ServerSentEvent) -> List[TranscriptDelta]:
        data = event.data
        if event.event == "error":
            raise stream_error(loads_or_text(data), data)
        if event.event not in ("message", "") and not event.event.startswith("transcript."):
            return []  # a provider's ping or other named event
        if not data.strip():
            return []
        if data.strip() == "[DONE]":
            self.done = True
            return []
        obj = event_object(data, "transcript event")
        kind = obj.get("type")
        if kind == "error" or ("error" in obj and not obj.get("choices")):
            raise stream_error(obj, data)
        if isinstance(kind, str) and kind.startswith("transcript.text."):
            return self._openai(kind, obj)
        if obj.get("object") == "transcription.chunk" or isinstance(obj.get("choices"), list):
            return self._chunk(obj)
        if isinstance(obj.get("text"), str):
            self.shape = self.shape or "segments"
            return self._append(obj.get("text", ""), obj, join=True)
        return []

    def _openai(self, kind: str, obj: Mapping[str, Any]) -> List[TranscriptDelta]:
        self.shape = "transcript.text"
        if kind == "transcript.text.delta":
            self._deltas_seen = True
            delta = obj.get("delta")
            return self._append(delta if isinstance(delta, str) else "", obj)
        if kind == "transcript.text.segment":  # diarizing models send timed segments
            self.segments.append(_segment(len(self.segments), obj))
            if self._deltas_seen:
                return []
            return self._append(str(obj.get("text", "")), obj, join=True)
        if kind == "transcript.text.done":
            self.done = True
            self.usage = AudioUsage.from_wire(obj.get("usage")) or self.usage
            final, so_far = obj.get("text"), "".join(self._pieces)
            if not isinstance(final, str):
                return []
            self._final = final
            # A server that sends only the done event (or fewer deltas than
            # its text): the caller still sees the whole transcript.
            if final.startswith(so_far) and len(final) > len(so_far):
                return [TranscriptDelta(final[len(so_far) :], obj)]
        return []

    def _chunk(self, obj: Mapping[str, Any]) -> List[TranscriptDelta]:
        self.shape = "chunk"
        usage = AudioUsage.from_wire(obj.get("usage"))
        if usage is not None:
            self.usage = usage
        deltas = []
        for choice in obj.get("choices") or ():
            if not isinstance(choice, dict):
                raise StreamError(
                    "malformed transcription chunk: a choice is not an object", body=obj
                )
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            piece = delta.get("content", delta.get("text"))
            if isinstance(piece, str) and piece:
                deltas += self._append(piece, obj)
            if choice.get("finish_reason"):
                self._finished = True  # whole, but the usage chunk and [DONE] may follow
        return deltas

    def _append(
        self, text: str, obj: Mapping[str, Any], *, join: bool = False
    ) -> List[TranscriptDelta]:
        if join and self._pieces and _needs_space(self._pieces[-1], text):
            text = " " + text
        if not text:
            return []
        self._pieces.append(text)
        return [TranscriptDelta(text, obj)]


def _needs_space(before: str, after: str) -> bool:
    if not before or not after or before[-1].isspace() or after[0].isspace():
        return False
    return not (_is_cjk(before[-1]) and _is_cjk(after[0]))


def _is_cjk(char: str) -> bool:
    # CJK scripts, their punctuation and full-width forms are written without spaces.
    return (
        "\u2e80" <= char <= "\u9fff" or "\uac00" <= char <= "\ud7af" or "\uff00" <= char <= "\uffef"
    )


# -- streamed speech ----------------------------------------------------------------


class SpeechStreamDecoder:
    """Bytes of a ``stream_format="sse"`` speech answer in, audio bytes out; no I/O.

    Each ``speech.audio.delta`` event carries a complete base64 string of
    the next audio bytes; ``speech.audio.done`` ends the stream with the
    ``usage``. ``close`` raises ``IncompleteStreamError`` if the done event
    never came: the audio is cut short.
    """

    def __init__(self, parser: Optional[SSEParser] = None) -> None:
        self.parser = parser or SSEParser()
        self.done = False
        self.events = 0
        self.audio_bytes = 0
        self.usage: Optional[AudioUsage] = None

    def feed(self, data: bytes) -> List[bytes]:
        """Decode the next bytes; return the audio pieces they complete."""
        pieces = []
        for event in self.parser.feed(data):
            self.events += 1
            if self.done or not event.data.strip():
                continue
            if event.event == "error":
                raise stream_error(loads_or_text(event.data), event.data)
            if event.data.strip() == "[DONE]":
                self.done = True
                continue
            obj = event_object(event.data, "speech event")
            kind = obj.get("type")
            if kind == "error" or "error" in obj:
                raise stream_error(obj, event.data)
            if kind == "speech.audio.delta":
                piece = _base64(obj.get("audio"))
                self.audio_bytes += len(piece)
                pieces.append(piece)
            elif kind == "speech.audio.done":
                self.done = True
                self.usage = AudioUsage.from_wire(obj.get("usage"))
        return pieces

    def close(self) -> Optional[AudioUsage]:
        """End of the body: the usage, if the stream was whole."""
        self.parser.close()
        if not self.done:
            raise IncompleteStreamError(
                f"the speech stream ended after {self.audio_bytes:,} bytes of audio "
                "without speech.audio.done: the audio is cut short",
                hint="the connection was cut; ask for the speech again",
            )
        return self.usage


def _base64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise StreamError("a speech.audio.delta event has no 'audio' string", body=value)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise StreamError(
            f"a speech.audio.delta event's audio is not base64: {excerpt(value)}", body=value
        ) from None


# -- WAV ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wav:
    """A PCM WAV file, read: its format, its samples, and its ``LIST/INFO`` tags."""

    sample_rate: int
    channels: int
    bits_per_sample: int
    data: bytes
    info: Mapping[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        frame = self.channels * self.bits_per_sample // 8
        return len(self.data) // frame / self.sample_rate if frame and self.sample_rate else 0.0


#: The RIFF size of a WAV whose length is not known yet (a stream): the
#: largest, which readers such as ffmpeg take as "read to the end".
_UNKNOWN = 0xFFFFFFFF


def wav_header(
    data_size: Optional[int] = None,
    *,
    sample_rate: int = PCM_SAMPLE_RATE,
    channels: int = 1,
    bits_per_sample: int = 16,
    info: Optional[Mapping[str, str]] = None,
) -> bytes:
    """The header that makes ``data_size`` bytes of PCM samples a WAV file.

    The RIFF layout (http://soundfile.sapp.org/doc/WaveFormat/): ``RIFF``
    size ``WAVE``, a ``fmt `` chunk (format 1, integer PCM), an optional
    ``LIST``/``INFO`` chunk of tags, and the ``data`` chunk's own header;
    the samples follow. Without ``data_size`` (audio still streaming) the
    sizes say "unknown"; a writer that can seek writes the header again
    when the length is known.
    """
    block = channels * bits_per_sample // 8
    fmt = struct.pack(
        "<HHIIHH", 1, channels, sample_rate, sample_rate * block, block, bits_per_sample
    )
    tags = _info_chunk(info) if info else b""
    chunks = _chunk(b"fmt ", fmt) + tags
    if data_size is None:
        return (
            b"RIFF"
            + struct.pack("<I", _UNKNOWN)
            + b"WAVE"
            + chunks
            + b"data"
            + struct.pack("<I", _UNKNOWN)
        )
    riff = 4 + len(chunks) + 8 + data_size + data_size % 2
    return (
        b"RIFF"
        + struct.pack("<I", riff)
        + b"WAVE"
        + chunks
        + b"data"
        + struct.pack("<I", data_size)
    )


def pcm_to_wav(pcm: bytes, *, info: Optional[Mapping[str, str]] = None, **format: int) -> bytes:
    """A whole WAV file around ``pcm`` (by default 24 kHz 16-bit mono, as ``pcm`` speech is)."""
    return wav_header(len(pcm), info=info, **format) + pcm + b"\0" * (len(pcm) % 2)


def parse_wav(data: bytes) -> Wav:
    """Read a PCM WAV file; ``ValueError`` says why when it is not one.

    A chunk size running past the end (a WAV written while streaming) is
    read to the end.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV file (no RIFF/WAVE header)")
    position, fmt, samples, info = 12, None, None, {}
    while position + 8 <= len(data):
        ident, size = data[position : position + 4], struct.unpack_from("<I", data, position + 4)[0]
        body = data[position + 8 : position + 8 + size]
        if ident == b"fmt " and len(body) >= 16:
            fmt = struct.unpack_from("<HHIIHH", body)
        elif ident == b"data":
            samples = body
        elif ident == b"LIST" and body[:4] == b"INFO":
            info.update(_read_info(body[4:]))
        position += 8 + size + size % 2
    if fmt is None or samples is None:
        raise ValueError("a WAV file without its fmt or data chunk")
    kind, channels, rate, _, _, bits = fmt
    if kind not in (1, 0xFFFE) or not channels or not bits:  # 0xFFFE: WAVE_FORMAT_EXTENSIBLE
        raise ValueError(f"a WAV file of format {kind}, not integer PCM")
    return Wav(rate, channels, bits, samples, info)


def _chunk(ident: bytes, body: bytes) -> bytes:
    """A RIFF chunk: id, little-endian size, body, and a pad byte to an even length."""
    return ident + struct.pack("<I", len(body)) + body + b"\0" * (len(body) % 2)


def _info_chunk(info: Mapping[str, str]) -> bytes:
    tags = b""
    for ident, value in info.items():
        key = ident.encode("ascii")
        if len(key) != 4:
            raise ValueError(f"an INFO tag is 4 ASCII characters, not {ident!r}")
        tags += _chunk(key, value.encode("utf-8") + b"\0")  # INFO strings end with NUL
    return _chunk(b"LIST", b"INFO" + tags)


def _read_info(data: bytes) -> Dict[str, str]:
    tags, position = {}, 0
    while position + 8 <= len(data):
        ident, size = data[position : position + 4], struct.unpack_from("<I", data, position + 4)[0]
        field = data[position + 8 : position + 8 + size].split(b"\0", 1)[0]
        tags[ident.decode("latin-1")] = field.decode("utf-8", "replace")
        position += 8 + size + size % 2
    return tags


# -- sentences ------------------------------------------------------------------------

# A sentence ends at ., ! or ? followed by whitespace (so "3.14" and a "."
# that is the last character so far do not end one: more may follow), or at
# 。！？, after which Chinese and Japanese put no space; closing quotes and
# brackets stay with their sentence.
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s)|[。！？]+[”’」』）)]*")


def sentences(text: str) -> Tuple[List[str], str]:
    """Cut the text so far into complete sentences and the rest.

    >>> sentences("Hello there. How are")
    (['Hello there.'], 'How are')
    >>> sentences("你好。今天")
    (['你好。'], '今天')

    A piece without any letter ("1." of a list) does not end a sentence. At
    the end of the answer the rest is the last sentence.
    """
    found, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        piece = text[start : match.end()].strip()
        if not any(char.isalpha() for char in piece):
            continue
        found.append(piece)
        start = match.end()
    return found, text[start:].lstrip()


# -- errors ----------------------------------------------------------------------------

_FORMAT_TROUBLE = re.compile(
    r"file format|unsupported (?:audio|media|file)|could not (?:decode|process)", re.I
)
_NOT_AUDIO_MODEL = re.compile(
    r"does not (?:support|transcribe)|not supported|invalid model|not a (?:speech|transcription)",
    re.I,
)


def audio_error_hint(
    status: int,
    *,
    code: Optional[str] = None,
    param: Optional[str] = None,
    message: str = "",
    url: str = "",
) -> str:
    """What a failed audio call most likely means, or ``""`` (the generic hint stands)."""
    path = urlsplit(url).path
    speech = path.endswith("/audio/speech")
    if status == 413:
        return (
            "the upload is larger than the server accepts (25 MB on OpenAI): cut the "
            "audio into shorter pieces, or compress it "
            "(e.g. ffmpeg -i in.wav -ac 1 -b:a 48k out.mp3)"
        )
    if status == 415:
        return (
            "the server refused the request's Content-Type: transcription takes "
            "multipart/form-data and speech takes JSON (a proxy may have rewritten it)"
        )
    if status in (400, 404, 422) and (
        param == "model" or code == "model_not_found" or _NOT_AUDIO_MODEL.search(message)
    ):
        kind = "speak" if speech else "transcribe"
        models = (
            "gpt-4o-mini-tts, tts-1, tts-1-hd"
            if speech
            else ("gpt-4o-mini-transcribe, gpt-4o-transcribe, whisper-1")
        )
        return (
            f"this model does not {kind} here: OpenAI's are {models} (chat models do "
            "not); `rawchat models` lists what the server offers"
        )
    if status in (400, 422) and (param == "file" or _FORMAT_TROUBLE.search(message)):
        return (
            "the server could not read the audio: send "
            + ", ".join(AUDIO_TYPES)
            + ", with the matching extension in the file name"
        )
    if status in (404, 405) and "/audio/" in path:
        if "/v1/" not in path and "/openai/" not in path:
            return ""  # the generic hint says to add /v1 to the base URL
        return (
            f"{url} is not there: this server has no audio endpoints (many "
            "OpenAI-compatible servers serve only chat)"
        )
    return ""


def audio_error(response: HTTPResponse, context: Optional[ErrorContext] = None) -> APIStatusError:
    """The typed error for a failed audio call: ``error_from_response``, with
    the hint of ``audio_error_hint`` where it has one."""
    return error_from_response(response, context, hints=audio_error_hint)
