"""Client.transcribe / translate / transcribe_stream / speak against the simulator.

Requests are checked byte for byte: the multipart boundary is fixed with
``boundary=`` and the trace records what the transport sent.
"""

from __future__ import annotations

import base64
import io
import json
import re

import pytest

import rawchat
from rawchat.client.audio import SpeechStream, TranscriptStream
from rawchat.client.trace import HARTrace, JSONLinesTrace, MultiTrace, TextTrace, Trace
from rawchat.errors import (
    APIStatusError,
    BadRequestError,
    IncompleteStreamError,
    InvalidRequestError,
    NotFoundError,
)
from rawchat.protocol.audio import (
    MAX_UPLOAD_BYTES,
    AudioUsage,
    Segment,
    Transcription,
    Word,
    pcm_to_wav,
)
from rawchat.simulator.audio import SIMULATOR_SOFTWARE, synthesize

from ..conftest import KEY

TEXT = "Hello there. How are you?"
PCM = synthesize(TEXT)  # 1.5 s: 0.06 s a character
WAV = pcm_to_wav(PCM, info={"ISFT": SIMULATOR_SOFTWARE, "ICMT": TEXT})
BOUNDARY = "rawchat-test"


class Sent(Trace):
    """What the transport sent: each request and its headers (key redacted)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = []

    def on_request(self, exchange):
        self.requests.append((exchange.request, dict(exchange.headers)))

    @property
    def bodies(self):
        return [request.body for request, _ in self.requests]


@pytest.fixture
def sent():
    return Sent()


@pytest.fixture
def audio_client(sim, sent):
    clock = rawchat.Clock(sleep=lambda seconds: None)
    with rawchat.Client(KEY, sim.base_url, trace=sent, clock=clock) as client:
        yield client


def form(*fields, file=WAV, filename="hello.wav", kind="audio/wav"):
    """The multipart body the client must send, written out by hand."""
    body = b""
    for name, value in fields:
        body += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    body += (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {kind}\r\n\r\n"
    ).encode()
    return body + file + f"\r\n--{BOUNDARY}--\r\n".encode()


def fault(script):
    return {"X-Rawchat-Fault": script}


# -- transcribe ---------------------------------------------------------------------


def test_a_transcription_sends_one_literal_multipart_body_and_reads_the_answer(
    audio_client, sent, sim
):
    done = audio_client.transcribe(
        WAV, model="whisper-1", filename="hello.wav", boundary=BOUNDARY, language="en"
    )
    ((request, headers),) = sent.requests
    assert (request.method, request.url) == ("POST", sim.base_url + "/audio/transcriptions")
    assert headers["Content-Type"] == "multipart/form-data; boundary=rawchat-test"
    assert request.body == form(("model", "whisper-1"), ("language", "en"))
    assert done == Transcription(
        TEXT,
        "json",
        usage=AudioUsage(type="duration", seconds=2.0),
        body='{"text":"Hello there. How are you?","usage":{"type":"duration","seconds":2}}',
        raw={"text": TEXT, "usage": {"type": "duration", "seconds": 2}},
        request_id="req_sim000001",
    )


SEGMENTS = (Segment(0, 0.0, 0.75, "Hello there."), Segment(1, 0.75, 1.5, "How are you?"))
SRT = (
    "1\n00:00:00,000 --> 00:00:00,750\nHello there.\n\n"
    "2\n00:00:00,750 --> 00:00:01,500\nHow are you?\n\n"
)
VTT = (
    "WEBVTT\n\n00:00:00.000 --> 00:00:00.750\nHello there.\n\n"
    "00:00:00.750 --> 00:00:01.500\nHow are you?\n\n"
)


@pytest.mark.parametrize(
    "response_format, text, segments, body",
    [
        ("text", TEXT, (), TEXT + "\n"),
        ("srt", TEXT, SEGMENTS, SRT),
        ("vtt", TEXT, SEGMENTS, VTT),
    ],
)
def test_the_text_formats_keep_their_body_and_srt_and_vtt_give_segments(
    audio_client, response_format, text, segments, body
):
    done = audio_client.transcribe(WAV, model="whisper-1", response_format=response_format)
    assert (done.text, done.response_format, done.segments, done.body) == (
        text,
        response_format,
        segments,
        body,
    )
    assert done.usage is None


def test_verbose_json_brings_segments_words_language_and_duration(audio_client, sent):
    done = audio_client.transcribe(
        WAV,
        model="whisper-1",
        boundary=BOUNDARY,
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert sent.bodies == [
        form(
            ("model", "whisper-1"),
            ("response_format", "verbose_json"),
            ("timestamp_granularities[]", "word"),
            ("timestamp_granularities[]", "segment"),
            filename="audio.wav",
        )
    ]
    assert done.text == TEXT
    assert done.segments == SEGMENTS
    assert done.words == (
        Word("Hello", 0.0, 0.357),
        Word("there", 0.357, 0.786),
        Word("How", 0.786, 1.0),
        Word("are", 1.0, 1.214),
        Word("you", 1.214, 1.5),
    )
    assert (done.language, done.duration) == ("english", 1.5)
    assert done.usage == AudioUsage(type="duration", seconds=2.0)


def test_a_path_names_the_file_and_is_read_once(audio_client, sent, tmp_path):
    path = tmp_path / "talk.wav"
    path.write_bytes(WAV)
    assert audio_client.transcribe(path, model="whisper-1", boundary=BOUNDARY).text == TEXT
    assert audio_client.transcribe(str(path), model="whisper-1", boundary=BOUNDARY).text == TEXT
    assert sent.bodies == [form(("model", "whisper-1"), filename="talk.wav")] * 2


def test_a_file_object_is_read_from_its_position_and_named_by_its_name(
    audio_client, sent, tmp_path
):
    path = tmp_path / "talk.wav"
    path.write_bytes(WAV)
    with open(path, "rb") as opened:
        assert audio_client.transcribe(opened, model="whisper-1", boundary=BOUNDARY).text == TEXT
    named = io.BytesIO(b"junk" + WAV)
    named.seek(4)
    done = audio_client.transcribe(named, model="whisper-1", filename="b.wav", boundary=BOUNDARY)
    assert done.text == TEXT
    assert sent.bodies == [
        form(("model", "whisper-1"), filename="talk.wav"),
        form(("model", "whisper-1"), filename="b.wav"),
    ]


def test_the_file_name_chooses_the_part_type(audio_client, sent):
    mp3 = b"\xff\xfb" + b"\0" * 31998  # not WAV: "transcribed" by its size at 128 kbit/s
    done = audio_client.transcribe(
        mp3, model="whisper-1", filename="clip.mp3", boundary=BOUNDARY, response_format="text"
    )
    assert done.text == (
        "This is 32,000 bytes of audio. "
        "The rawchat simulator transcribes only the speech it made itself."
    )
    assert sent.bodies == [
        form(
            ("model", "whisper-1"),
            ("response_format", "text"),
            file=mp3,
            filename="clip.mp3",
            kind="audio/mpeg",
        )
    ]


def test_a_translation_goes_to_its_own_endpoint(audio_client, sent, sim):
    done = audio_client.translate(WAV, model="whisper-1", response_format="text")
    ((request, _),) = sent.requests
    assert request.url == sim.base_url + "/audio/translations"
    assert (done.text, done.body) == (TEXT, TEXT + "\n")


@pytest.mark.parametrize("script", ["500", "429", "503"])
def test_a_retry_resends_the_identical_body(audio_client, sent, script):
    done = audio_client.transcribe(
        WAV, model="whisper-1", extra_headers=fault(script), response_format="text"
    )
    assert done.text == TEXT
    first, second = sent.bodies
    assert first == second
    assert first.startswith(b"--rawchat-")  # a random boundary, drawn once


# -- refused before upload, and the servers' refusals ---------------------------------


def test_a_file_over_the_limit_is_refused_before_it_is_read_or_sent(audio_client, sent, tmp_path):
    path = tmp_path / "long.wav"
    with open(path, "wb") as out:
        out.truncate(MAX_UPLOAD_BYTES + 1)  # sparse: nothing is written, nothing read
    with pytest.raises(
        InvalidRequestError, match="over the 26,214,400-byte upload limit"
    ) as raised:
        audio_client.transcribe(path, model="whisper-1")
    assert "cut the audio into shorter pieces" in raised.value.hint
    with pytest.raises(InvalidRequestError, match="'a.wav' is 9 bytes, over the 8-byte"):
        audio_client.transcribe(b"123456789", model="whisper-1", filename="a.wav", max_bytes=8)
    assert sent.requests == []


class Pipe(io.RawIOBase):
    """A file object that cannot seek, as a pipe or a socket."""

    def __init__(self, data):
        self.data = io.BytesIO(data)

    def readable(self):
        return True

    def read(self, size=-1):
        return self.data.read(size)


def test_an_unseekable_file_is_read_no_further_than_past_the_limit(audio_client, sent):
    pipe = Pipe(b"x" * 20)
    with pytest.raises(InvalidRequestError, match="'in.wav' is 9 bytes, over the 8-byte"):
        audio_client.transcribe(pipe, model="whisper-1", filename="in.wav", max_bytes=8)
    assert pipe.data.tell() == 9
    assert sent.requests == []


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda c: c.transcribe(WAV), "no transcription model given"),
        (lambda c: c.transcribe(WAV, model="whisper-1", filename="a.txt"), "'a.txt' is not an"),
        (lambda c: c.transcribe("missing.wav", model="whisper-1"), "cannot read the audio file"),
        (lambda c: c.transcribe(io.StringIO("text"), model="whisper-1"), "opened as text"),
        (lambda c: c.translate(WAV, model="whisper-1", language="fr"), "take no 'language'"),
        (lambda c: c.speak("Hi", model="tts-1"), "no voice given"),
        (lambda c: c.speak("Hi", voice="alloy"), "no speech model given"),
    ],
)
def test_bad_audio_requests_are_refused_before_sending(audio_client, sent, call, message):
    with pytest.raises(InvalidRequestError, match=message):
        call(audio_client)
    assert sent.requests == []


def test_a_413_says_the_upload_is_too_large(audio_client):
    with pytest.raises(APIStatusError) as raised:
        audio_client.transcribe(WAV, model="whisper-1", extra_headers=fault("413"))
    assert raised.value.status_code == 413
    assert raised.value.hint.startswith("the upload is larger than the server accepts (25 MB")


def test_a_415_says_which_content_type_each_endpoint_takes(audio_client):
    with pytest.raises(APIStatusError) as raised:
        audio_client.transcribe(WAV, model="whisper-1", extra_headers=fault("415"))
    assert raised.value.status_code == 415
    assert raised.value.hint == (
        "the server refused the request's Content-Type: transcription takes "
        "multipart/form-data and speech takes JSON (a proxy may have rewritten it)"
    )


def test_a_chat_model_does_not_transcribe_or_speak_and_the_hint_names_those_that_do(
    audio_client,
):
    with pytest.raises(BadRequestError) as raised:
        audio_client.transcribe(WAV, model="gpt-4o-mini")
    assert raised.value.hint.startswith(
        "this model does not transcribe here: OpenAI's are gpt-4o-mini-transcribe, "
        "gpt-4o-transcribe, whisper-1"
    )
    with pytest.raises(BadRequestError) as raised:
        with audio_client.speak("Hi", model="gpt-4o-mini", voice="alloy"):
            pass
    assert raised.value.hint.startswith(
        "this model does not speak here: OpenAI's are gpt-4o-mini-tts, tts-1, tts-1-hd"
    )
    with pytest.raises(NotFoundError) as raised:
        audio_client.transcribe(WAV, model="whisper-9")
    assert "this model does not transcribe here" in raised.value.hint


# -- streamed transcripts -------------------------------------------------------------

WORDS = ["Hello", " there.", " How", " are", " you?"]


@pytest.mark.parametrize(
    "script, shape, texts, usage",
    [
        (
            "",
            "transcript.text",
            WORDS,
            AudioUsage("tokens", 15, 5, 20, audio_tokens=15),
        ),
        ("chunk-shape", "chunk", WORDS, AudioUsage("", 15, 5, 20)),
        ("segment-shape", "segments", ["Hello there.", " How are you?"], None),
    ],
)
def test_a_streamed_transcript_is_read_in_each_shape_servers_send(
    audio_client, sent, script, shape, texts, usage
):
    with audio_client.transcribe_stream(
        WAV, model="gpt-4o-mini-transcribe", boundary=BOUNDARY, extra_headers=fault(script)
    ) as stream:
        assert isinstance(stream, TranscriptStream)
        assert list(stream.text()) == texts
    assert stream.shape == shape
    done = stream.transcription
    assert (done.text, done.usage, done.request_id) == (TEXT, usage, "req_sim000001")
    assert sent.bodies == [
        form(("model", "gpt-4o-mini-transcribe"), ("stream", "true"), filename="audio.wav")
    ]


def test_a_transcript_cut_before_its_end_raises_with_the_text_so_far(audio_client):
    with audio_client.transcribe_stream(
        WAV, model="gpt-4o-mini-transcribe", extra_headers=fault("no-done")
    ) as stream:
        texts = []
        with pytest.raises(IncompleteStreamError) as raised:
            for text in stream.text():
                texts.append(text)
    assert texts == WORDS
    assert raised.value.partial.text == TEXT


@pytest.mark.parametrize("script", ["500", "drop-after=0"])
def test_a_transcript_stream_that_fails_before_any_text_is_retried_with_the_same_body(
    audio_client, sent, script
):
    with audio_client.transcribe_stream(
        WAV, model="gpt-4o-mini-transcribe", extra_headers=fault(script)
    ) as stream:
        assert "".join(stream.text()) == TEXT
    assert stream.retries_taken == 1
    first, second = sent.bodies
    assert first == second


# -- speech ----------------------------------------------------------------------------


def test_speech_hands_over_the_audio_as_it_arrives(audio_client, sent, sim):
    with audio_client.speak(TEXT, model="tts-1", voice="alloy", response_format="wav") as audio:
        assert isinstance(audio, SpeechStream)
        pieces = list(audio.iter_bytes())
    ((request, headers),) = sent.requests
    assert request.url == sim.base_url + "/audio/speech"
    assert (headers["Content-Type"], headers["Accept"]) == ("application/json", "*/*")
    assert json.loads(request.body) == {
        "model": "tts-1",
        "input": TEXT,
        "voice": "alloy",
        "response_format": "wav",
    }
    assert b"".join(pieces) == WAV
    assert [len(p) for p in pieces] == [9600] * 7 + [len(WAV) - 9600 * 7]
    assert (audio.content_type, audio.usage) == ("audio/wav", None)
    assert (audio.speech.audio_bytes, audio.speech.request_id) == (len(WAV), "req_sim000001")


def test_sse_speech_is_decoded_from_base64_with_the_usage_at_the_end(audio_client, sent):
    with audio_client.speak(
        TEXT, model="gpt-4o-mini-tts", voice="coral", response_format="pcm", stream_format="sse"
    ) as audio:
        assert b"".join(audio.iter_bytes()) == PCM
    ((_, headers),) = sent.requests
    assert headers["Accept"] == "text/event-stream"
    assert audio.content_type == "text/event-stream"
    assert audio.usage == AudioUsage("", 5, 30, 35)
    assert audio.speech.usage == audio.usage


@pytest.mark.parametrize(
    "params, name, expected",
    [
        ({"response_format": "wav"}, "out.wav", WAV),
        ({"response_format": "pcm"}, "out.wav", pcm_to_wav(PCM)),
        ({"response_format": "pcm"}, "out.pcm", PCM),
        ({"response_format": "pcm", "stream_format": "sse"}, "OUT.WAV", pcm_to_wav(PCM)),
    ],
)
def test_save_writes_the_audio_and_wraps_pcm_in_wav_for_a_wav_path(
    audio_client, tmp_path, params, name, expected
):
    path = tmp_path / name
    with audio_client.speak(TEXT, model="tts-1", voice="alloy", **params) as audio:
        speech = audio.save(path)
    assert path.read_bytes() == expected
    assert speech.audio_bytes == len(PCM if params["response_format"] == "pcm" else WAV)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_a_speech_cut_after_audio_was_handed_over_leaves_no_file(audio_client, tmp_path):
    path = tmp_path / "cut.wav"
    with audio_client.speak(
        TEXT, model="tts-1", voice="alloy", response_format="wav",
        extra_headers=fault("drop-after=2"),
    ) as audio:  # fmt: skip
        with pytest.raises(rawchat.APIConnectionError) as raised:
            audio.save(path)
    assert raised.value.partial.audio_bytes == 2 * 9600
    assert list(tmp_path.iterdir()) == []


def test_sse_speech_without_its_done_event_is_incomplete(audio_client):
    with audio_client.speak(
        TEXT, model="tts-1", voice="alloy", stream_format="sse", extra_headers=fault("no-done")
    ) as audio:
        with pytest.raises(IncompleteStreamError, match="without speech.audio.done"):
            b"".join(audio.iter_bytes())


def test_speech_is_retried_after_a_500_before_any_audio(audio_client, sent):
    with audio_client.speak(
        "Hi", model="tts-1", voice="alloy", extra_headers=fault("500")
    ) as audio:
        audio_bytes = b"".join(audio.iter_bytes())
    assert audio_bytes[:4] == b"RIFF"
    assert audio.retries_taken == 1
    assert sent.bodies[0] == sent.bodies[1]


@pytest.mark.parametrize("stream_format", ["audio", "sse"])
def test_speech_that_stalls_after_audio_says_how_much_arrived(sim, stream_format):
    timeout = rawchat.Timeout(5, 0.3)
    with rawchat.Client(KEY, sim.base_url, timeout=timeout) as client:
        with client.speak(
            TEXT, model="tts-1", voice="alloy", stream_format=stream_format,
            extra_headers=fault("stall=2"),
        ) as audio:  # fmt: skip
            with pytest.raises(rawchat.APITimeoutError) as raised:
                b"".join(audio.iter_bytes())
    host = sim.base_url.split("/")[2]
    assert re.fullmatch(
        f"the speech from {host} stalled: nothing for [0-9.]+ s after [0-9,]+ bytes of audio",
        raised.value.message,
    )
    assert raised.value.partial.audio_bytes > 0


# -- traces ------------------------------------------------------------------------------


def test_a_trace_shows_audio_by_its_size_and_type_never_its_bytes(sim):
    out = io.StringIO()
    with rawchat.Client(KEY, sim.base_url, trace=TextTrace(out)) as client:
        client.transcribe(WAV, model="whisper-1", boundary=BOUNDARY, response_format="text")
        with client.speak("Hi", model="tts-1", voice="alloy", response_format="wav") as audio:
            b"".join(audio.iter_bytes())
    lines = out.getvalue().splitlines()
    assert lines[lines.index("#1 >") + 1 :][:10] == [
        "#1 > --rawchat-test",
        '#1 > Content-Disposition: form-data; name="model"',
        "#1 > ",
        "#1 > whisper-1",
        "#1 > --rawchat-test",
        '#1 > Content-Disposition: form-data; name="response_format"',
        "#1 > ",
        "#1 > text",
        "#1 > --rawchat-test",
        '#1 > Content-Disposition: form-data; name="file"; filename="audio.wav"',
    ]
    assert f"#1 > <{len(WAV):,} bytes of audio/wav>" in lines
    assert "RIFF" not in out.getvalue()
    assert [line.split("B  ")[1] for line in lines if line.startswith("#2 <  ")] == [
        "<5,854 bytes of audio/wav>"
    ]


def test_a_har_file_lists_the_form_fields_and_keeps_the_audio_answer_in_base64(sim, tmp_path):
    path = tmp_path / "audio.har"
    lines = io.StringIO()
    trace = MultiTrace([HARTrace(str(path)), JSONLinesTrace(lines)])
    with rawchat.Client(KEY, sim.base_url, trace=trace) as client:
        client.transcribe(WAV, model="whisper-1", boundary=BOUNDARY)
        with client.speak("Hi", model="tts-1", voice="alloy", response_format="pcm") as audio:
            pcm = b"".join(audio.iter_bytes())
    trace.close()
    upload, speech = json.loads(path.read_text())["log"]["entries"]
    assert upload["request"]["postData"] == {
        "mimeType": "multipart/form-data; boundary=rawchat-test",
        "params": [
            {"name": "model", "value": "whisper-1"},
            {"name": "file", "fileName": "audio.wav", "contentType": "audio/wav"},
        ],
    }
    content = speech["response"]["content"]
    assert (content["mimeType"], content["encoding"]) == ("audio/pcm", "base64")
    assert base64.b64decode(content["text"]) == pcm
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert records[0]["body"].splitlines()[-2:] == [
        f"<{len(WAV):,} bytes of audio/wav>",
        "--rawchat-test--",
    ]
    assert [r["bytes"] for r in records if r["event"] == "body" and r["exchange"] == 2] == [
        "<5,760 bytes of audio/pcm>"
    ]
