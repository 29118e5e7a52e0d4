"""AWS event-stream framing (``application/vnd.amazon.eventstream``), the binary
counterpart of ``_sse.py``: each message is a prelude (total length, headers
length, CRC32 of both), typed headers, a payload and a CRC32 of the whole
message. Both CRCs are checked; frames come out whole across any split of the
network reads."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from . import errors

HeaderValue = bool | int | str | bytes
_PRELUDE = struct.Struct(">III")  # total length, headers length, prelude CRC32
_MAX_FRAME = 24 * 1024 * 1024  # far above Bedrock's largest event; guards against garbage lengths
_FIXED_SIZE = {2: 1, 3: 2, 4: 4, 5: 8, 8: 8}  # byte, short, integer, long, timestamp (signed big-endian)


@dataclass(frozen=True, slots=True)
class Frame:
    """One event-stream message."""

    headers: dict[str, HeaderValue]
    payload: bytes

    def header(self, name: str) -> str:
        value = self.headers.get(name)
        return value if isinstance(value, str) else ""


class EventStreamParser:
    """Bytes in, complete frames out, across any split of the network reads.

    A corrupt frame raises ``ProviderError``; the good frames before it are
    returned first (the error is raised by the next ``feed`` or ``close``)."""

    __slots__ = ("_buffer", "_failure", "_provider")

    def __init__(self, provider: str) -> None:
        self._buffer = bytearray()
        self._failure: errors.ProviderError | None = None
        self._provider = provider

    def feed(self, data: bytes) -> list[Frame]:
        if self._failure is not None:
            raise self._failure
        self._buffer += data
        frames: list[Frame] = []
        try:
            while (frame := self._next()) is not None:
                frames.append(frame)
        except errors.ProviderError as exc:
            if not frames:
                raise
            self._failure = exc
        return frames

    def close(self) -> None:
        """Raises when a frame was corrupt or the body ended inside a frame."""
        if self._failure is not None:
            raise self._failure
        if self._buffer:
            raise self._error(f"stream ended inside a frame ({len(self._buffer)} bytes left)")

    def _next(self) -> Frame | None:
        buffer = self._buffer
        if len(buffer) < _PRELUDE.size:
            return None
        total, headers_length, prelude_crc = _PRELUDE.unpack_from(buffer)
        if zlib.crc32(buffer[:8]) != prelude_crc:
            raise self._error("prelude CRC mismatch (not an event stream, or corrupted)")
        if not 16 <= total <= _MAX_FRAME or headers_length > total - 16:
            raise self._error(f"impossible frame lengths ({total}, {headers_length})")
        if len(buffer) < total:
            return None
        (message_crc,) = struct.unpack_from(">I", buffer, total - 4)
        if zlib.crc32(buffer[: total - 4]) != message_crc:
            raise self._error("message CRC mismatch (corrupted frame)")
        headers_end = _PRELUDE.size + headers_length
        frame = Frame(self._headers(bytes(buffer[_PRELUDE.size : headers_end])), bytes(buffer[headers_end : total - 4]))
        del buffer[:total]
        return frame

    def _headers(self, data: bytes) -> dict[str, HeaderValue]:
        try:
            return parse_headers(data)
        except (IndexError, ValueError, UnicodeDecodeError) as exc:
            raise self._error(f"malformed frame headers ({exc})") from None

    def _error(self, what: str) -> errors.ProviderError:
        return errors.ProviderError(f"event stream: {what}", provider=self._provider)


def parse_headers(data: bytes) -> dict[str, HeaderValue]:
    """Event-stream headers: name length (1 byte), name, type (1 byte), value."""
    headers: dict[str, HeaderValue] = {}
    pos = 0
    while pos < len(data):
        name_end = pos + 1 + data[pos]
        name = data[pos + 1 : name_end].decode()
        kind = data[name_end]
        pos = name_end + 1
        value: HeaderValue
        if kind in (0, 1):  # true, false: no value bytes
            value = kind == 0
        elif kind in _FIXED_SIZE:
            size = _FIXED_SIZE[kind]
            value = int.from_bytes(data[pos : pos + size], "big", signed=True)
            pos += size
        elif kind in (6, 7):  # bytes, string: 2-byte length
            size = int.from_bytes(data[pos : pos + 2], "big")
            raw = data[pos + 2 : pos + 2 + size]
            value = raw.decode() if kind == 7 else raw
            pos += 2 + size
        elif kind == 9:  # uuid
            value = data[pos : pos + 16]
            pos += 16
        else:
            raise ValueError(f"unknown header type {kind}")
        if pos > len(data):
            raise ValueError(f"header {name!r} runs past the headers")
        headers[name] = value
    return headers
