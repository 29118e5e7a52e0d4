"""Structured logs of the gateway: one JSON object per line, a request id on
every line that concerns a request, never a key or a prompt."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from .._ids import new_id
from .._json import dumps

access = logging.getLogger("llmrelay.gateway.access")
_GOOD_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id(given: str | None) -> str:
    """The caller's ``x-request-id`` when it is a sane token, else a new one."""
    if given and _GOOD_ID.fullmatch(given):
        return given
    return f"req_{new_id()}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return dumps(line, str).decode()


AccessSink = Callable[[dict[str, Any]], None]


def log_access(fields: dict[str, Any]) -> None:
    """The default sink: a record on ``llmrelay.gateway.access`` (for embedding the
    gateway in a program with its own logging)."""
    if access.isEnabledFor(logging.INFO):
        access.info("request", extra={"fields": fields})


class JsonLines:
    """A fast access-log sink: JSON lines written in batches, one write per
    ``interval_s`` at most, so a request pays for one ``dumps`` and no
    I/O. At most ``interval_s`` of lines are lost if the process is killed."""

    def __init__(self, stream: IO[bytes] | None = None, interval_s: float = 0.05) -> None:
        self._stream = stream if stream is not None else sys.stderr.buffer
        self._interval_s = interval_s
        self._lines: list[bytes] = []
        self._handle: asyncio.TimerHandle | None = None
        self._second, self._date = -1, ""

    def __call__(self, fields: dict[str, Any]) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:  # formatting the date once a second, not once a line
            self._second, self._date = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        stamp = f"{self._date}.{int(now % 1 * 1000):03d}Z"
        line = {"ts": stamp, "level": "info", "logger": "llmrelay.gateway.access", "msg": "request", **fields}
        self._lines.append(dumps(line) + b"\n")
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(self._interval_s, self.flush)

    def flush(self) -> None:
        self._handle = None
        if not self._lines:
            return
        data = b"".join(self._lines)
        self._lines.clear()
        try:
            self._stream.write(data)
            self._stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not break serving
            pass


def configure(level: str = "INFO") -> None:
    """JSON lines on stderr for the ``llmrelay`` loggers (once per process)."""
    logger = logging.getLogger("llmrelay")
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


__all__ = ["AccessSink", "JsonFormatter", "JsonLines", "access", "configure", "log_access", "request_id"]
