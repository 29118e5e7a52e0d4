"""Secrets (API keys) that never show up in a repr, a log line or an error."""

from __future__ import annotations

import re


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


_KEY_PATTERNS = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|sk-ant-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|(?<=key=)[^&\s\"']+)"
)


def redact(text: str, *secrets: Secret | str | None) -> str:
    """``text`` with the given secrets and anything shaped like an API key masked."""
    for secret in secrets:
        value = secret.get() if isinstance(secret, Secret) else secret
        if value and len(value) >= 4:
            text = text.replace(value, "****")
    return _KEY_PATTERNS.sub("****", text)
