"""Server-sent events: one incremental decoder for every provider.

Follows the SSE spec's line rules: lines end with ``\\n``, ``\\r\\n`` or ``\\r``
(Gemini uses CRLF), a blank line dispatches the event, lines starting with
``:`` are comments (keep-alives), several ``data:`` lines join with ``\\n``.
Lines are split on bytes before decoding, so a multi-byte UTF-8 character split
across network reads is never broken (CR and LF never occur inside one).
"""

from __future__ import annotations

from typing import Any

from . import errors
from ._json import JSONDecodeError, loads
from ._secret import redact


class SSEEvent:
    __slots__ = ("data", "event", "id")

    def __init__(self, data: str, event: str | None = None, id: str | None = None) -> None:
        self.data = data
        self.event = event
        self.id = id

    def __repr__(self) -> str:
        return f"SSEEvent(event={self.event!r}, data={self.data!r})"


class SSEDecoder:
    """Feed bytes as they arrive; get back the events they complete."""

    __slots__ = ("_buf", "_data", "_event", "_id", "_pending_cr")

    def __init__(self) -> None:
        self._buf = b""
        self._pending_cr = False
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._pending_cr:
            # A CR ended the previous chunk: an LF starting this one belongs to it.
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
            self._pending_cr = False
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            if buf.endswith(b"\r"):
                self._pending_cr = True
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events: list[SSEEvent] = []
        if not self._data and self._event is None and b"\n\n" in buf:
            buf = self._whole_events(buf, events)
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        data = self._data
        for line in lines:  # the common lines inline (a call per line costs more than their work)
            if line.startswith(b"data: "):
                data.append(line[6:].decode("utf-8", "replace"))
            elif not line:  # a blank line: dispatch
                if data:
                    events.append(SSEEvent(data[0] if len(data) == 1 else "\n".join(data), self._event, self._id))
                    data = self._data = []
                self._event = None
            else:
                self._line(line, events)
                data = self._data
        return events

    def _whole_events(self, buf: bytes, events: list[SSEEvent]) -> bytes:
        """With no event begun, the events ``buf`` holds whole (up to its last blank line)
        into ``events``, each a single ``data:`` line taken at once; the rest of ``buf``
        is returned, for the line by line path."""
        parts = buf.split(b"\n\n")
        rest = parts.pop()
        for part in parts:
            if part.startswith(b"data: ") and b"\n" not in part:
                events.append(SSEEvent(part[6:].decode("utf-8", "replace"), None, self._id))
                continue
            for line in part.split(b"\n"):
                self._line(line, events)
            self._line(b"", events)
        return rest

    def flush(self) -> list[SSEEvent]:
        """End of stream: the last line and an event not followed by a blank line."""
        events: list[SSEEvent] = []
        if self._buf:
            self._line(self._buf, events)
            self._buf = b""
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                events.append(SSEEvent("\n".join(self._data), self._event, self._id))
            self._data = []
            self._event = None
            return
        if line.startswith(b"data:"):
            value = line[5:]
            if value.startswith(b" "):
                value = value[1:]
            self._data.append(value.decode("utf-8", "replace"))
            return
        if line[0] == 58:  # b":" comment / keep-alive
            return
        name, sep, raw = line.partition(b":")
        if sep and raw.startswith(b" "):
            raw = raw[1:]
        if name == b"event":
            self._event = raw.decode("utf-8", "replace")
        elif name == b"id":
            self._id = raw.decode("utf-8", "replace")
        elif name == b"data":  # "data" without a colon: an empty data line
            self._data.append("")
        # "retry" and unknown fields are ignored, as the spec says.


def encode_sse(data: str | bytes, event: str | None = None) -> bytes:
    """One SSE event as bytes (single-line JSON data)."""
    body = data.encode() if isinstance(data, str) else data
    if event is None:
        return b"data: " + body + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + body + b"\n\n"


def event_object(event: SSEEvent, provider: str) -> dict[str, Any] | None:
    """The event's data as a JSON object, ``None`` when it is other JSON (``null``,
    a list); a ``ProviderError`` naming the event when it is not JSON at all."""
    if not event.data or event.data.isspace():  # an empty data: keep-alive
        return None
    try:
        value = loads(event.data)
    except JSONDecodeError:
        snippet = redact(event.data[:120])
        raise errors.ProviderError(
            f"stream sent a non-JSON {event.event or 'data'} event: {snippet!r}", provider=provider
        ) from None
    return value if isinstance(value, dict) else None
