"""Unique ids, cheaply: a random prefix per process and a counter.

``uuid.uuid4()`` reads the kernel's random source on every call, which shows up
at gateway request rates; ids of requests, answers and ledger rows only need to
be unique, not unpredictable. A forked child draws a new prefix.
"""

from __future__ import annotations

import itertools
import os
import secrets

_prefix = ""
_counter = itertools.count()


def _reseed() -> None:
    global _prefix, _counter
    _prefix = secrets.token_hex(8)
    _counter = itertools.count()


_reseed()
os.register_at_fork(after_in_child=_reseed)


def new_id() -> str:
    """24 or more hex digits, unique across processes and time (64 random bits + a counter)."""
    return f"{_prefix}{next(_counter):08x}"


__all__ = ["new_id"]
