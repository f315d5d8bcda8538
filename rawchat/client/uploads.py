"""A file to upload, as the multipart endpoints take it: read once, checked first.

``POST /audio/transcriptions`` and ``POST /files`` both send a file part
(``protocol/multipart.py``). The caller may hold the file as bytes, a path
or an open binary file; either way it is read here exactly once, so a retry
resends the identical body, and its size is checked before the read where
it can be known (a path by its size on disk, a seekable file by what is left
from its position), so an upload the server would refuse costs no reading
and no sending. A file that cannot seek is read no further than one byte
past the limit.
"""

from __future__ import annotations

import os
from typing import IO, Any, Callable, Optional, Tuple, Union

from ..errors import InvalidRequestError

__all__ = ["FilePath", "Upload", "read_upload"]

FilePath = Union[str, "os.PathLike[str]"]
#: What an upload may be given as.
Upload = Union[bytes, bytearray, memoryview, FilePath, IO[bytes]]


def read_upload(
    file: Upload,
    filename: Optional[str],
    *,
    default_name: str,
    limit: int,
    check: Callable[[int, str], Any],
    what: str = "file",
) -> Tuple[bytes, str]:
    """The bytes of ``file`` and the name it is sent under.

    The name is ``filename``, else the path's or the file object's own,
    else ``default_name``. ``check(size, name)`` raises for an upload the
    server would refuse; ``limit`` bounds the read of a file that cannot
    seek. ``what`` names the file in errors ("audio file").
    """
    if isinstance(file, (bytes, bytearray, memoryview)):
        data, name = bytes(file), filename or default_name
        check(len(data), name)
        return data, name
    if isinstance(file, (str, os.PathLike)):
        path = os.fspath(file)
        name = filename or os.path.basename(path)
        try:
            check(os.path.getsize(path), name)
            with open(path, "rb") as opened:
                return opened.read(), name
        except OSError as exc:
            raise InvalidRequestError(
                f"cannot read the {what} {path!r}: {exc.strerror or exc}",
                hint=f"pass a path to the {what}, its bytes, or a file opened with 'rb'",
            ) from exc
    if not callable(getattr(file, "read", None)):
        raise InvalidRequestError(
            f"the {what} is a {type(file).__name__}; pass bytes, a path or a binary file object"
        )
    given = getattr(file, "name", None)
    name = filename or (os.path.basename(given) if isinstance(given, str) else default_name)
    if _seekable(file):
        position = file.tell()
        size = file.seek(0, os.SEEK_END) - position
        file.seek(position)
        check(size, name)
        data = file.read()
    else:
        data = file.read(limit + 1)
    if not isinstance(data, (bytes, bytearray)):
        raise InvalidRequestError(
            f"{name!r} was opened as text; the {what} is sent as bytes",
            hint="open the file with open(path, 'rb')",
        )
    check(len(data), name)
    return bytes(data), name


def _seekable(file: Any) -> bool:
    try:
        return bool(file.seekable())
    except (AttributeError, OSError, ValueError):
        return False
