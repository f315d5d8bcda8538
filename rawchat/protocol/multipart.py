"""multipart/form-data by hand: the upload format of ``/audio/transcriptions``.

Implements RFC 7578 (https://www.rfc-editor.org/rfc/rfc7578) on the
framing of RFC 2046 section 5.1.1
(https://www.rfc-editor.org/rfc/rfc2046#section-5.1.1). A body is a list of
parts, each opened by a delimiter line and a few headers::

    --BOUNDARY\\r\\n
    Content-Disposition: form-data; name="model"\\r\\n
    \\r\\n
    whisper-1\\r\\n
    --BOUNDARY\\r\\n
    Content-Disposition: form-data; name="file"; filename="hello.wav"\\r\\n
    Content-Type: audio/wav\\r\\n
    \\r\\n
    RIFF....(the file's bytes, untouched)\\r\\n
    --BOUNDARY--\\r\\n

and sent with ``Content-Type: multipart/form-data; boundary=BOUNDARY``.
What this module makes explicit:

* The boundary is 1 to 70 characters from RFC 2046's small alphabet, and
  must not occur in any part: a file holding ``--BOUNDARY`` would end its
  part early. With a random boundary that is all but impossible, and it is
  checked anyway. The randomness comes from the caller (``make_boundary``
  takes the bytes), so this module stays pure.
* ``name`` and ``filename`` are quoted strings in which CR, LF and ``"``
  are percent-encoded and other text is raw UTF-8, as the WHATWG HTML
  standard says browsers encode them (RFC 7578 section 4.2 allows it, and
  it is what servers parse).
* A text field has no ``Content-Type`` (RFC 7578 section 4.4: it defaults
  to ``text/plain``); a file part has one.
* A list is sent as one part per item named ``name[]`` (as
  ``timestamp_granularities[]`` is), the convention PHP-style form parsers,
  and OpenAI's, read as an array.

The bytes are built once, so a retry resends exactly the same body. For
people, ``summary()`` shows the body with each file part replaced by its
size and type (a trace must never dump audio), and ``curl_options()``
gives the parts as curl ``-F`` arguments (``HTTPRequest.to_curl`` uses them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Tuple

from ..errors import InvalidRequestError

__all__ = [
    "FormPart",
    "MultipartForm",
    "file_part",
    "form_parts",
    "make_boundary",
    "text_part",
]

#: RFC 2046 section 5.1.1 ``bchars``, without the space (allowed only
#: inside, and a common source of quoting bugs).
_BOUNDARY = re.compile(r"^[0-9A-Za-z'()+_,\-./:=?]{1,70}$")

#: What percent-encoding replaces in ``name`` and ``filename`` (WHATWG HTML,
#: "multipart/form-data encoding algorithm").
_ESCAPES = {"\r": "%0D", "\n": "%0A", '"': "%22"}


@dataclass(frozen=True)
class FormPart:
    """One part of a form.

    ``name``: the form field. ``data``: the content, as it goes on the wire.
    ``filename`` makes it a file part (its ``Content-Disposition`` names the
    file); ``content_type`` is its ``Content-Type`` header, if any.
    """

    name: str
    data: bytes
    filename: Optional[str] = None
    content_type: Optional[str] = None

    @property
    def is_file(self) -> bool:
        return self.filename is not None

    def head(self) -> bytes:
        """The part's header lines and the blank line after them."""
        disposition = f'form-data; name="{_quote(self.name)}"'
        if self.filename is not None:
            disposition += f'; filename="{_quote(self.filename)}"'
        lines = [f"Content-Disposition: {disposition}"]
        if self.content_type:
            lines.append(f"Content-Type: {self.content_type}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def text_part(name: str, value: Any) -> FormPart:
    """A text field: ``True`` becomes ``true``, numbers their decimal form."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (str, int, float)):
        text = str(value)
    else:
        raise InvalidRequestError(
            f"form field {name!r} is a {type(value).__name__}; a form carries text",
            hint="pass a string, a number or a boolean (a list becomes repeated fields)",
        )
    return FormPart(name, text.encode("utf-8"))


def file_part(
    name: str, data: bytes, filename: str, content_type: str = "application/octet-stream"
) -> FormPart:
    """A file part: the bytes as they are, with their file name and type."""
    return FormPart(name, bytes(data), filename, content_type)


def form_parts(fields: Mapping[str, Any]) -> List[FormPart]:
    """Text parts for ``fields`` in order: ``None`` is left out, a list or
    tuple becomes one ``name[]`` part per item."""
    parts = []
    for name, value in fields.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            key = name if name.endswith("[]") else name + "[]"
            parts.extend(text_part(key, item) for item in value)
        else:
            parts.append(text_part(name, value))
    return parts


def make_boundary(random_bytes: bytes) -> str:
    """A boundary from the caller's random bytes (16 are plenty).

    >>> make_boundary(bytes(range(4)))
    'rawchat-00010203'
    """
    return "rawchat-" + bytes(random_bytes).hex()


@dataclass(frozen=True)
class MultipartForm:
    """A whole ``multipart/form-data`` body: its parts and its boundary.

    The constructor checks the boundary's alphabet and length, and that no
    part contains it (``InvalidRequestError`` otherwise: choose another).
    """

    parts: Tuple[FormPart, ...]
    boundary: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "parts", tuple(self.parts))
        if not _BOUNDARY.match(self.boundary):
            raise InvalidRequestError(
                f"{self.boundary!r} cannot be a multipart boundary",
                hint="use 1 to 70 letters, digits and '()+_,-./:=? (make_boundary does)",
            )
        delimiter = b"--" + self.boundary.encode("ascii")
        for part in self.parts:
            if delimiter in part.data or delimiter in part.head():
                raise InvalidRequestError(
                    f"the boundary {self.boundary!r} occurs inside part {part.name!r}",
                    hint="choose another boundary (a random one never collides in practice)",
                )

    @property
    def content_type(self) -> str:
        """The request's ``Content-Type`` header value."""
        return f"multipart/form-data; boundary={self.boundary}"

    def encode(self) -> bytes:
        """The body, exactly as it is sent."""
        delimiter = b"--" + self.boundary.encode("ascii")
        pieces = []
        for part in self.parts:
            pieces += [delimiter, b"\r\n", part.head(), part.data, b"\r\n"]
        pieces += [delimiter, b"--\r\n"]
        return b"".join(pieces)

    @property
    def content_length(self) -> int:
        """``len(encode())``, without building the body."""
        framing = len(self.boundary) + 6  # "--" boundary CRLF ... CRLF
        size = sum(framing + len(part.head()) + len(part.data) for part in self.parts)
        return size + len(self.boundary) + 6  # "--" boundary "--" CRLF

    def summary(self) -> str:
        """The body for people: text fields as they are, each file part as
        ``<N bytes of TYPE>`` (audio is never dumped into a trace)."""
        lines = []
        for part in self.parts:
            lines.append(f"--{self.boundary}")
            lines += part.head().decode("utf-8").rstrip("\r\n").split("\r\n")
            lines.append("")
            if part.is_file:
                kind = part.content_type or "unknown type"
                lines.append(f"<{len(part.data):,} bytes of {kind}>")
            else:
                lines.append(part.data.decode("utf-8", "replace"))
        lines.append(f"--{self.boundary}--")
        return "\n".join(lines) + "\n"

    def curl_options(self, paths: Optional[Mapping[str, str]] = None) -> List[Tuple[str, str]]:
        """The parts as curl options, ``(option, argument)`` pairs to shell-quote.

        curl reads a file part from disk: ``paths`` maps a part's name to
        the path to give (default: its file name). curl's ``-F`` reads a
        value starting with ``@`` or ``<`` as a file and one holding ``;``
        as carrying a type, so such text goes with ``--form-string``.
        """
        paths = paths or {}
        options = []
        for part in self.parts:
            if part.is_file:
                spec = f"{part.name}=@{paths.get(part.name, part.filename)}"
                if part.content_type:
                    spec += f";type={part.content_type}"
                options.append(("-F", spec))
            else:
                value = part.data.decode("utf-8", "replace")
                literal = value[:1] in ("@", "<") or ";" in value
                options.append(("--form-string" if literal else "-F", f"{part.name}={value}"))
        return options


def _quote(text: str) -> str:
    return "".join(_ESCAPES.get(char, char) for char in text)
