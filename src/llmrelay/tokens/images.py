"""Image tokens by the providers' published formulas, and image sizes from header bytes.

The size comes from ``ImagePart.width``/``height`` when given, else from the
header of the base64 data (PNG, JPEG, GIF, WebP; parsed here with ``struct``),
else ``DEFAULT_SIZE`` is assumed: a 2048x2048 image, which every provider
scales down, so it costs about what a large photo does (765 tokens on GPT-4o
high detail, the most Claude charges for one image, 9 tiles on Gemini 2.x).
It is not a strict upper bound for very elongated images.

OpenAI (platform.openai.com/docs/guides/images-vision, "Calculating costs"):

* tile models: ``detail="low"`` costs the base; ``high``/``auto`` (``auto`` is
  counted as ``high``: the safe side) scale the image to fit 2048x2048, then
  its shortest side down to 768 px, and cost ``base + tile * (512 px tiles)``.
  GPT-4o, GPT-4.1, GPT-4.5, GPT-4 Turbo: 85 + 170; GPT-4o mini: 2833 + 5667;
  GPT-5 (not mini/nano): 70 + 140; o1, o3: 75 + 150; computer-use: 65 + 129.
  Other OpenAI models use the GPT-4o figures.
* patch models: 32 px patches, at most 1536 (the image is scaled down to fit),
  times a multiplier: GPT-4.1 mini and GPT-5 mini 1.62, GPT-4.1 nano and
  GPT-5 nano 2.46, o4-mini 1.72. ``detail`` is not used.

Anthropic (docs.anthropic.com, Vision, "Evaluate image size"): images whose
long edge exceeds 1568 px or which would cost over ~1,600 tokens are scaled
down (aspect kept); tokens = width * height / 750, rounded up.

Gemini (ai.google.dev, "Understand and count tokens"): Gemini 1.5 charges 258
tokens per image; Gemini 2.x 258 when both sides are <= 384 px, else 258 per
768x768 tile (``ceil(w/768) * ceil(h/768)``: an estimate of the crop-and-scale
tiling); Gemini 3 1120 (its default ``media_resolution`` for images).

Other models: the Anthropic formula, as an estimate.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from typing import Final, TypeVar

from ..types import ImagePart

__all__ = [
    "DEFAULT_SIZE",
    "anthropic_image_tokens",
    "gemini_image_tokens",
    "image_size",
    "image_tokens",
    "openai_image_tokens",
    "sniff_size",
]

_T = TypeVar("_T")

DEFAULT_SIZE: Final = (2048, 2048)
"""Assumed when an image's size is unknown (a URL, or data we cannot parse)."""

_OPENAI_TILES: Final[dict[str, tuple[int, int]]] = {
    "gpt-4o": (85, 170),
    "chatgpt-4o": (85, 170),
    "gpt-4o-mini": (2833, 5667),
    "gpt-4.1": (85, 170),
    "gpt-4.5": (85, 170),
    "gpt-4-turbo": (85, 170),
    "gpt-4-vision": (85, 170),
    "gpt-5": (70, 140),
    "o1": (75, 150),
    "o3": (75, 150),
    "computer-use-preview": (65, 129),
}
_OPENAI_PATCHES: Final[dict[str, float]] = {
    "gpt-4.1-mini": 1.62,
    "gpt-4.1-nano": 2.46,
    "gpt-5-mini": 1.62,
    "gpt-5-nano": 2.46,
    "o4-mini": 1.72,
}
_DEFAULT_TILES: Final = (85, 170)
_MAX_PATCHES: Final = 1536
_ANTHROPIC_MAX_EDGE: Final = 1568
_ANTHROPIC_MAX_TOKENS: Final = 1600
_GEMINI_IMAGE: Final = 258
_GEMINI_3_IMAGE: Final = 1120
_URLSAFE: Final = str.maketrans("-_", "+/")
_SNIFF_CHARS: Final = 64 * 1024
"""Base64 characters decoded first to find a header (48 KiB of image)."""


def image_tokens(kind: str, model: str, image: ImagePart) -> int:
    """Input tokens for one image sent to ``model`` of provider ``kind``.

    ``kind``: ``openai`` (or ``azure``), ``anthropic``, ``gemini`` (or
    ``google``, ``vertex``); anything else gets the generic estimate.
    """
    size = image_size(image)
    name = model.lower().rsplit("/", 1)[-1]
    if kind in ("openai", "azure"):
        return openai_image_tokens(name, size, image.detail)
    if kind in ("gemini", "google", "vertex"):
        return gemini_image_tokens(name, size)
    return anthropic_image_tokens(size)


# ---- formulas ---------------------------------------------------------------------------


