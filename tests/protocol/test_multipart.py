"""multipart/form-data by hand: literal bytes, boundaries, renderings."""

from __future__ import annotations

import pytest

from rawchat.errors import InvalidRequestError
from rawchat.protocol.http import HTTPRequest
from rawchat.protocol.multipart import (
    FormPart,
    MultipartForm,
    file_part,
    form_parts,
    make_boundary,
    text_part,
)

FORM = MultipartForm(
    (
        *form_parts(
            {"model": "whisper-1", "temperature": 0, "timestamp_granularities": ["word", "segment"]}
        ),
        file_part("file", b"RIFF\x00\xff", "hi.wav", "audio/wav"),
    ),
    "XyZ",
)


def test_a_form_is_encoded_byte_for_byte_as_rfc_7578_says():
    assert FORM.encode() == (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="model"\r\n'
        b"\r\n"
        b"whisper-1\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="temperature"\r\n'
        b"\r\n"
        b"0\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="timestamp_granularities[]"\r\n'
        b"\r\n"
        b"word\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="timestamp_granularities[]"\r\n'
        b"\r\n"
        b"segment\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="file"; filename="hi.wav"\r\n'
        b"Content-Type: audio/wav\r\n"
        b"\r\n"
        b"RIFF\x00\xff\r\n"
        b"--XyZ--\r\n"
    )


def test_the_content_length_is_that_of_the_encoded_body():
    assert FORM.content_length == len(FORM.encode()) == 410
    assert MultipartForm((), "b").content_length == len(MultipartForm((), "b").encode())


def test_the_content_type_carries_the_boundary():
    assert FORM.content_type == "multipart/form-data; boundary=XyZ"


def test_booleans_and_numbers_are_sent_as_their_json_spelling_and_none_is_left_out():
    parts = form_parts({"stream": True, "speed": 1.5, "language": None, "prompt": "你好"})
    assert parts == [
        FormPart("stream", b"true"),
        FormPart("speed", b"1.5"),
        FormPart("prompt", "你好".encode()),
    ]


def test_a_field_that_is_not_text_is_refused():
    with pytest.raises(InvalidRequestError, match="form field 'x' is a dict"):
        text_part("x", {"a": 1})


def test_quotes_and_line_breaks_in_names_are_percent_encoded_and_other_text_is_utf8():
    part = file_part("file", b"", 'a"b\r\n语音.wav', "audio/wav")
    assert (
        part.head()
        == (
            'Content-Disposition: form-data; name="file"; filename="a%22b%0D%0A语音.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
    )


def test_a_boundary_comes_from_the_callers_random_bytes():
    assert make_boundary(b"\x00\xab") == "rawchat-00ab"


def test_a_boundary_that_occurs_in_a_part_is_refused():
    with pytest.raises(InvalidRequestError, match="occurs inside part 'file'"):
        MultipartForm((file_part("file", b"xx--XyZ--yy", "a.wav"),), "XyZ")


@pytest.mark.parametrize("boundary", ["", "a" * 71, "has space", "é"])
def test_a_boundary_outside_rfc_2046s_alphabet_is_refused(boundary):
    with pytest.raises(InvalidRequestError, match="cannot be a multipart boundary"):
        MultipartForm((), boundary)


def test_the_summary_shows_text_fields_and_only_the_size_and_type_of_files():
    assert FORM.summary() == (
        "--XyZ\n"
        'Content-Disposition: form-data; name="model"\n'
        "\n"
        "whisper-1\n"
        "--XyZ\n"
        'Content-Disposition: form-data; name="temperature"\n'
        "\n"
        "0\n"
        "--XyZ\n"
        'Content-Disposition: form-data; name="timestamp_granularities[]"\n'
        "\n"
        "word\n"
        "--XyZ\n"
        'Content-Disposition: form-data; name="timestamp_granularities[]"\n'
        "\n"
        "segment\n"
        "--XyZ\n"
        'Content-Disposition: form-data; name="file"; filename="hi.wav"\n'
        "Content-Type: audio/wav\n"
        "\n"
        "<6 bytes of audio/wav>\n"
        "--XyZ--\n"
    )


def test_curl_gets_the_parts_as_form_options_and_risky_text_as_form_string():
    form = MultipartForm(
        (text_part("prompt", "@notes.txt"), text_part("a", "x;y"), FORM.parts[-1]), "b"
    )
    assert form.curl_options() == [
        ("--form-string", "prompt=@notes.txt"),
        ("--form-string", "a=x;y"),
        ("-F", "file=@hi.wav;type=audio/wav"),
    ]
    assert form.curl_options({"file": "/tmp/in.wav"})[-1] == (
        "-F",
        "file=@/tmp/in.wav;type=audio/wav",
    )


def request(form=FORM):
    return HTTPRequest(
        "POST",
        "https://api.openai.com/v1/audio/transcriptions",
        [("Authorization", "Bearer sk-abcdefghijklmnop1234"), ("Content-Type", form.content_type)],
        form.encode(),
        form=form,
    )


def test_a_request_with_a_form_renders_its_parts_as_curl_F_arguments():
    assert request().to_curl(files={"file": "in.wav"}) == (
        "curl 'https://api.openai.com/v1/audio/transcriptions' \\\n"
        '  -H "Authorization: Bearer $OPENAI_API_KEY" \\\n'
        "  -F 'model=whisper-1' \\\n"
        "  -F 'temperature=0' \\\n"
        "  -F 'timestamp_granularities[]=word' \\\n"
        "  -F 'timestamp_granularities[]=segment' \\\n"
        "  -F 'file=@in.wav;type=audio/wav'"
    )


def test_a_request_with_a_form_shows_the_summary_as_its_http_body():
    text = request().to_http()
    assert "Content-Length: 410\n\n--XyZ\n" in text
    assert "<6 bytes of audio/wav>" in text and "RIFF" not in text


def test_a_json_request_renders_as_before():
    plain = HTTPRequest(
        "POST", "http://x/v1/chat/completions", [("Content-Type", "application/json")], b'{"a":1}'
    )
    assert plain.form is None
    assert plain.to_curl().endswith("-H 'Content-Type: application/json' \\\n  -d '{\"a\":1}'")
    assert plain.to_http().endswith('{\n  "a": 1\n}\n')
