"""Audio requests, transcriptions in every format, the three transcript stream
shapes, speech streams, WAV, and sentences for the talk loop."""

from __future__ import annotations

import base64
import json

import pytest

from rawchat.errors import IncompleteStreamError, InvalidRequestError, StreamError
from rawchat.protocol.audio import (
    AudioUsage,
    Segment,
    SpeechStreamDecoder,
    TranscriptStreamDecoder,
    Word,
    audio_error,
    build_speech_request,
    build_transcription_request,
    check_upload,
    parse_transcription,
    parse_wav,
    pcm_to_wav,
    sentences,
    wav_header,
)
from rawchat.protocol.http import HTTPResponse
from rawchat.protocol.settings import Settings

from ..feeds import FEEDS

SETTINGS = Settings(base_url="https://api.openai.com/v1", api_key="sk-test-abcdefghijkl")
AZURE = Settings(
    base_url="https://r.openai.azure.com/openai",
    api_key="k" * 32,
    auth="api-key",
    api_version="2025-03-01-preview",
    profile="azure",
)


# -- requests -------------------------------------------------------------------


def test_a_transcription_request_is_these_exact_bytes():
    request = build_transcription_request(
        SETTINGS,
        b"RIFF",
        model="gpt-4o-mini-transcribe",
        boundary="B0",
        filename="q.wav",
        language="en",
        stream=True,
    )
    assert request.method == "POST"
    assert request.url == "https://api.openai.com/v1/audio/transcriptions"
    assert request.headers["content-type"] == "multipart/form-data; boundary=B0"
    assert request.headers["accept"] == "text/event-stream"
    assert request.stream and request.form is not None
    assert request.body == (
        b'--B0\r\nContent-Disposition: form-data; name="model"\r\n\r\ngpt-4o-mini-transcribe\r\n'
        b'--B0\r\nContent-Disposition: form-data; name="language"\r\n\r\nen\r\n'
        b'--B0\r\nContent-Disposition: form-data; name="stream"\r\n\r\ntrue\r\n'
        b'--B0\r\nContent-Disposition: form-data; name="file"; filename="q.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\nRIFF\r\n"
        b"--B0--\r\n"
    )


def test_timestamp_granularities_go_as_a_list_field():
    request = build_transcription_request(
        SETTINGS,
        b"x",
        model="whisper-1",
        boundary="B",
        filename="a.mp3",
        response_format="verbose_json",
        timestamp_granularities=["word"],
    )
    assert b'name="timestamp_granularities[]"\r\n\r\nword\r\n' in request.body
    assert b"Content-Type: audio/mpeg" in request.body


def test_a_translation_goes_to_its_own_path_and_azure_names_the_deployment():
    request = build_transcription_request(
        AZURE, b"x", model="my-whisper", boundary="B", filename="a.wav", translate=True
    )
    assert request.url == (
        "https://r.openai.azure.com/openai/deployments/my-whisper/audio/translations"
        "?api-version=2025-03-01-preview"
    )
    assert request.headers["api-key"] == "k" * 32


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model": None}, "no transcription model given"),
        ({"filename": "notes.txt"}, "'notes.txt' is not an audio format"),
        ({"filename": "noextension"}, "is not an audio format"),
        ({"response_format": "xml"}, "response_format 'xml' is not a transcription format"),
        ({"timestamp_granularities": ["word"]}, "needs response_format='verbose_json'"),
        (
            {"timestamp_granularities": ["char"], "response_format": "verbose_json"},
            "'char' is not 'word' or 'segment'",
        ),
        ({"temperature": 2}, "temperature 2 is not a number from 0 to 1"),
        ({"translate": True, "language": "fr"}, "translations take no 'language'"),
        ({"translate": True, "stream": True}, "translations take no 'stream'"),
    ],
)
def test_a_bad_transcription_request_is_refused_before_sending(kwargs, message):
    arguments = dict({"model": "whisper-1", "boundary": "B", "filename": "a.wav"}, **kwargs)
    with pytest.raises(InvalidRequestError, match=message):
        build_transcription_request(SETTINGS, b"audio", **arguments)


def test_a_file_over_the_limit_is_refused_from_its_size_alone():
    with pytest.raises(
        InvalidRequestError, match="26,214,401 bytes, over the 26,214,400-byte"
    ) as caught:
        check_upload(26214401, "long.wav")
    assert "ffmpeg" in caught.value.hint
    assert check_upload(26214400, "LONG.WAV") == "audio/wav"
    with pytest.raises(InvalidRequestError, match="is empty"):
        check_upload(0, "a.wav")


