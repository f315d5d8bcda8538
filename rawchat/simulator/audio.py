"""The simulator speaks and listens: ``/v1/audio/speech``, ``/transcriptions``, ``/translations``.

The server side of OpenAI's audio endpoints
(https://platform.openai.com/docs/api-reference/audio), as deterministic
as the chat model:

* ``/v1/audio/speech`` answers with a WAV of 24 kHz 16-bit mono audio, one
  short tone per character (silence for spaces), so its length follows
  the text, and the text it was made from in a ``LIST/INFO`` chunk
  (``ICMT``, tagged ``ISFT="rawchat simulator"``). ``pcm`` gets the bare
  samples; mp3, opus, aac and flac get the WAV too, labelled
  ``audio/wav`` (the simulator has no encoders). ``stream_format="sse"``
  sends it as base64 ``speech.audio.delta`` events and
  ``speech.audio.done``; otherwise the body is streamed in 200 ms pieces.
* ``/v1/audio/transcriptions`` reads that text back out of such a file;
  any other audio is "transcribed" as a sentence saying how long it is.
  Every ``response_format`` is served, and ``stream=true`` streams in
  OpenAI's shape, or (with the ``chunk-shape`` and
  ``segment-shape`` faults) in the chat-chunk and per-segment
  shapes other servers send. ``/v1/audio/translations`` answers with the
  same text (the simulator's English is every language).
* The upload is checked as OpenAI does: 415 for a body that is not
  ``multipart/form-data``, 413 over 25 MB, 400 for a missing or unknown
  field value or an extension the API does not read.

Pure: ``transcribe`` and ``speak`` take the request's bytes and return an
``AudioAnswer``; ``app.py`` routes to them and applies the fault scripts.
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..protocol.audio import (
    AUDIO_TYPES,
    MAX_UPLOAD_BYTES,
    PCM_SAMPLE_RATE,
    SPEECH_FORMATS,
    SPEECH_MAX_CHARACTERS,
    TRANSCRIPTION_FORMATS,
    parse_wav,
    pcm_to_wav,
    sentences,
)
from ..protocol.multipart import FormPart
from ..protocol.sse import encode_event
from .model import pieces

__all__ = [
    "SIMULATOR_SOFTWARE",
    "SPEECH_MODELS",
    "TRANSCRIPTION_MODELS",
    "VOICES",
    "AudioAnswer",
    "MultipartError",
    "hear",
    "parse_multipart",
    "speak",
    "synthesize",
    "transcribe",
]

TRANSCRIPTION_MODELS = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")
SPEECH_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
VOICES = (
    "alloy", "ash", "ballad", "cedar", "coral", "echo", "fable", "marin", "nova", "onyx",
    "sage", "shimmer", "verse",
)  # fmt: skip

#: The ``ISFT`` tag of the simulator's WAV files: only their ``ICMT`` is read back as speech.
SIMULATOR_SOFTWARE = "rawchat simulator"

SECONDS_PER_CHARACTER = 0.06
_PIECE_BYTES = PCM_SAMPLE_RATE * 2 // 5  # 200 ms of 16-bit mono
#: A guess at the duration of audio that is not WAV: 128 kbit/s.
_COMPRESSED_BYTES_PER_SECOND = 16000


@dataclass(frozen=True)
class AudioAnswer:
    """What to send back: a whole ``body``, or a stream of SSE ``events``
    (one bytes value each), or of audio ``pieces`` (one HTTP chunk each)."""

    status: int = 200
    content_type: str = "application/json"
    body: bytes = b""
    events: Tuple[bytes, ...] = ()
    pieces: Tuple[bytes, ...] = ()


# -- multipart/form-data, server side ------------------------------------------


class MultipartError(ValueError):
    """A ``multipart/form-data`` body that cannot be read."""


_PARAM = re.compile(r';\s*([A-Za-z0-9*_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_PERCENT = {"%22": '"', "%0D": "\r", "%0A": "\n", "%0d": "\r", "%0a": "\n"}


def parse_multipart(
    body: bytes, content_type: str, *, max_parts: int = 64, max_head_bytes: int = 8192
) -> List[FormPart]:
    """The parts of a ``multipart/form-data`` body (RFC 7578), in order.

    Bounded: at most ``max_parts`` parts, each with at most
    ``max_head_bytes`` of headers; a preamble before the first delimiter is
    skipped, as RFC 2046 says. ``MultipartError`` says what is wrong.
    """
    media, _, rest = content_type.partition(";")
    if media.strip().lower() != "multipart/form-data":
        raise MultipartError(f"the body is {media.strip() or 'untyped'}, not multipart/form-data")
    boundary = _params(";" + rest).get("boundary", "")
    if not 1 <= len(boundary) <= 70:
        raise MultipartError("the Content-Type has no usable boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    if body.startswith(delimiter):
        position = len(delimiter)
    else:
        found = body.find(b"\r\n" + delimiter)
        if found < 0:
            raise MultipartError("the body does not contain its boundary")
        position = found + 2 + len(delimiter)
    parts: List[FormPart] = []
    while body[position : position + 2] != b"--":
        line_end = body.find(b"\r\n", position)
        if line_end < 0 or body[position:line_end].strip(b" \t"):
            raise MultipartError("a delimiter line is not followed by CRLF")
        start = line_end + 2
        if body.startswith(b"\r\n", start):  # a part without headers
            head, content_start = b"", start + 2
        else:
            head_end = body.find(b"\r\n\r\n", start, start + max_head_bytes + 4)
            if head_end < 0:
                raise MultipartError(
                    f"part {len(parts)}'s headers do not end within {max_head_bytes} bytes"
                )
            head, content_start = body[start:head_end], head_end + 4
        end = body.find(b"\r\n" + delimiter, content_start)
        if end < 0:
            raise MultipartError(f"part {len(parts)} is not closed by a delimiter")
        parts.append(_part(head, body[content_start:end]))
        if len(parts) > max_parts:
            raise MultipartError(f"more than {max_parts} parts")
        position = end + 2 + len(delimiter)
    return parts


def _part(head: bytes, data: bytes) -> FormPart:
    headers: Dict[str, str] = {}
    for line in head.decode("utf-8", "replace").split("\r\n"):
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    disposition = headers.get("content-disposition", "")
    kind, _, rest = disposition.partition(";")
    if kind.strip().lower() != "form-data":
        raise MultipartError("a part without Content-Disposition: form-data")
    params = _params(";" + rest)
    if "name" not in params:
        raise MultipartError("a part without a name")
    filename = params.get("filename")
    if "filename*" in params:  # RFC 5987: charset'language'percent-encoded
        charset, _, encoded = params["filename*"].partition("'")
        filename = _unpercent(encoded.partition("'")[2], charset or "utf-8")
    return FormPart(params["name"], data, filename, headers.get("content-type"))


def _params(text: str) -> Dict[str, str]:
    params = {}
    for name, value in _PARAM.findall(text):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
            value = re.sub(r"%22|%0[DdAa]", lambda m: _PERCENT[m.group(0)], value)
        params[name.lower()] = value.strip()
    return params


def _unpercent(text: str, charset: str) -> str:
    raw = re.sub(rb"%([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), text.encode())
    try:
        return raw.decode(charset, "replace")
    except LookupError:
        return raw.decode("utf-8", "replace")


# -- speech ------------------------------------------------------------------------


def synthesize(text: str, *, speed: float = 1.0) -> bytes:
    """PCM samples (24 kHz, 16-bit, mono) for ``text``: a tone per character,
    its pitch set by the character, silence for whitespace."""
    samples = max(1, int(PCM_SAMPLE_RATE * SECONDS_PER_CHARACTER / speed))
    out = []
    for char in text:
        if char.isspace():
            out.append(b"\0\0" * samples)
            continue
        period = 40 + ord(char) % 40  # 300 to 600 Hz
        half = period // 2
        # One period of a triangle wave, repeated: cheap, and not silence.
        wave = [(4000 * (i if i < half else period - i)) // half - 2000 for i in range(period)]
        cycle = struct.pack(f"<{period}h", *wave)
        out.append((cycle * (samples // period + 1))[: samples * 2])
    return b"".join(out)


def speak(body: bytes, *, models: Sequence[str] = ()) -> AudioAnswer:
    """``POST /v1/audio/speech``: ``body`` is the request's JSON.

    ``models`` are the chat models served, to tell "not a speech model"
    from "no such model".
    """
    try:
        request = json.loads(body)
    except ValueError:
        return _error(400, "We could not parse the JSON body of your request.")
    if not isinstance(request, dict):
        return _error(400, "The request body must be a JSON object.")
    problem = _check_model(request.get("model"), SPEECH_MODELS, models, "speech")
    if problem is not None:
        return problem
    text, voice = request.get("input"), request.get("voice")
    if not isinstance(text, str) or not text.strip():
        return _error(400, "'input' must be a non-empty string.", param="input")
    if len(text) > SPEECH_MAX_CHARACTERS:
        return _error(
            400,
            f"'input' is {len(text)} characters; the maximum is {SPEECH_MAX_CHARACTERS}.",
            param="input",
            code="string_above_max_length",
        )
    if not (voice in VOICES or (isinstance(voice, dict) and isinstance(voice.get("id"), str))):
        return _error(
            400, f"Invalid voice {voice!r}: use one of {', '.join(VOICES)}.", param="voice"
        )
    response_format = request.get("response_format", "mp3")
    if response_format not in SPEECH_FORMATS:
        return _error(400, f"Invalid response_format {response_format!r}.", param="response_format")
    stream_format = request.get("stream_format", "audio")
    if stream_format not in ("audio", "sse"):
        return _error(400, f"Invalid stream_format {stream_format!r}.", param="stream_format")
    speed = request.get("speed", 1.0)
    if not isinstance(speed, (int, float)) or isinstance(speed, bool) or not 0.25 <= speed <= 4:
        return _error(400, "'speed' must be a number from 0.25 to 4.0.", param="speed")
    pcm = synthesize(text, speed=float(speed))
    if response_format == "pcm":
        audio, media = pcm, "audio/pcm"
    else:
        info = {"ISFT": SIMULATOR_SOFTWARE, "ICMT": text}
        audio, media = pcm_to_wav(pcm, info=info), "audio/wav"
    chunks = tuple(audio[n : n + _PIECE_BYTES] for n in range(0, len(audio), _PIECE_BYTES))
    if stream_format == "sse":
        events = [
            _event({"type": "speech.audio.delta", "audio": base64.b64encode(c).decode("ascii")})
            for c in chunks
        ]
        words = len(pieces(text))
        frames = len(pcm) // 2
        output = max(1, frames // 1200)  # about 20 audio tokens a second
        usage = {"input_tokens": words, "output_tokens": output, "total_tokens": words + output}
        events.append(_event({"type": "speech.audio.done", "usage": usage}))
        return AudioAnswer(200, "text/event-stream; charset=utf-8", events=tuple(events))
    return AudioAnswer(200, media, pieces=chunks)


# -- transcription -----------------------------------------------------------------


def hear(audio: bytes) -> Tuple[str, float]:
    """What the simulator "hears" in ``audio``: its transcript and duration (seconds).

    The simulator's own speech gives back its text; other audio a sentence
    saying how long it is (a WAV's length is read, other formats' guessed
    from their size at 128 kbit/s).
    """
    try:
        wav = parse_wav(audio)
    except ValueError:
        seconds = len(audio) / _COMPRESSED_BYTES_PER_SECOND
        what = f"{len(audio):,} bytes of audio"
    else:
        if wav.info.get("ISFT") == SIMULATOR_SOFTWARE and wav.info.get("ICMT"):
            return wav.info["ICMT"], wav.duration
        seconds = wav.duration
        what = f"{seconds:.2f} seconds of audio"
    return (
        f"This is {what}. The rawchat simulator transcribes only the speech it made itself.",
        seconds,
    )


def transcribe(
    body: bytes,
    content_type: str,
    *,
    translate: bool = False,
    shape: str = "transcript.text",
    models: Sequence[str] = (),
    number: int = 0,
    created: int = 0,
) -> AudioAnswer:
    """``POST /v1/audio/transcriptions`` (``translate``: ``/translations``).

    ``shape`` is the streaming shape: ``transcript.text`` (OpenAI),
    ``chunk`` or ``segments``. ``number`` and ``created`` make the chunk
    shape's ``id`` and ``created``.
    """
    if content_type.partition(";")[0].strip().lower() != "multipart/form-data":
        return _error(
            415,
            f"Unsupported Media Type {content_type.partition(';')[0].strip() or '(none)'!r}: "
            "audio is uploaded as multipart/form-data.",
            code="unsupported_media_type",
        )
    if len(body) > MAX_UPLOAD_BYTES:
        return _error(
            413,
            f"Maximum content size limit ({MAX_UPLOAD_BYTES}) exceeded ({len(body)} bytes read)",
            type_="server_error",
        )
    try:
        parts = parse_multipart(body, content_type)
    except MultipartError as exc:
        return _error(400, f"Could not parse multipart form: {exc}.")
    fields: Dict[str, Any] = {}
    upload: Optional[FormPart] = None
    for part in parts:
        if part.name == "file" and part.is_file:
            upload = part
        elif part.name.endswith("[]"):
            fields.setdefault(part.name[:-2], []).append(part.data.decode("utf-8", "replace"))
        else:
            fields[part.name] = part.data.decode("utf-8", "replace")
    problem = _check_model(fields.get("model"), TRANSCRIPTION_MODELS, models, "transcription")
    if problem is not None:
        return problem
    if upload is None:
        return _error(400, "you must provide a file parameter", param="file")
    extension = (upload.filename or "").rpartition(".")[2].lower()
    if "." not in (upload.filename or "") or extension not in AUDIO_TYPES:
        return _error(
            400,
            f"Invalid file format. Supported formats: {sorted(AUDIO_TYPES)}",
            param="file",
            code="invalid_value",
        )
    response_format = fields.get("response_format", "json")
    if response_format not in TRANSCRIPTION_FORMATS:
        return _error(400, f"Invalid response_format {response_format!r}.", param="response_format")
    granularities = fields.get("timestamp_granularities") or ["segment"]
    text, seconds = hear(upload.data)
    model = fields["model"]
    usage = _usage(model, text, seconds)
    if fields.get("stream") == "true" and not translate:
        events = _stream(shape, text, usage, model=model, number=number, created=created)
        return AudioAnswer(200, "text/event-stream; charset=utf-8", events=tuple(events))
    timed = _segments(text, seconds)
    if response_format in ("text", "srt", "vtt"):
        rendered = {"text": text + "\n", "srt": _srt(timed), "vtt": _vtt(timed)}[response_format]
        return AudioAnswer(200, "text/plain; charset=utf-8", rendered.encode("utf-8"))
    answer: Dict[str, Any] = {"text": text}
    if response_format == "verbose_json":
        answer = {
            "task": "translate" if translate else "transcribe",
            "language": "english" if translate or not _has_cjk(text) else "chinese",
            "duration": round(seconds, 3),
            "text": text,
        }
        if "word" in granularities:
            answer["words"] = _words(text, seconds)
        if "segment" in granularities:
            answer["segments"] = [
                {"id": n, "seek": 0, "start": start, "end": end, "text": piece, "temperature": 0.0}
                for n, (start, end, piece) in enumerate(timed)
            ]
    elif response_format == "diarized_json":
        answer["segments"] = [
            {"type": "transcript.text.segment", "id": f"seg_{n}", "start": start, "end": end,
             "text": piece, "speaker": "A"}
            for n, (start, end, piece) in enumerate(timed)
        ]  # fmt: skip
    answer["usage"] = usage
    return AudioAnswer(200, "application/json", _json(answer))


def _stream(
    shape: str, text: str, usage: Mapping[str, Any], *, model: str, number: int, created: int
) -> List[bytes]:
    if shape == "segments":
        return [_event({"text": piece}) for _, _, piece in _segments(text, 0.0)]
    if shape == "chunk":
        head = {"id": f"trsc-sim{number:06d}", "object": "transcription.chunk",
                "created": created, "model": model}  # fmt: skip

        def chunk(delta: Dict[str, Any], finish: Optional[str] = None, **extra: Any) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "stop_reason": None}
            return _event(dict(head, choices=[choice], **extra))

        events = [chunk({"content": piece}) for piece in pieces(text)]
        events.append(chunk({}, "stop"))
        tokens = {
            "prompt_tokens": usage.get("input_tokens", 0),
            "completion_tokens": usage.get("output_tokens", 0),
            "total_tokens": usage.get("total_tokens", 0),
        }
        events.append(_event(dict(head, choices=[], usage=tokens)))
        events.append(encode_event("[DONE]"))
        return events
    events = [
        _event({"type": "transcript.text.delta", "delta": piece, "logprobs": None})
        for piece in pieces(text)
    ]
    events.append(_event({"type": "transcript.text.done", "text": text, "usage": usage}))
    return events


def _segments(text: str, seconds: float) -> List[Tuple[float, float, str]]:
    """The text's sentences, timed in proportion to their length."""
    found, rest = sentences(text)
    parts = [*found, rest] if rest else found
    total = sum(len(p) for p in parts) or 1
    timed, start = [], 0.0
    for part in parts:
        end = start + seconds * len(part) / total
        timed.append((round(start, 3), round(end, 3), part))
        start = end
    return timed


