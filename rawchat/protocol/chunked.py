"""HTTP/1.1 chunked transfer coding: framed bytes in, body bytes out.

Implements the decoding side of RFC 9112 section 7.1
(https://www.rfc-editor.org/rfc/rfc9112#section-7.1), the framing of a
streamed answer whose length the server does not know in advance::

    chunked-body   = *chunk last-chunk trailer-section CRLF
    chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
    last-chunk     = 1*"0" [ chunk-ext ] CRLF

    1b\\r\\ndata: {"choices":[...]}\\n\\n\\r\\n      one chunk of 0x1b bytes
    e\\r\\ndata: [DONE]\\n\\n\\r\\n                   another
    0\\r\\n\\r\\n                                     the end (no trailers)

Why rawchat decodes it itself instead of letting urllib3 do it: urllib3
hands over one chunk per call, and a chat server sends one chunk per token,
so a fast stream costs a few Python calls per token just for the framing.
Fed whatever the socket has (``read1``), this decoder returns the body of
every chunk in that read at once, for one pass of the SSE parser; it never
waits for more bytes than have arrived, so the first token is as early as
before.

Chunk extensions and trailer fields are read and ignored, as the RFC
allows. The size must be hex digits only: ``int(x, 16)`` would also take
``+1f``, ``0x1f`` or ``1_f``, which no server means.
"""

from __future__ import annotations

from typing import List

from ..errors import APIConnectionError

__all__ = ["ChunkedDecoder"]

_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)
_HEX = b"0123456789abcdefABCDEF"
MAX_LINE_BYTES = 4096  # a size line or trailer field; http.client allows 64 KiB


class ChunkedDecoder:
    """``feed(bytes) -> bytes``: the body bytes a read of a chunked body carries.

    ``done`` turns true once the last chunk and the trailer section are in;
    ``unused`` then holds any bytes the server sent after the body (there
    should be none, and a connection that had some is not to be reused).
    """

    def __init__(self) -> None:
        self.unused = b""
        self._state = _SIZE
        self._left = 0  # bytes of the current chunk's data still to come
        self._line = b""  # an incomplete size or trailer line

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(self, data: bytes) -> bytes:
        """Decode the next bytes of the body; return what they add to it."""
        if self._state == _DONE:
            self.unused += data
            return b""
        if self._line:
            data = self._line + data
            self._line = b""
        body: List[bytes] = []
        pos, end = 0, len(data)
        while pos < end:
            if self._state == _DATA:
                take = min(self._left, end - pos)
                # A read that is exactly one chunk's data needs no copy.
                body.append(data if take == end else data[pos : pos + take])
                pos += take
                self._left -= take
                if not self._left:
                    self._state = _DATA_END
                continue
            newline = data.find(b"\n", pos)
            if newline < 0:
                self._keep_line(data[pos:])
                break
            if self._state == _SIZE:
                cr = newline > pos and data[newline - 1] == 13
                digits = data[pos : newline - 1 if cr else newline]
                if 0 < len(digits) <= 16 and not digits.translate(None, _HEX):
                    size = int(digits, 16)  # hex digits alone, the usual size line
                else:  # extensions, spaces, or not a size at all
                    size = _chunk_size(data[pos : newline + 1])
                pos = newline + 1
                stop = pos + size
                # The usual case: the whole chunk and its CRLF are in this read.
                if size and data[stop : stop + 2] == b"\r\n":
                    body.append(data[pos:stop])
                    pos = stop + 2
                    continue
                self._left = size
                self._state = _DATA if size else _TRAILER
                continue
            line = data[pos : newline + 1]
            pos = newline + 1
            if self._state == _DATA_END:
                if line not in (b"\r\n", b"\n"):
                    raise _malformed(f"chunk data runs past its size: {line[:40]!r}")
                self._state = _SIZE
            elif line in (b"\r\n", b"\n"):  # the blank line that ends the trailers
                self._state = _DONE
                self.unused = data[pos:]
                break
            elif len(line) > MAX_LINE_BYTES:
                raise _malformed(f"a trailer field of {len(line)} bytes")
        if len(body) == 1:
            return body[0]
        return b"".join(body)

    def _keep_line(self, piece: bytes) -> None:
        if len(piece) > MAX_LINE_BYTES:
            raise _malformed(f"a chunk size line of over {MAX_LINE_BYTES} bytes")
        self._line = piece


def _chunk_size(line: bytes) -> int:
    """``chunk-size [ chunk-ext ] CRLF`` -> the size."""
    if len(line) > MAX_LINE_BYTES:
        raise _malformed(f"a chunk size line of {len(line)} bytes")
    digits = line.rstrip(b"\r\n")
    if b";" in digits:
        digits = digits.split(b";", 1)[0]
    digits = digits.strip(b" \t")
    if not digits or len(digits) > 16 or digits.translate(None, _HEX):
        raise _malformed(f"bad chunk size line {line[:40]!r}")
    return int(digits, 16)


def _malformed(what: str) -> APIConnectionError:
    return APIConnectionError(
        f"malformed chunked body: {what}",
        hint="the server or a proxy broke the HTTP framing; `rawchat --trace` shows "
        "the bytes as they arrived",
    )
