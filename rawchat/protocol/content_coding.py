"""Content codings: a ``gzip`` or ``deflate`` body undone in bounded steps.

RFC 9110 section 8.4.1 (https://www.rfc-editor.org/rfc/rfc9110#section-8.4.1):
``gzip`` is RFC 1952's format, ``deflate`` the zlib format of RFC 1950
around RFC 1951's compressed data. Both transports, the ``requests`` one and
the asyncio one, read a body still encoded and inflate it here, so what one
step makes is bounded however much the input inflates (a few kilobytes of
zeros can inflate to gigabytes): the caller counts what comes out.

What servers send beyond the letter of the RFCs:

* several gzip members one after another, which are one body (RFC 1952
  section 2.2); bytes after a member that are not another member are
  ignored, as urllib3 does;
* ``deflate`` as a bare RFC 1951 stream, without the zlib wrapper its name
  promises: until some output appears, the input is kept, to try again raw.

``zlib.error`` is raised for a body that is not what its coding says.
"""

from __future__ import annotations

import zlib
from typing import Iterator, Mapping, Optional

__all__ = ["CODINGS", "Inflater", "inflater_for"]

#: The content codings undone here; any other is handed over as it came.
CODINGS = ("gzip", "x-gzip", "deflate")
STEP = 64 * 1024


class Inflater:
    """Feed the encoded body piece by piece; each output piece is at most ``step`` bytes."""

    def __init__(self, coding: str, step: int = STEP) -> None:
        self.step = step
        self._gzip = coding in ("gzip", "x-gzip")
        self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS if self._gzip else zlib.MAX_WBITS)
        self._seen: Optional[bytes] = None if self._gzip else b""  # deflate: input so far
        self._over = False  # after the last gzip member: what follows is ignored
        self._members = 0  # gzip members inflated to their end

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The inflated bytes of the next encoded piece, ``step`` at most at a time."""
        if self._over:
            return
        try:
            out = self._decoder.decompress(data, self.step)
        except zlib.error:
            if self._members:  # not another member after all
                self._over = True
                return
            if self._seen is None:
                raise
            self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)
            data, self._seen = self._seen + data, None
            out = self._decoder.decompress(data, self.step)
        if self._seen is not None:
            self._seen = None if out else self._seen + data
        yield from self._drain(out)
        while self._gzip and self._decoder.eof and self._decoder.unused_data:
            rest = self._decoder.unused_data
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self._members += 1
            try:
                out = self._decoder.decompress(rest, self.step)
            except zlib.error:
                self._over = True
                return
            yield from self._drain(out)

    def flush(self) -> Iterator[bytes]:
        """What is left inside zlib at the end of the body."""
        if self._over:
            return
        out = self._decoder.flush()
        if out:
            yield out

    def _drain(self, out: bytes) -> Iterator[bytes]:
        # A full step may leave input unconsumed, or output inside zlib: take
        # it a step at a time, up to the end of the member (a decompressor at
        # its end must not be asked again: what follows is unused_data).
        while out:
            yield out
            if self._decoder.eof:
                return
            out = self._decoder.decompress(self._decoder.unconsumed_tail, self.step)


def inflater_for(
    response_headers: Mapping[str, str], request_headers: Mapping[str, str]
) -> Optional[Inflater]:
    """The inflater for a response, or None for a body handed over as it came.

    A request that asked for ``identity`` gets its body as sent, whatever the
    response claims; headers must look names up case-insensitively.
    """
    if request_headers.get("accept-encoding", "").strip().lower() == "identity":
        return None
    coding = response_headers.get("content-encoding", "").strip().lower()
    return Inflater(coding) if coding in CODINGS else None
