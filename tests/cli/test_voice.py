"""rawchat transcribe, speak and talk, against the built-in simulator."""

from __future__ import annotations

import json
import platform
import re

import pytest

from rawchat.cli.main import main
from rawchat.version import __version__

QUESTION = "What is SSE? Say it in short."
AGENT = f"rawchat/{__version__} python/{platform.python_version()}"
NOTE = (
    "rawchat: no API key or base URL set, so answers come from the built-in simulator "
    "at http://127.0.0.1:PORT/v1 (set OPENAI_API_KEY to use OpenAI)\n"
)


@pytest.fixture(autouse=True)
def _default_models(monkeypatch):
    for name in ("RAWCHAT_TRANSCRIBE_MODEL", "RAWCHAT_SPEECH_MODEL", "OPENAI_API_KEYS"):
        monkeypatch.delenv(name, raising=False)


def rawchat(capsys, *args):
    """``rawchat ARGS`` in this process: exit code, stdout, stderr (ports masked)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", err)


@pytest.fixture
def question(tmp_path, capsys):
    """The question spoken by the simulator, which transcribes its own speech back."""
    path = tmp_path / "question.wav"
    assert rawchat(capsys, "speak", QUESTION, "--out", str(path))[0] == 0
    return str(path)


def test_speak_writes_a_wav_that_transcribes_back_to_the_text(tmp_path, capsys):
    path = tmp_path / "q.wav"
    code, out, err = rawchat(capsys, "speak", QUESTION, "--out", str(path))
    assert (code, err) == (0, NOTE)
    assert out == f"{path}: 83,640 bytes of audio/wav\n"
    assert path.read_bytes()[:4] == b"RIFF"
    assert rawchat(capsys, "transcribe", str(path)) == (0, QUESTION + "\n", NOTE)


def test_speak_reads_the_text_from_stdin(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("Hello!\n"))
    path = tmp_path / "hello.wav"
    assert rawchat(capsys, "speak", "-", "--out", str(path), "--stream-format", "sse")[0] == 0
    assert rawchat(capsys, "transcribe", str(path))[1] == "Hello!\n"


@pytest.mark.parametrize(
    ("format", "expected"),
    [
        ("text", "What is SSE? Say it in short.\n"),
        (
            "srt",
            "1\n00:00:00,000 --> 00:00:00,746\nWhat is SSE?\n\n"
            "2\n00:00:00,746 --> 00:00:01,740\nSay it in short.\n\n",
        ),
        (
            "vtt",
            "WEBVTT\n\n00:00:00.000 --> 00:00:00.746\nWhat is SSE?\n\n"
            "00:00:00.746 --> 00:00:01.740\nSay it in short.\n\n",
        ),
    ],
)
def test_transcribe_prints_a_text_format_as_it_came(question, capsys, format, expected):
    assert rawchat(capsys, "transcribe", question, "--format", format) == (0, expected, NOTE)


def test_transcribe_json_prints_the_object(question, capsys):
    code, out, _ = rawchat(capsys, "transcribe", question, "--format", "json")
    assert code == 0
    assert json.loads(out)["text"] == QUESTION


def test_transcribe_verbose_json_prints_segments_and_duration(question, capsys):
    code, out, _ = rawchat(capsys, "transcribe", question, "--format", "verbose_json")
    answer = json.loads(out)
    assert (code, answer["duration"], answer["language"]) == (0, 1.74, "english")
    assert [s["text"] for s in answer["segments"]] == ["What is SSE?", "Say it in short."]


def test_transcribe_stream_prints_the_text_as_it_arrives(question, capsys):
    assert rawchat(capsys, "transcribe", question, "--stream") == (0, QUESTION + "\n", NOTE)


def test_transcribe_curl_prints_the_upload_as_form_parts(question, capsys):
    code, out, err = rawchat(capsys, "transcribe", question, "--language", "en", "--curl")
    assert (code, err) == (0, "")
    assert out == (
        "curl 'https://api.openai.com/v1/audio/transcriptions' \\\n"
        '  -H "Authorization: Bearer $OPENAI_API_KEY" \\\n'
        "  -H 'Accept: application/json' \\\n"
        f"  -H 'User-Agent: {AGENT}' \\\n"
        "  -F 'model=gpt-4o-mini-transcribe' \\\n"
        "  -F 'language=en' \\\n"
        f"  -F 'file=@{question};type=audio/wav'\n"
    )


def test_speak_curl_prints_the_json_request_and_where_curl_writes(capsys, monkeypatch):
    monkeypatch.setenv("RAWCHAT_SPEECH_MODEL", "tts-1")
    code, out, err = rawchat(capsys, "speak", "Hi", "--out", "hi.mp3", "--voice", "coral", "--curl")
    assert (code, err) == (0, "")
    assert out == (
        "curl 'https://api.openai.com/v1/audio/speech' \\\n"
        "  -N \\\n"
        '  -H "Authorization: Bearer $OPENAI_API_KEY" \\\n'
        "  -H 'Content-Type: application/json' \\\n"
        "  -H 'Accept: */*' \\\n"
        "  -H 'Accept-Encoding: identity' \\\n"
        f"  -H 'User-Agent: {AGENT}' \\\n"
        """  -d '{"model":"tts-1","input":"Hi","voice":"coral","response_format":"mp3"}' \\\n"""
        "  --output hi.mp3\n"
    )


def test_talk_compare_prints_both_rows_and_writes_the_reply(question, tmp_path, capsys):
    reply = tmp_path / "reply.wav"
    code, out, err = rawchat(capsys, "talk", question, "--out", str(reply), "--compare")
    assert (code, err) == (0, NOTE)
    answer = (
        "Hello from the rawchat simulator. I received 1 message (about 16 prompt tokens); "
        'your last message was: "What is SSE? Say it in short.".'
    )
    lines = out.splitlines()
    assert lines[:3] == [
        f"you: {QUESTION}",
        f"assistant: {answer}",
        f"{reply}: 8.0 s of audio, 3 sentences",
    ]
    assert lines[4].split() == [
        "ms", "transcribed", "first", "token", "first", "audio", "answer", "done", "last", "audio",
    ]  # fmt: skip
    assert [line.split()[0] for line in lines[5:7]] == ["overlapped", "naive"]
    assert all(
        re.fullmatch(r"[\d,]+", cell) for cell in lines[5].split()[1:] + lines[6].split()[1:]
    )
    assert lines[7:] == [
        "reply latency = first audio: from the end of your audio to the first sound"
    ]
    assert rawchat(capsys, "transcribe", str(reply))[1] == answer + "\n"


def test_talk_takes_turns_round_the_files_and_numbers_the_replies(question, tmp_path, capsys):
    code, out, _ = rawchat(
        capsys, "talk", question, "--out", str(tmp_path / "r.wav"), "--turns", "2"
    )
    assert code == 0
    assert "I received 3 messages" in out
    assert [line.split()[:2] for line in out.splitlines()[-3:-1]] == [
        ["1", "overlapped"],
        ["2", "overlapped"],
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["question.wav", "r-1.wav", "r-2.wav"]


def test_a_missing_file_is_a_usage_error_not_a_traceback(tmp_path, capsys):
    missing = str(tmp_path / "missing.wav")
    for command in (["transcribe", missing], ["talk", missing, "--out", "r.wav"]):
        assert rawchat(capsys, *command) == (
            2,
            "",
            f"rawchat: error: cannot read the audio file {missing!r}: No such file or directory\n"
            "  hint: pass a path to the audio file, its bytes, or a file opened with 'rb'\n",
        )


def test_a_file_over_the_upload_limit_is_refused_before_it_is_sent(tmp_path, capsys):
    big = tmp_path / "long.wav"
    with open(big, "wb") as file:
        file.truncate(26 * 1024 * 1024)  # sparse: nothing is written
    assert rawchat(capsys, "transcribe", str(big)) == (
        2,
        "",
        "rawchat: error: 'long.wav' is 27,262,976 bytes, over the 26,214,400-byte upload limit\n"
        "  hint: cut the audio into shorter pieces, or compress it "
        "(e.g. ffmpeg -i in.wav -ac 1 -b:a 48k out.mp3)\n",
    )


def test_talk_without_a_question_or_out_is_a_usage_error(question, capsys):
    for command in (["talk", "--out", "r.wav"], ["talk", question]):
        code, out, err = rawchat(capsys, *command)
        assert (code, out) == (2, "")
        assert err.startswith("rawchat: error: talk needs ") and "Traceback" not in err


def test_speak_without_out_says_where_to_put_it(capsys):
    assert rawchat(capsys, "speak", "Hi") == (
        2,
        "",
        "rawchat: error: where should the audio go?\n"
        '  hint: rawchat speak "Hello!" --out hello.wav\n',
    )


def test_the_voice_commands_have_examples(capsys):
    for command in ("transcribe", "speak", "talk"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "examples:" in capsys.readouterr().out, command
