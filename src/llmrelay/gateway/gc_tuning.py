"""Garbage collector settings for a gateway process.

A request makes a few hundred short-lived container objects (coroutines,
futures, dicts, parsed JSON) that reference counting frees as soon as the
answer is sent. With Python's default first-generation threshold (700), 16
requests in flight cross it every few requests: each collection walks the live
ones, promotes them, and the promotions trigger full collections that walk
every object the process holds (about 70,000 after start-up, mostly imported
modules). Measured here, that was about 13% of the gateway's time under load.

At start-up the gateway therefore freezes what start-up made (``gc.freeze``:
the collector never walks it again) and raises the first threshold to 10,000,
above what a busy worker holds in flight, so collections run only for real
cyclic garbage. ``LLMRELAY_GC_THRESHOLD`` sets another first threshold;
``0`` leaves the collector exactly as Python set it. Figures: docs/performance.md.
"""

from __future__ import annotations

import gc
import logging
import os

from .. import errors

log = logging.getLogger("llmrelay.gateway")
DEFAULT_THRESHOLD = 10_000


def threshold_from_env() -> int:
    """The first-generation threshold ``LLMRELAY_GC_THRESHOLD`` asks for (default 10,000)."""
    raw = os.environ.get("LLMRELAY_GC_THRESHOLD", "").strip()
    if not raw:
        return DEFAULT_THRESHOLD
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise errors.ConfigError(f"LLMRELAY_GC_THRESHOLD must be a whole number >= 0, not {raw!r}")
    return value


def tune(threshold: int) -> None:
    """Freeze what exists now and raise the first-generation threshold (``0``: change nothing)."""
    if threshold == 0:
        return
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(threshold, second, third)
    log.debug("gc: froze %d objects, first-generation threshold %d", gc.get_freeze_count(), threshold)


__all__ = ["DEFAULT_THRESHOLD", "threshold_from_env", "tune"]
