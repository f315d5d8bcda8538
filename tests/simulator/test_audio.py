"""The simulator's audio endpoints: speech that carries its text, transcription
that reads it back, in every format and stream shape, with the faults."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import requests

from rawchat.protocol.audio import (
    SpeechStreamDecoder,
    TranscriptStreamDecoder,
    build_speech_request,
    build_transcription_request,
    parse_transcription,
    parse_wav,
    pcm_to_wav,
)
from rawchat.protocol.http import Headers
from rawchat.protocol.multipart import FormPart, MultipartForm, file_part, text_part
from rawchat.protocol.settings import Settings
from rawchat.simulator import SimRequest, SimulatorApp
from rawchat.simulator.audio import MultipartError, hear, parse_multipart, speak
from rawchat.simulator.faults import Drop

from ..conftest import KEY

SETTINGS = Settings(base_url="http://sim/v1", api_key=KEY)
TEXT = "Hello there. How are you today? 你好。"


def send(app, request, fault=""):
    headers = list(request.headers.items()) + ([("X-Rawchat-Fault", fault)] if fault else [])
    return app.handle(SimRequest("POST", request.target, Headers(headers), request.body))


def body_of(response):
    return response.body + b"".join(s for s in response.steps if isinstance(s, bytes))


def speech(app, text=TEXT, fault="", **params):
    params.setdefault("response_format", "wav")
    request = build_speech_request(SETTINGS, text, model="tts-1", voice="alloy", **params)
    return send(app, request, fault)


def transcription(app, audio, fault="", **params):
    request = build_transcription_request(
        SETTINGS,
        audio,
        model="gpt-4o-mini-transcribe",
        boundary="rawchat-b",
        filename="in.wav",
        **params,
    )
    return send(app, request, fault)


@pytest.fixture
def app():
    return SimulatorApp()


@pytest.fixture
def wav(app):
    return body_of(speech(app))


# -- speech ----------------------------------------------------------------------


def test_speech_is_a_wav_whose_length_follows_the_text_and_which_carries_it(app, wav):
    read = parse_wav(wav)
    assert (read.sample_rate, read.channels, read.bits_per_sample) == (24000, 1, 16)
    assert read.duration == pytest.approx(len(TEXT) * 0.06)
    assert read.info == {"ISFT": "rawchat simulator", "ICMT": TEXT}
    assert parse_wav(body_of(speech(app, TEXT * 2))).duration == pytest.approx(2 * read.duration)


def test_speech_is_deterministic_and_streamed_in_pieces(app, wav):
    response = speech(app)
    assert dict(response.headers)["Content-Type"] == "audio/wav"
    assert len(response.steps) == -(-len(wav) // 9600)
    assert body_of(speech(app)) == wav


def test_pcm_speech_is_the_bare_samples(app, wav):
    response = speech(app, response_format="pcm")
    assert dict(response.headers)["Content-Type"] == "audio/pcm"
    assert body_of(response) == parse_wav(wav).data


def test_sse_speech_decodes_to_the_same_audio_with_usage(app, wav):
    response = speech(app, stream_format="sse")
    decoder = SpeechStreamDecoder()
    audio = b"".join(decoder.feed(body_of(response)))
    assert audio == wav
    usage = decoder.close()
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (7, 42, 49)


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"model": "gpt-4o-mini"}, 400, "does not support speech"),
        ({"model": "nope"}, 404, "does not exist"),
        ({"voice": "robot"}, 400, "Invalid voice 'robot'"),
        ({"input": ""}, 400, "'input' must be a non-empty string"),
        ({"speed": 9}, 400, "'speed' must be a number"),
        ({"response_format": "ogg"}, 400, "Invalid response_format"),
    ],
)
def test_bad_speech_requests_are_refused_as_openai_does(body, status, message):
    request = dict({"model": "tts-1", "input": "Hi", "voice": "alloy"}, **body)
    answer = speak(json.dumps(request).encode(), models=("gpt-4o-mini",))
    assert answer.status == status
    assert message in json.loads(answer.body)["error"]["message"]


# -- transcription ------------------------------------------------------------------


def test_the_simulators_speech_is_transcribed_back_to_its_text(app, wav):
    response = transcription(app, wav)
    assert response.status == 200
    assert json.loads(response.body) == {
        "text": TEXT,
        "usage": {
            "type": "tokens",
            "input_tokens": 21,
            "input_token_details": {"text_tokens": 0, "audio_tokens": 21},
            "output_tokens": 7,
            "total_tokens": 28,
        },
    }


def test_other_audio_is_described_by_its_length():
    assert hear(pcm_to_wav(b"\0" * 96000)) == (
        "This is 2.00 seconds of audio. "
        "The rawchat simulator transcribes only the speech it made itself.",
        2.0,
    )
    assert hear(b"ID3" + b"\0" * 31997) == (
        "This is 32,000 bytes of audio. "
        "The rawchat simulator transcribes only the speech it made itself.",
        2.0,
    )


@pytest.mark.parametrize(
    "response_format, expected",
    [
        ("text", f"{TEXT}\n"),
        (
            "srt",
            "1\n00:00:00,000 --> 00:00:00,764\nHello there.\n\n"
            "2\n00:00:00,764 --> 00:00:01,909\nHow are you today?\n\n"
            "3\n00:00:01,909 --> 00:00:02,100\n你好。\n\n",
        ),
        (
            "vtt",
            "WEBVTT\n\n00:00:00.000 --> 00:00:00.764\nHello there.\n\n"
            "00:00:00.764 --> 00:00:01.909\nHow are you today?\n\n"
            "00:00:01.909 --> 00:00:02.100\n你好。\n\n",
        ),
    ],
)
def test_text_formats_are_served_and_read_back(app, wav, response_format, expected):
    response = transcription(app, wav, response_format=response_format)
    assert response.body.decode() == expected
    assert parse_transcription(response.body, response_format).text == TEXT


def test_verbose_json_times_segments_and_words(app, wav):
    response = transcription(
        app, wav, response_format="verbose_json", timestamp_granularities=["word", "segment"]
    )
    result = parse_transcription(response.body, "verbose_json")
    assert (result.text, result.language, result.duration) == (TEXT, "chinese", 2.1)
    assert [s.text for s in result.segments] == ["Hello there.", "How are you today?", "你好。"]
    assert [w.word for w in result.words] == [
        "Hello",
        "there",
        "How",
        "are",
        "you",
        "today",
        "你好。",
    ]
    assert result.words[-1].end == 2.1


def test_diarized_json_labels_the_speaker(app, wav):
    result = parse_transcription(
        body_of(transcription(app, wav, response_format="diarized_json")), "diarized_json"
    )
    assert {s.speaker for s in result.segments} == {"A"}


def test_a_translation_answers_with_the_same_text(app, wav):
    request = build_transcription_request(
        SETTINGS, wav, model="whisper-1", boundary="b", filename="a.wav", translate=True
    )
    assert json.loads(send(app, request).body) == {
        "text": TEXT,
        "usage": {"type": "duration", "seconds": 3},
    }


@pytest.mark.parametrize(
    "fault, shape",
    [("", "transcript.text"), ("chunk-shape", "chunk"), ("segment-shape", "segments")],
)
def test_each_stream_shape_decodes_back_to_the_text(app, wav, fault, shape):
    response = transcription(app, wav, fault=fault, stream=True)
    assert dict(response.headers)["Content-Type"] == "text/event-stream; charset=utf-8"
    decoder = TranscriptStreamDecoder()
    deltas = [
        d.text for step in response.steps if isinstance(step, bytes) for d in decoder.feed(step)
    ]
    assert decoder.shape == shape
    assert "".join(deltas) == decoder.close().text == TEXT


def test_the_openai_stream_is_these_events(app):
    audio = body_of(speech(app, "Hi you."))
    events = body_of(transcription(app, audio, stream=True)).decode()
    assert events == (
        'data: {"type":"transcript.text.delta","delta":"Hi","logprobs":null}\n\n'
        'data: {"type":"transcript.text.delta","delta":" you.","logprobs":null}\n\n'
        'data: {"type":"transcript.text.done","text":"Hi you.","usage":{"type":"tokens","input_tokens":4,'
        '"input_token_details":{"text_tokens":0,"audio_tokens":4},"output_tokens":2,"total_tokens":6}}\n\n'
    )


@pytest.mark.parametrize(
    "change, status, message",
    [
        ({"model": "gpt-4o-mini"}, 400, "does not support transcription"),
        ({"filename": "notes.txt"}, 400, "Invalid file format"),
        ({"drop_file": True}, 400, "you must provide a file parameter"),
        ({"response_format": "xml"}, 400, "Invalid response_format"),
    ],
)
def test_bad_uploads_are_refused_as_openai_does(app, change, status, message):
    parts = [text_part("model", change.get("model", "whisper-1"))]
    parts.append(text_part("response_format", change.get("response_format", "json")))
    if not change.get("drop_file"):
        parts.append(file_part("file", b"RIFF", change.get("filename", "a.wav")))
    form = MultipartForm(parts, "b")
    headers = Headers([("Authorization", f"Bearer {KEY}"), ("Content-Type", form.content_type)])
    response = app.handle(SimRequest("POST", "/v1/audio/transcriptions", headers, form.encode()))
    assert response.status == status
    assert message in json.loads(response.body)["error"]["message"]


def test_a_body_that_is_not_multipart_is_415_and_one_over_25_mb_is_413(app):
    headers = Headers([("Authorization", f"Bearer {KEY}"), ("Content-Type", "application/json")])
    assert app.handle(SimRequest("POST", "/v1/audio/transcriptions", headers, b"{}")).status == 415
    big = Headers(
        [("Authorization", f"Bearer {KEY}"), ("Content-Type", "multipart/form-data; boundary=b")]
    )
    response = app.handle(
        SimRequest("POST", "/v1/audio/transcriptions", big, b"\0" * (25 * 2**20 + 1))
    )
    assert response.status == 413
    assert (
        "Maximum content size limit (26214400) exceeded"
        in json.loads(response.body)["error"]["message"]
    )


def test_audio_endpoints_need_a_key_and_a_post(app):
    assert app.handle(SimRequest("POST", "/v1/audio/speech", Headers(), b"{}")).status == 401
    get = SimRequest("GET", "/v1/audio/speech", Headers([("Authorization", f"Bearer {KEY}")]))
    assert app.handle(get).status == 405


# -- faults ----------------------------------------------------------------------


@pytest.mark.parametrize("fault, status", [("413", 413), ("415", 415), ("429", 429)])
def test_status_faults_apply_to_uploads(app, wav, fault, status):
    response = transcription(app, wav, fault=fault)
    assert response.status == status
    assert "simulated fault" in json.loads(response.body)["error"]["message"]


@pytest.mark.parametrize("fault", ["no-done", "truncate=2", "chunk-shape,no-done", "drop-after=2"])
def test_a_cut_transcript_stream_is_reported_incomplete(app, wav, fault):
    steps = transcription(app, wav, fault=fault, stream=True).steps
    decoder = TranscriptStreamDecoder()
    for step in steps:
        if isinstance(step, bytes):
            decoder.feed(step)
    if "chunk-shape" in fault:  # its finish_reason arrived: whole without [DONE], as in chat
        assert decoder.close().text == TEXT
        return
    with pytest.raises(Exception, match="transcript is truncated"):
        decoder.close()


def test_an_error_mid_transcript_stream_is_a_stream_error(app, wav):
    steps = transcription(app, wav, fault="error-mid", stream=True).steps
    decoder = TranscriptStreamDecoder()
    with pytest.raises(Exception, match="error inside the stream") as caught:
        for step in steps:
            decoder.feed(step)
    assert caught.value.partial.text == "Hello"


def test_a_speech_body_is_cut_by_drop_after_and_its_sse_by_no_done(app, wav):
    steps = speech(app, fault="drop-after=2").steps
    assert [type(s) for s in steps] == [bytes, bytes, Drop]
    decoder = SpeechStreamDecoder()
    decoder.feed(body_of(speech(app, fault="no-done", stream_format="sse")))
    with pytest.raises(Exception, match="without speech.audio.done"):
        decoder.close()


def test_framing_faults_do_not_touch_a_speech_body(app, wav):
    assert body_of(speech(app, fault="crlf,bom,bad-json")) == wav


# -- the multipart parser ------------------------------------------------------------


def test_the_parser_reads_back_what_the_builder_wrote():
    parts = (
        text_part("model", "whisper-1"),
        text_part("timestamp_granularities[]", "word"),
        file_part("file", b"\r\n--not-it\r\n", 'say "hi"\n.wav', "audio/wav"),
    )
    form = MultipartForm(parts, "rawchat-0f")
    assert parse_multipart(form.encode(), form.content_type) == list(parts)


def test_the_parser_takes_a_preamble_a_quoted_boundary_and_rfc_5987_names():
    body = (
        b"preamble\r\n--q\r\n"
        b"Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''%E8%AF%AD.wav\r\n\r\n"
        b"x\r\n--q--\r\nepilogue"
    )
    assert parse_multipart(body, 'multipart/form-data; boundary="q"') == [
        FormPart("file", b"x", "语.wav")
    ]


@pytest.mark.parametrize(
    "body, content_type, message",
    [
        (b"", "application/json", "not multipart/form-data"),
        (b"", "multipart/form-data", "no usable boundary"),
        (
            b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nx",
            "multipart/form-data; boundary=b",
            "not closed",
        ),
        (
            b"--b\r\nX: y\r\n\r\nx\r\n--b--",
            "multipart/form-data; boundary=b",
            "without Content-Disposition",
        ),
        (
            b"--b\r\n" + b"X: " + b"y" * 9000 + b"\r\n\r\n",
            "multipart/form-data; boundary=b",
            "do not end within",
        ),
        (
            b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n" * 65 + b"--b--",
            "multipart/form-data; boundary=b",
            "more than 64 parts",
        ),
    ],
)
def test_the_parser_refuses_what_it_cannot_read_within_its_bounds(body, content_type, message):
    with pytest.raises(MultipartError, match=message):
        parse_multipart(body, content_type)


# -- over a real socket ---------------------------------------------------------------


def upload(sim, audio, filename="speech.wav"):
    return requests.post(
        sim.base_url + "/audio/transcriptions",
        headers={"Authorization": f"Bearer {KEY}"},
        data={"model": "whisper-1", "response_format": "text"},
        files={"file": (filename, audio, "audio/wav")},
        timeout=30,
    )


def test_a_speech_wav_uploaded_with_requests_is_transcribed_back_to_its_text(sim):
    spoken = requests.post(
        sim.base_url + "/audio/speech",
        headers={"Authorization": f"Bearer {KEY}"},
        json={"model": "tts-1", "input": TEXT, "voice": "alloy", "response_format": "wav"},
        timeout=30,
    )
    assert spoken.status_code == 200 and spoken.headers["content-type"] == "audio/wav"
    answer = upload(sim, spoken.content)
    assert answer.status_code == 200
    assert answer.text == TEXT + "\n"


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_real_speech_from_espeak_ng_goes_through_the_multipart_path(sim, tmp_path):
    path = tmp_path / "real.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "Hello from a real voice."], check=True)
    audio = path.read_bytes()
    answer = upload(sim, audio, "real.wav")
    assert answer.status_code == 200
    seconds = parse_wav(audio).duration
    assert answer.text == (
        f"This is {seconds:.2f} seconds of audio. "
        "The rawchat simulator transcribes only the speech it made itself.\n"
    )
