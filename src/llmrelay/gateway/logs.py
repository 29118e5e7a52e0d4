"""Structured logs of the gateway: one JSON object per line, a request id on
every line that concerns a request, never a key or a prompt."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from typing import Any

import orjson

access = logging.getLogger("llmrelay.gateway.access")
_GOOD_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id(given: str | None) -> str:
    """The caller's ``x-request-id`` when it is a sane token, else a new one."""
    if given and _GOOD_ID.fullmatch(given):
        return given
    return f"req_{uuid.uuid4().hex[:24]}"


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
        return orjson.dumps(line, default=str).decode()


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


__all__ = ["JsonFormatter", "access", "configure", "request_id"]