def _words(text: str, seconds: float) -> List[Dict[str, Any]]:
    words = text.split()
    total = sum(len(w) for w in words) or 1
    timed, start = [], 0.0
    for word in words:
        end = start + seconds * len(word) / total
        timed.append({"word": word.strip(".,!?;:"), "start": round(start, 3), "end": round(end, 3)})
        start = end
    return timed


def _usage(model: str, text: str, seconds: float) -> Dict[str, Any]:
    if model == "whisper-1":  # billed by the second, as OpenAI reports it
        return {"type": "duration", "seconds": max(1, math.ceil(seconds))}
    audio = max(1, round(seconds * 10))
    output = len(pieces(text))
    return {
        "type": "tokens",
        "input_tokens": audio,
        "input_token_details": {"text_tokens": 0, "audio_tokens": audio},
        "output_tokens": output,
        "total_tokens": audio + output,
    }


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3600000)
    minutes, millis = divmod(millis, 60000)
    return f"{hours:02d}:{minutes:02d}:{millis // 1000:02d}{separator}{millis % 1000:03d}"


def _srt(timed: Sequence[Tuple[float, float, str]]) -> str:
    return "".join(
        f"{n}\n{_timestamp(start, ',')} --> {_timestamp(end, ',')}\n{text}\n\n"
        for n, (start, end, text) in enumerate(timed, 1)
    )


