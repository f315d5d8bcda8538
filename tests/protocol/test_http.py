"""HTTP values, their HTTP/1.1 and curl renderings, and redaction."""

from __future__ import annotations

import shlex

import pytest

from rawchat.errors import InvalidResponseError
from rawchat.protocol.http import (
    Headers,
    HTTPRequest,
    HTTPResponse,
    fingerprint,
    redact_header,
    redact_url,
)

KEY = "sk-proj-0123456789abcdefWXYZ"
REQUEST = HTTPRequest(
    "POST",
    "https://api.openai.com/v1/chat/completions",
    [("Authorization", f"Bearer {KEY}"), ("Content-Type", "application/json")],
    b'{"model":"m","messages":[{"role":"user","content":"it\'s"}]}',
    stream=True,
)


def test_a_fingerprint_shows_at_most_the_last_four_characters():
    assert fingerprint(KEY) == "...WXYZ"
    assert fingerprint("short") == "...****"


@pytest.mark.parametrize(
    "name, value, shown",
    [
        ("Authorization", f"Bearer {KEY}", "Bearer ...WXYZ"),
        ("api-key", KEY, "...WXYZ"),
        ("X-Api-Key", KEY, "...WXYZ"),
        ("Content-Type", "application/json", "application/json"),
    ],
)
def test_secret_headers_are_redacted(name, value, shown):
    assert redact_header(name, value) == shown


def test_headers_look_up_case_insensitively_and_keep_order():
    headers = Headers([("Content-Type", "a"), ("x-one", "1"), ("X-One", "2")])
    assert headers["content-type"] == "a"
    assert headers["X-ONE"] == "1, 2"
    assert list(headers) == ["Content-Type", "x-one", "X-One"]
    assert "CONTENT-TYPE" in headers and 5 not in headers


def test_the_http_rendering_has_request_line_host_and_pretty_body_with_the_key_redacted():
    text = REQUEST.to_http()
    assert text.splitlines()[:5] == [
        "POST /v1/chat/completions HTTP/1.1",
        "Host: api.openai.com",
        "Authorization: Bearer ...WXYZ",
        "Content-Type: application/json",
        f"Content-Length: {len(REQUEST.body)}",
    ]
    assert '  "model": "m",' in text
    assert KEY not in text
    assert KEY in REQUEST.to_http(reveal=True)


def test_the_curl_command_uses_the_key_variable_and_runs_in_a_shell():
    command = REQUEST.to_curl()
    assert KEY not in command
    assert '-H "Authorization: Bearer $OPENAI_API_KEY"' in command
    words = shlex.split(command.replace("\\\n", " "))
    assert words[:3] == ["curl", "https://api.openai.com/v1/chat/completions", "-N"]
    assert words[-1] == REQUEST.body.decode()  # the single quote inside survives quoting


def test_the_curl_command_can_redact_instead():
    assert "Bearer ...WXYZ" in REQUEST.to_curl(key_variable=None)


def test_a_get_renders_without_body_or_method_flag():
    request = HTTPRequest("GET", "https://x/v1/models?a=1")
    assert request.to_curl() == "curl 'https://x/v1/models?a=1'"
    assert request.to_http().startswith("GET /v1/models?a=1 HTTP/1.1\nHost: x\n")


def test_the_request_repr_hides_the_key_and_the_body():
    assert KEY not in repr(REQUEST)
    assert "body=<" in repr(REQUEST)


def test_a_response_reads_its_request_id_and_json():
    response = HTTPResponse(
        200,
        {"X-Request-Id": "req_1", "Content-Type": "application/json; charset=utf-8"},
        b'{"a": 1}',
    )
    assert (response.request_id, response.content_type, response.json()) == (
        "req_1",
        "application/json",
        {"a": 1},
    )


def test_a_response_that_is_not_json_raises_a_typed_error():
    with pytest.raises(InvalidResponseError, match="got 5 bytes of text/plain: 'oops!'"):
        HTTPResponse(200, {"Content-Type": "text/plain"}, b"oops!", url="u").json()


@pytest.mark.parametrize(
    "url, shown",
    [
        ("http://user:pass@host:8/v1", "http://***@host:8/v1"),
        ("https://sk-secret@host/v1/chat?x=1", "https://***@host/v1/chat?x=1"),
        ("https://host/v1/a@b", "https://host/v1/a@b"),
        ("https://host/v1", "https://host/v1"),
    ],
)
def test_credentials_in_a_url_are_redacted_and_nothing_else(url, shown):
    assert redact_url(url) == shown


def test_credentials_in_the_url_never_reach_the_renderings():
    request = HTTPRequest(
        "POST",
        "https://user:hunter2@proxy.example/v1/chat/completions",
        headers={"Authorization": "Bearer sk-abcdefghijklmnop"},
        body=b"{}",
    )
    for text in (
        repr(request),
        request.to_http(),
        request.to_curl(),
        request.to_curl(key_variable=None),
    ):
        assert "hunter2" not in text
        assert "abcdefghijkl" not in text
    assert "Host: proxy.example\n" in request.to_http()


def test_absurdly_deep_json_is_an_invalid_response_not_a_recursion_error():
    body = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(InvalidResponseError, match="expected a JSON body"):
        HTTPResponse(200, body=body).json()