def openai_image_tokens(model: str, size: tuple[int, int] | None, detail: str | None = None) -> int:
    width, height = size or DEFAULT_SIZE
    multiplier = _longest_prefix(_OPENAI_PATCHES, model)
    if multiplier is not None:
        return math.ceil(_patches(width, height) * multiplier)
    base, tile = _longest_prefix(_OPENAI_TILES, model) or _DEFAULT_TILES
    if detail == "low":
        return base
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = _round(w * scale), _round(h * scale)
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = _round(w * scale), _round(h * scale)
    return base + tile * math.ceil(w / 512) * math.ceil(h / 512)


def anthropic_image_tokens(size: tuple[int, int] | None) -> int:
    width, height = size or DEFAULT_SIZE
    scale = min(
        1.0,
        _ANTHROPIC_MAX_EDGE / max(width, height),
        math.sqrt(_ANTHROPIC_MAX_TOKENS * 750 / (width * height)),
    )
    if scale < 1.0:
        width, height = max(1, int(width * scale)), max(1, int(height * scale))
    return math.ceil(width * height / 750)


def gemini_image_tokens(model: str, size: tuple[int, int] | None) -> int:
    if model.startswith("gemini-1."):
        return _GEMINI_IMAGE
    if model.startswith("gemini-3"):
        return _GEMINI_3_IMAGE
    width, height = size or DEFAULT_SIZE
    if width <= 384 and height <= 384:
        return _GEMINI_IMAGE
    return _GEMINI_IMAGE * math.ceil(width / 768) * math.ceil(height / 768)


def _patches(width: int, height: int) -> int:
    """32 px patches covering the image after OpenAI's scale-down to <= 1536 patches."""
    w, h = float(width), float(height)
    if math.ceil(w / 32) * math.ceil(h / 32) > _MAX_PATCHES:
        shrink = math.sqrt(32 * 32 * _MAX_PATCHES / (w * h))
        w, h = w * shrink, h * shrink
        # then down to a whole number of patches along the tighter side
        shrink = min(math.floor(w / 32) / (w / 32), math.floor(h / 32) / (h / 32))
        w, h = w * shrink, h * shrink
    patches = _ceil(w / 32) * _ceil(h / 32)
    return min(patches, _MAX_PATCHES)


def _ceil(value: float) -> int:
    """``ceil`` that forgives float noise (33.0000000001 -> 33)."""
    return math.ceil(value - 1e-9)


def _round(value: float) -> float:
    return float(math.floor(value + 0.5))


def _longest_prefix(table: dict[str, _T], model: str) -> _T | None:
    best: str | None = None
    for prefix in table:
        if model.startswith(prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    return None if best is None else table[best]


# ---- sizes ------------------------------------------------------------------------------------


def image_size(image: ImagePart) -> tuple[int, int] | None:
    """``(width, height)`` in pixels: given, or read from the data's header; ``None`` if unknown."""
    if image.width and image.height:
        return image.width, image.height
    data = image.data
    if data is None and image.url is not None and image.url.startswith("data:"):
        header, _, data = image.url.partition(",")
        if not header.endswith(";base64"):
            return None
    if not data:
        return None
    size = sniff_size(_b64decode(data[:_SNIFF_CHARS]))
    if size is None and len(data) > _SNIFF_CHARS:
        size = sniff_size(_b64decode(data))  # a JPEG whose size comes after big metadata
    return size


def sniff_size(head: bytes) -> tuple[int, int] | None:
    """The size in a PNG, JPEG, GIF or WebP header, or ``None``."""
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
            return _positive(struct.unpack(">II", head[16:24]))
        if head[:6] in (b"GIF87a", b"GIF89a"):
            return _positive(struct.unpack("<HH", head[6:10]))
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return _webp_size(head)
        if head[:2] == b"\xff\xd8":
            return _jpeg_size(head)
    except struct.error:
        return None  # cut short
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return _positive((width & 0x3FFF, height & 0x3FFF))
    if chunk == b"VP8L" and head[20:21] == b"\x2f":
        (bits,) = struct.unpack("<I", head[21:25])
        return _positive(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
    if chunk == b"VP8X" and len(head) >= 30:
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return _positive((width, height))
    return None


_JPEG_SOF: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE: Final = frozenset((0x01, *range(0xD0, 0xD9)))


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(head):
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_STANDALONE:
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        (length,) = struct.unpack(">H", head[i + 2 : i + 4])
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", head[i + 5 : i + 9])
            return _positive((width, height))
        i += 2 + length
    return None


def _positive(size: tuple[int, int]) -> tuple[int, int] | None:
    width, height = size
    return (width, height) if width > 0 and height > 0 else None


def _b64decode(text: str) -> bytes:
    """Decode base64 or base64url (or its start: a cut anywhere is fine), ignoring whitespace."""
    if any(c in text for c in " \n\r\t"):
        text = "".join(text.split())
    if "-" in text or "_" in text:
        text = text.translate(_URLSAFE)
    text = text[: len(text) // 4 * 4]
    try:
        return base64.b64decode(text)
    except (binascii.Error, ValueError):
        return b""
