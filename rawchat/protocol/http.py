"""HTTP messages as values: what goes on the wire, and how to show it safely.

An ``HTTPRequest`` is the exact request rawchat will send (method, URL,
headers, body bytes); an ``HTTPResponse`` is what came back. Both are plain
frozen values, so the protocol core can build and read them without a
socket. They render as HTTP/1.1 text (RFC 9112,
https://www.rfc-editor.org/rfc/rfc9112) and as a ``curl`` command, with
credentials redacted to their last four characters unless asked otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Optional, Tuple, Union
from urllib.parse import urlsplit

from ..errors import InvalidResponseError
from .multipart import MultipartForm

__all__ = [
    "SECRET_HEADERS",
    "HTTPRequest",
    "HTTPResponse",
    "Headers",
    "fingerprint",
    "redact_header",
    "redact_url",
    "request_id_of",
]

#: Header names whose values are credentials (compared lower-case).
SECRET_HEADERS = frozenset(
    {"authorization", "api-key", "x-api-key", "proxy-authorization", "cookie"}
)


def fingerprint(secret: str) -> str:
    """What may be shown of a secret: ``...`` and its last 4 characters.

    Short secrets show nothing at all, since 4 characters would be most of them.

    >>> fingerprint("sk-proj-abcdefghijklmnop")
    '...mnop'
    >>> fingerprint("sk-short")
    '...****'
    """
    if len(secret) < 12:
        return "..." + "*" * min(len(secret), 4)
    return "..." + secret[-4:]


def redact_header(name: str, value: str) -> str:
    """The value of header ``name`` as it may be printed."""
    if name.lower() not in SECRET_HEADERS:
        return value
    scheme, sep, token = value.partition(" ")
    if sep and scheme.lower() in ("bearer", "basic", "token"):
        return f"{scheme} {fingerprint(token)}"
    return fingerprint(value)


def redact_url(url: str) -> str:
    """``url`` with any credentials in it (``user:password@``) replaced by ``***``.

    >>> redact_url("http://user:secret@proxy.example/v1")
    'http://***@proxy.example/v1'
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return url
    return f"{scheme}://***@{authority.rpartition('@')[2]}{slash}{path}"


HeaderInput = Union[Mapping[str, str], Iterable[Tuple[str, str]], None]