def _vtt(timed: Sequence[Tuple[float, float, str]]) -> str:
    cues = "".join(
        f"{_timestamp(start, '.')} --> {_timestamp(end, '.')}\n{text}\n\n"
        for start, end, text in timed
    )
    return "WEBVTT\n\n" + cues


def _has_cjk(text: str) -> bool:
    return any("\u2e80" <= char <= "\u9fff" for char in text)


# -- shared ---------------------------------------------------------------------------


def _check_model(
    model: Any, audio_models: Sequence[str], chat_models: Sequence[str], what: str
) -> Optional[AudioAnswer]:
    if not isinstance(model, str) or not model:
        return _error(400, "you must provide a model parameter", param="model")
    if model in audio_models:
        return None
    if model in chat_models:
        return _error(
            400,
            f"The model `{model}` does not support {what}; use one of {', '.join(audio_models)}.",
            param="model",
            code="model_not_supported",
        )
    return _error(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def _error(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    param: Optional[str] = None,
    code: Optional[str] = None,
) -> AudioAnswer:
    error = {"message": message, "type": type_, "param": param, "code": code}
    return AudioAnswer(status, "application/json", _json({"error": error}))


def _event(data: Mapping[str, Any]) -> bytes:
    return encode_event(json.dumps(data, ensure_ascii=False, separators=(",", ":")))


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
