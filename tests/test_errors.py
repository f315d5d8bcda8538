"""The error tree: typed errors that keep what the server said."""

from __future__ import annotations

from rawchat.errors import APIStatusError, RateLimitError, RawchatError, status_error_class
from rawchat.protocol.http import Headers, HTTPResponse
from rawchat.protocol.response import error_from_response


def test_an_error_keeps_the_headers_case_insensitive():
    response = HTTPResponse(
        429,
        headers=Headers([("Retry-After", "7"), ("X-Should-Retry", "false")]),
        body=b'{"error": {"message": "slow down"}}',
    )
    error = error_from_response(response)
    assert isinstance(error, RateLimitError)
    assert error.headers["retry-after"] == "7"
    assert error.headers["x-should-retry"] == "false"
    assert error.retry_after == 7.0


def test_every_status_error_is_a_rawchat_error_with_its_status():
    for status in (400, 401, 403, 404, 409, 422, 429, 500, 503, 418):
        cls = status_error_class(status)
        assert issubclass(cls, APIStatusError) and issubclass(cls, RawchatError)
    assert status_error_class(418) is APIStatusError