def test_a_speech_request_is_json_read_as_a_stream():
    request = build_speech_request(
        SETTINGS, "Hello.", model="gpt-4o-mini-tts", voice="coral", response_format="pcm"
    )
    assert request.url == "https://api.openai.com/v1/audio/speech"
    assert request.body == (
        b'{"model":"gpt-4o-mini-tts","input":"Hello.","voice":"coral","response_format":"pcm"}'
    )
    assert request.stream
    assert request.headers["accept"] == "*/*"
    assert request.headers["content-type"] == "application/json"
    sse = build_speech_request(SETTINGS, "Hi", model="m", voice="v", stream_format="sse")
    assert sse.headers["accept"] == "text/event-stream"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model": ""}, "no speech model given"),
        ({"input": "  "}, "there is no text to speak"),
        ({"input": "x" * 4097}, "4,097 characters, over the 4,096-character limit"),
        ({"voice": None}, "no voice given"),
        ({"response_format": "ogg"}, "'ogg' is not a speech format"),
        ({"stream_format": "chunks"}, "'chunks' is not 'audio' or 'sse'"),
        ({"speed": 5}, "speed 5 is not a number from 0.25 to 4"),
    ],
)
def test_a_bad_speech_request_is_refused_before_sending(kwargs, message):
    arguments = dict({"input": "Hi.", "model": "tts-1", "voice": "alloy"}, **kwargs)
    text = arguments.pop("input")
    with pytest.raises(InvalidRequestError, match=message):
        build_speech_request(SETTINGS, text, **arguments)


# -- transcriptions in each format ------------------------------------------------

SRT = "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n00:00:01,500 --> 00:01:02,250\nHow are\nyou?\n\n"
VTT = "WEBVTT\n\n00:00.000 --> 00:01.500\nHello there.\n\n00:00:01.500 --> 00:01:02.250\nHow are you?\n"
CUES = (Segment(0, 0.0, 1.5, "Hello there."), Segment(1, 1.5, 62.25, "How are you?"))


@pytest.mark.parametrize(
    "body, response_format, text, segments",
    [
        (b"Hello there. How are you?\n", "text", "Hello there. How are you?", ()),
        (SRT.encode(), "srt", "Hello there. How are you?", CUES),
        (VTT.encode(), "vtt", "Hello there. How are you?", CUES),
    ],
)
def test_text_formats_keep_the_body_and_read_cues_into_segments(
    body, response_format, text, segments
):
    transcription = parse_transcription(body, response_format, "text/plain")
    assert transcription.text == text
    assert transcription.segments == segments
    assert transcription.body == body.decode()
    assert transcription.response_format == response_format


def test_json_gives_the_text_and_the_usage():
    body = b'{"text":"Hi.","usage":{"type":"tokens","input_tokens":14,"input_token_details":{"text_tokens":0,"audio_tokens":14},"output_tokens":3,"total_tokens":17}}'
    transcription = parse_transcription(body, "json")
    assert transcription.text == "Hi."
    assert transcription.usage == AudioUsage("tokens", 14, 3, 17, audio_tokens=14)
    assert transcription.body == body.decode()


def test_verbose_json_gives_language_duration_segments_and_words():
    body = {
        "task": "transcribe",
        "language": "english",
        "duration": 1.5,
        "text": "Hi there.",
        "words": [
            {"word": "Hi", "start": 0.0, "end": 0.5},
            {"word": "there", "start": 0.5, "end": 1.5},
        ],
        "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": 1.5, "text": " Hi there."}],
        "usage": {"type": "duration", "seconds": 2},
    }
    transcription = parse_transcription(json.dumps(body).encode(), "verbose_json")
    assert transcription.language == "english"
    assert transcription.duration == 1.5
    assert transcription.words == (Word("Hi", 0.0, 0.5), Word("there", 0.5, 1.5))
    assert transcription.segments == (Segment(0, 0.0, 1.5, " Hi there."),)
    assert transcription.usage == AudioUsage("duration", seconds=2.0)


def test_a_json_answer_to_a_text_request_is_read_as_json():
    assert parse_transcription(b'{"text": "Hi."}', "text", "application/json").text == "Hi."


def test_a_json_format_that_is_not_json_says_so():
    with pytest.raises(Exception, match="expected a JSON transcription"):
        parse_transcription(b"Hi.", "json")


# -- transcript streams: three shapes -------------------------------------------


def sse(*objects):
    return b"".join(
        b"data: "
        + (o if isinstance(o, bytes) else json.dumps(o, ensure_ascii=False).encode())
        + b"\n\n"
        for o in objects
    )


