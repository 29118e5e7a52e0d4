"""Latency histograms of fixed bins, as the usage rollups keep them.

A bin holds the latencies in ``(BOUNDS_MS[i - 1], BOUNDS_MS[i]]`` (the first from 0,
the last past the last bound): bins add up across minutes, series and processes,
which exact percentiles do not. A percentile read from them is the nearest-rank
one's bin, linearly interpolated inside it and never past the largest latency
seen: the exact value always lies in the same bin as the answer, and the bins are
at most twice as wide as their lower bound (usually 1.5x).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from itertools import accumulate

BOUNDS_MS: tuple[float, ...] = (
    5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500,
    10_000, 15_000, 20_000, 30_000, 60_000, 120_000,
)  # fmt: skip
"""The upper bounds of the bins, in milliseconds; one more bin holds what is past the last."""
BINS = len(BOUNDS_MS) + 1


def bin_of(ms: float) -> int:
    """The bin of a latency of ``ms`` milliseconds (``0`` to ``BINS - 1``)."""
    return bisect_left(BOUNDS_MS, ms)


def percentiles(counts: Sequence[int], ps: Sequence[float], largest: float) -> list[float]:
    """The ``ps``-th percentiles (0-100) of the latencies counted in ``counts`` (one count per
    bin), whose largest is ``largest``: each the nearest rank (``ceil(p * n / 100)``-th
    smallest) found in its bin and interpolated inside it. Zeros when nothing is counted."""
    running = list(accumulate(counts))
    total = running[-1] if running else 0
    if total <= 0:
        return [0.0] * len(ps)
    out: list[float] = []
    for p in ps:
        rank = max(-(-p * total // 100), 1)
        i = bisect_left(running, rank)  # the first bin whose running count reaches the rank
        count = counts[i]
        low = BOUNDS_MS[i - 1] if i else 0.0
        high = BOUNDS_MS[i] if i < len(BOUNDS_MS) else largest
        high = max(min(high, largest), low)  # never past the largest latency seen
        out.append(round(low + (high - low) * (rank - running[i] + count) / count, 3))
    return out


__all__ = ["BINS", "BOUNDS_MS", "bin_of", "percentiles"]