class Headers(Mapping[str, str]):
    """An immutable, case-insensitive, order-preserving header list.

    Field names are case-insensitive (RFC 9110 section 5.1); lookups ignore
    case, iteration keeps the names as they were sent. A repeated field is
    joined with ``", "`` on lookup, as RFC 9110 section 5.3 allows.
    """

    __slots__ = ("_index", "_items")

    def __init__(self, items: HeaderInput = None) -> None:
        if items is None:
            pairs: Tuple[Tuple[str, str], ...] = ()
        elif isinstance(items, Headers):  # already checked and indexed
            self._items, self._index = items._items, items._index
            return
        elif isinstance(items, dict) or hasattr(items, "keys"):
            pairs = tuple((str(k), str(v)) for k, v in items.items())
        else:
            pairs = tuple((str(k), str(v)) for k, v in items)
        index: dict = {}
        for name, value in pairs:
            key = name.lower()
            index[key] = f"{index[key]}, {value}" if key in index else value
        self._items = pairs
        self._index = index

    def __getitem__(self, name: str) -> str:
        return self._index[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self):  # type: ignore[override]
        return self._items

    def redacted(self) -> Tuple[Tuple[str, str], ...]:
        """The pairs with credentials reduced to a fingerprint."""
        return tuple((n, redact_header(n, v)) for n, v in self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._items == other._items
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"Headers({list(self.redacted())!r})"


@dataclass(frozen=True)
class HTTPRequest:
    """One HTTP request exactly as it will be sent.

    ``url`` is absolute (scheme, host, path and query); ``body`` is the
    encoded bytes (empty for GET); ``stream`` says whether the caller will
    read the response incrementally (it changes nothing on the wire but the
    ``Accept`` header the builder chose). ``form`` is set when ``body`` is
    that ``multipart/form-data`` form, encoded: renderings then show its
    parts (files by size and type) instead of the bytes.
    """

    method: str
    url: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    stream: bool = False
    form: Optional[MultipartForm] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.headers, Headers):
            object.__setattr__(self, "headers", Headers(self.headers))

    @property
    def target(self) -> str:
        """The request target of the request line: path plus query."""
        parts = urlsplit(self.url)
        path = parts.path or "/"
        return f"{path}?{parts.query}" if parts.query else path

    def json(self) -> Any:
        """The body decoded as JSON (``None`` for an empty body)."""
        return json.loads(self.body) if self.body else None

    def to_http(self, *, reveal: bool = False) -> str:
        """The request as HTTP/1.1 text, credentials redacted unless ``reveal``.

        A JSON body is pretty-printed for reading; ``Content-Length`` is that
        of the real, compact body. A form shows its file parts by size and type.
        """
        parts = urlsplit(self.url)
        pairs = self.headers.items() if reveal else self.headers.redacted()
        host = parts.netloc.rpartition("@")[2]  # credentials never go in Host
        lines = [f"{self.method} {self.target} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in pairs]
        if self.body:
            lines.append(f"Content-Length: {len(self.body)}")
        text = "\n".join(lines) + "\n\n"
        if self.form is not None:
            text += self.form.summary()
        elif self.body:
            try:
                text += json.dumps(self.json(), indent=2, ensure_ascii=False) + "\n"
            except ValueError:
                text += self.body.decode("utf-8", "replace") + "\n"
        return text

    def to_curl(
        self,
        *,
        key_variable: Optional[str] = "OPENAI_API_KEY",
        files: Optional[Mapping[str, str]] = None,
    ) -> str:
        """An equivalent ``curl`` command line for a POSIX shell.

        The credential is written as ``$key_variable`` so the command works
        when pasted into a shell that has the key set, and never contains it;
        with ``key_variable=None`` it is redacted instead. A form becomes
        ``-F`` arguments, its files read by curl from ``files`` (part name
        to path; by default the part's file name), and curl writes the
        form's ``Content-Type`` with a boundary of its own.
        """
        lines = [f"curl {_shell_quote(redact_url(self.url))}"]
        if self.method != ("POST" if self.body else "GET"):
            lines.append(f"-X {self.method}")
        if self.stream:
            lines.append("-N")  # print SSE events as they arrive, not at the end
        for name, value in self.headers.items():
            if self.form is not None and name.lower() == "content-type":
                continue
            if name.lower() in SECRET_HEADERS:
                if key_variable:
                    scheme, sep, _ = value.partition(" ")
                    prefix = f"{scheme} " if sep else ""
                    lines.append(f'-H "{name}: {prefix}${key_variable}"')
                    continue
                value = redact_header(name, value)
            lines.append(f"-H {_shell_quote(f'{name}: {value}')}")
        if self.form is not None:
            lines += [f"{opt} {_shell_quote(arg)}" for opt, arg in self.form.curl_options(files)]
        elif self.body:
            lines.append(f"-d {_shell_quote(self.body.decode('utf-8', 'replace'))}")
        return " \\\n  ".join(lines)

    def __repr__(self) -> str:
        return (
            f"HTTPRequest(method={self.method!r}, url={redact_url(self.url)!r}, "
            f"headers={self.headers!r}, body=<{len(self.body)} bytes>)"
        )


@dataclass(frozen=True)
class HTTPResponse:
    """A complete HTTP response: status, headers and the whole body."""

    status_code: int
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    url: str = ""
    reason: str = ""
    elapsed: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.headers, Headers):
            object.__setattr__(self, "headers", Headers(self.headers))

    @property
    def request_id(self) -> Optional[str]:
        """The server's id for this request, worth quoting in support tickets."""
        return request_id_of(self.headers)

    @property
    def content_type(self) -> str:
        """The media type alone, lower-case, without parameters."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def text(self) -> str:
        """The body as text. JSON and SSE are UTF-8 whatever the header says."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON, or ``InvalidResponseError`` saying why not."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
            raise InvalidResponseError(
                f"expected a JSON body from {redact_url(self.url) or 'the server'}, got "
                f"{describe_body(self.body, self.content_type)}",
                status_code=self.status_code,
                body=self.text(),
                hint="a proxy or gateway may have answered instead of the API; check the base URL",
            ) from exc


def request_id_of(headers: Mapping[str, str]) -> Optional[str]:
    """The server's request id: OpenAI's ``x-request-id``, Azure's ``apim-request-id``."""
    for name in ("x-request-id", "request-id", "apim-request-id"):
        value = headers.get(name)
        if value:
            return value
    return None


def describe_body(body: bytes, content_type: str = "") -> str:
    """A short, printable description of a body that is not what we expected."""
    if not body.strip():
        return "an empty body"
    text = " ".join(body[:120].decode("utf-8", "replace").split())
    kind = content_type or "unknown content type"
    more = "..." if len(body) > 120 else ""
    return f"{len(body)} bytes of {kind}: {text!r}{more}"


def _shell_quote(text: str) -> str:
    """POSIX single-quoting: safe for any text, including quotes and newlines."""
    return "'" + text.replace("'", "'\\''") + "'"