OPENAI = sse(
    {"type": "transcript.text.delta", "delta": "Hello", "logprobs": None},
    {"type": "transcript.text.delta", "delta": " 世界."},
    {
        "type": "transcript.text.done",
        "text": "Hello 世界.",
        "usage": {"type": "tokens", "input_tokens": 10, "output_tokens": 3, "total_tokens": 13},
    },
)
CHUNKS = sse(
    {
        "object": "transcription.chunk",
        "choices": [{"delta": {"content": "Hello"}, "finish_reason": None}],
    },
    {
        "object": "transcription.chunk",
        "choices": [{"delta": {"content": " 世界."}, "finish_reason": None}],
    },
    {"object": "transcription.chunk", "choices": [{"delta": {}, "finish_reason": "stop"}]},
    {
        "object": "transcription.chunk",
        "choices": [],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
    },
    b"[DONE]",
)
SEGMENTS = sse({"text": "Hello"}, {"text": "世界."})
USAGE = AudioUsage(input_tokens=10, output_tokens=3, total_tokens=13)


@pytest.mark.parametrize("feed", FEEDS)
@pytest.mark.parametrize(
    "stream, shape, deltas, usage",
    [
        (OPENAI, "transcript.text", ["Hello", " 世界."], AudioUsage("tokens", 10, 3, 13)),
        (CHUNKS, "chunk", ["Hello", " 世界."], USAGE),
        (SEGMENTS, "segments", ["Hello", " 世界."], None),
    ],
)
def test_each_transcript_shape_decodes_alike_however_the_bytes_are_cut(
    feed, stream, shape, deltas, usage
):
    decoder = TranscriptStreamDecoder()
    got = [d.text for piece in feed(stream) for d in decoder.feed(piece)]
    transcription = decoder.close()
    assert "".join(got) == "".join(deltas)
    assert decoder.shape == shape
    assert transcription.text == "".join(deltas)
    assert transcription.usage == usage


def test_segments_are_joined_with_a_space_except_between_cjk_texts():
    decoder = TranscriptStreamDecoder()
    deltas = decoder.feed(
        sse(
            {"text": "Hello there."},
            {"text": "How are you?"},
            {"text": " Fine."},
            {"text": "好。"},
            {"text": "再见。"},
        )
    )
    assert [d.text for d in deltas] == [
        "Hello there.",
        " How are you?",
        " Fine.",
        " 好。",
        "再见。",
    ]


def test_a_done_event_with_more_text_than_its_deltas_hands_over_the_rest():
    decoder = TranscriptStreamDecoder()
    deltas = decoder.feed(
        sse(
            {"type": "transcript.text.delta", "delta": "Hel"},
            {"type": "transcript.text.done", "text": "Hello."},
        )
    )
    assert [d.text for d in deltas] == ["Hel", "lo."]
    assert decoder.close().text == "Hello."


@pytest.mark.parametrize(
    "stream",
    [
        OPENAI[: OPENAI.rindex(b"data:")],
        CHUNKS[: CHUNKS.index(b'data: {"object": "transcription.chunk", "choices": [{"delta": {}')],
        b"",
    ],
)
def test_a_transcript_stream_cut_before_its_end_is_incomplete_with_the_text_so_far(stream):
    decoder = TranscriptStreamDecoder()
    decoder.feed(stream)
    with pytest.raises(IncompleteStreamError, match="the transcript is truncated") as caught:
        decoder.close()
    assert caught.value.partial.text == ("Hello 世界." if stream else "")


@pytest.mark.parametrize(
    "event",
    [
        b'data: {"error": {"message": "boom", "type": "server_error", "code": "x"}}\n\n',
        b'event: error\ndata: {"message": "boom"}\n\n',
        b'data: {"type": "error", "error": {"message": "boom"}}\n\n',
    ],
)
def test_an_error_inside_a_transcript_stream_raises_with_the_text_so_far(event):
    decoder = TranscriptStreamDecoder()
    with pytest.raises(StreamError, match="boom") as caught:
        decoder.feed(sse({"type": "transcript.text.delta", "delta": "Hi"}) + event)
    assert caught.value.partial.text == "Hi"


def test_a_malformed_transcript_event_says_so():
    with pytest.raises(StreamError, match="malformed transcript event, not JSON"):
        TranscriptStreamDecoder().feed(b"data: {oops\n\n")


def test_events_after_the_end_are_counted_not_read():
    decoder = TranscriptStreamDecoder()
    decoder.feed(
        CHUNKS + sse({"object": "transcription.chunk", "choices": [{"delta": {"content": "late"}}]})
    )
    assert decoder.close().text == "Hello 世界."
    assert decoder.ignored_events == 1


def test_a_whole_transcription_answering_a_stream_request_is_one_delta():
    decoder = TranscriptStreamDecoder()
    assert decoder.feed_json({"text": "Hi."}).text == "Hi."
    assert decoder.close().text == "Hi."


# -- speech streams --------------------------------------------------------------

