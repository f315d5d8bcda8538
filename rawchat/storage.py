"""Writing files so that a crash never leaves half of one.

Conversations, HAR files and saved chats are written to a temporary file in
the same directory, flushed to disk, then renamed over the target:
``os.replace`` is atomic on POSIX and Windows, so a reader sees the old
file or the new one, never a mix.
"""

from __future__ import annotations

import os
import tempfile

__all__ = ["atomic_write"]


def atomic_write(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) in one step."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".rawchat-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