AUDIO = bytes(range(256)) * 3
SPEECH = sse(
    {"type": "speech.audio.delta", "audio": base64.b64encode(AUDIO[:500]).decode()},
    {"type": "speech.audio.delta", "audio": base64.b64encode(AUDIO[500:]).decode()},
    {
        "type": "speech.audio.done",
        "usage": {"input_tokens": 2, "output_tokens": 40, "total_tokens": 42},
    },
)


@pytest.mark.parametrize("feed", FEEDS)
def test_speech_events_decode_to_the_audio_bytes_however_they_are_cut(feed):
    decoder = SpeechStreamDecoder()
    audio = b"".join(p for piece in feed(SPEECH) for p in decoder.feed(piece))
    assert audio == AUDIO
    assert decoder.close() == AudioUsage(input_tokens=2, output_tokens=40, total_tokens=42)


def test_a_speech_stream_without_its_done_event_is_cut_short():
    decoder = SpeechStreamDecoder()
    decoder.feed(SPEECH[: SPEECH.rindex(b"data:")])
    with pytest.raises(
        IncompleteStreamError, match="after 768 bytes of audio without speech.audio.done"
    ):
        decoder.close()


def test_speech_audio_that_is_not_base64_is_a_stream_error():
    with pytest.raises(StreamError, match="audio is not base64"):
        SpeechStreamDecoder().feed(sse({"type": "speech.audio.delta", "audio": "@@@"}))


# -- WAV ---------------------------------------------------------------------------


def test_a_wav_header_for_pcm_is_44_bytes_of_riff():
    assert wav_header(4) == (
        b"RIFF" + (40).to_bytes(4, "little") + b"WAVE"
        b"fmt "
        + (16).to_bytes(4, "little")
        + b"\x01\x00\x01\x00"
        + (24000).to_bytes(4, "little")
        + (48000).to_bytes(4, "little")
        + b"\x02\x00\x10\x00"
        b"data" + (4).to_bytes(4, "little")
    )


def test_a_streaming_wav_header_says_its_size_is_unknown():
    header = wav_header()
    assert header[4:8] == header[40:44] == b"\xff\xff\xff\xff"
    assert parse_wav(header + b"\x00\x01" * 24000).duration == 1.0


def test_a_wav_carries_its_info_tags_and_reads_back():
    wav = pcm_to_wav(b"\x01\x00" * 12000, info={"ICMT": "你好, world"})
    read = parse_wav(wav)
    assert (read.sample_rate, read.channels, read.bits_per_sample, read.duration) == (
        24000,
        1,
        16,
        0.5,
    )
    assert read.info == {"ICMT": "你好, world"}


@pytest.mark.parametrize("data", [b"", b"ID3\x03", b"RIFF\x00\x00\x00\x00WAVE"])
def test_what_is_not_a_pcm_wav_is_a_value_error(data):
    with pytest.raises(ValueError):
        parse_wav(data)


# -- sentences ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, done, rest",
    [
        ("Hello there. How are", ["Hello there."], "How are"),
        ("Hello there.", [], "Hello there."),
        ("Pi is 3.14 today! Yes? ok", ["Pi is 3.14 today!", "Yes?"], "ok"),
        ('He said "stop." Then', ['He said "stop."'], "Then"),
        ("1. First item. 2. Sec", ["1. First item."], "2. Sec"),
        ("你好。今天天气很好！明天", ["你好。", "今天天气很好！"], "明天"),
        ("真的吗？”他问", ["真的吗？”"], "他问"),
        ("", [], ""),
    ],
)
def test_sentences_end_at_terminators_a_stream_cannot_take_back(text, done, rest):
    assert sentences(text) == (done, rest)


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, body, path, hint",
    [
        (
            413,
            b'{"error": {"message": "Maximum content size limit"}}',
            "/v1/audio/transcriptions",
            "larger than the server accepts",
        ),
        (
            415,
            b'{"error": {"message": "Unsupported"}}',
            "/v1/audio/transcriptions",
            "multipart/form-data",
        ),
        (
            400,
            b'{"error": {"message": "Invalid file format.", "param": "file"}}',
            "/v1/audio/transcriptions",
            "could not read the audio",
        ),
        (
            400,
            b'{"error": {"message": "bad", "param": "model"}}',
            "/v1/audio/transcriptions",
            "does not transcribe here",
        ),
        (
            400,
            b'{"error": {"message": "bad", "param": "model"}}',
            "/v1/audio/speech",
            "does not speak here",
        ),
        (404, b'{"error": {"message": "Not found"}}', "/v1/audio/speech", "no audio endpoints"),
    ],
)
def test_audio_errors_get_hints_that_name_the_cause(status, body, path, hint):
    response = HTTPResponse(
        status, {"Content-Type": "application/json"}, body, url="http://h" + path
    )
    assert hint in audio_error(response).hint
