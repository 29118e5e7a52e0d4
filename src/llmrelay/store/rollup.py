"""The ledger summed per minute, hour and day, written in the same transaction as its rows.

The usage series read these, not the ledger: a week of hours is 168 rollup rows per
(tenant, key, model, deployment, status) instead of every request of the week, so a
chart costs the same on a million ledger rows as on a thousand. Latencies and times
to first token are kept as histograms of fixed bins (``histogram.py``), which add up
where exact percentiles would not.

Only rows the ledger actually added are summed (a record sent twice, as a retried
batch may be, is skipped by its id and counted once), and a batch's records are summed
in Python first, so a batch of hundreds of requests is a few upserts per table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

from .histogram import BINS, bin_of
from .ledger import COLUMNS
from .schema import (
    LATENCY_BINS,
    ROLLUP_COUNTS,
    ROLLUP_KEYS,
    ROLLUP_MAXES,
    ROLLUP_TOTALS,
    TTFT_BINS,
    usage_day,
    usage_hour,
    usage_minute,
)

TABLES = ((usage_minute.name, 60), (usage_hour.name, 3600), (usage_day.name, 86400))
"""Each rollup table and the seconds its rows sum."""

VALUES = (*ROLLUP_COUNTS, *ROLLUP_TOTALS, *ROLLUP_MAXES, *LATENCY_BINS, *TTFT_BINS)
"""A rollup row's figures, in the order ``sums`` keeps them."""
_MAXES = frozenset(VALUES.index(name) for name in ROLLUP_MAXES)
(_REQUESTS, _ERRORS, _PROMPT, _COMPLETION, _CACHED, _REASONING, _TTFT_COUNT, _COST, _LATENCY_SUM,
 _LATENCY_MAX, _TTFT_MAX) = range(11)  # fmt: skip
_LATENCY_BIN0 = len(ROLLUP_COUNTS) + len(ROLLUP_TOTALS) + len(ROLLUP_MAXES)
_TTFT_BIN0 = _LATENCY_BIN0 + BINS
assert VALUES[_TTFT_COUNT] == "ttft_count" and VALUES[_LATENCY_MAX] == "latency_ms_max"

_AT = {name: COLUMNS.index(name) for name in COLUMNS}
_CREATED, _TENANT, _KEY, _MODEL, _DEPLOYMENT, _STATUS = (
    _AT[n] for n in ("created_at", "tenant", "key_id", "model", "deployment", "status")
)
_TOKENS = [(slot, _AT[n]) for slot, n in ((_PROMPT, "prompt_tokens"), (_COMPLETION, "completion_tokens"),
           (_CACHED, "cached_tokens"), (_REASONING, "reasoning_tokens"))]  # fmt: skip
_COST_AT, _LATENCY_AT, _TTFT_AT = _AT["cost_usd"], _AT["latency_ms"], _AT["ttft_ms"]

Key = tuple[int, str, str, str, str, int]
"""A rollup row's ``ROLLUP_KEYS``."""


def per_minute(params: Iterable[Sequence[Any]]) -> dict[Key, list[float]]:
    """Ledger rows (value tuples in ``ledger.COLUMNS`` order) summed per minute and key."""
    out: dict[Key, list[float]] = {}
    for row in params:
        key = (
            int(row[_CREATED] // 60) * 60, row[_MODEL], row[_TENANT] or "", row[_KEY] or "", row[_DEPLOYMENT] or "",
            row[_STATUS],
        )  # fmt: skip
        sums = out.get(key)
        if sums is None:
            sums = out[key] = [0] * len(VALUES)
        sums[_REQUESTS] += 1
        if row[_STATUS] >= 400:
            sums[_ERRORS] += 1
        for slot, at in _TOKENS:
            sums[slot] += row[at]
        sums[_COST] += row[_COST_AT] or 0.0
        latency = row[_LATENCY_AT]
        sums[_LATENCY_SUM] += latency
        sums[_LATENCY_MAX] = max(sums[_LATENCY_MAX], latency)
        sums[_LATENCY_BIN0 + bin_of(latency)] += 1
        ttft = row[_TTFT_AT]
        if ttft is not None:
            sums[_TTFT_COUNT] += 1
            sums[_TTFT_MAX] = max(sums[_TTFT_MAX], ttft)
            sums[_TTFT_BIN0 + bin_of(ttft)] += 1
    return out


def coarser(rows: dict[Key, list[float]], width: int) -> dict[Key, list[float]]:
    """``rows`` summed again over ``width`` seconds (a multiple of theirs)."""
    out: dict[Key, list[float]] = {}
    for (start, *rest), sums in rows.items():
        key: Key = (start // width * width, *rest)  # type: ignore[assignment]
        into = out.get(key)
        if into is None:
            out[key] = list(sums)
            continue
        for i, value in enumerate(sums):
            into[i] = max(into[i], value) if i in _MAXES else into[i] + value
    return out


@cache
def upsert(dialect: str, table: str) -> str:
    """The DB-API statement adding one row of sums to ``table`` (``ROLLUP_KEYS`` then ``VALUES``)."""
    mark = "%s" if dialect == "postgresql" else "?"
    bigger = "GREATEST" if dialect == "postgresql" else "max"
    names = (*ROLLUP_KEYS, *VALUES)
    add = [
        f"{n} = {bigger}({table}.{n}, excluded.{n})" if n in ROLLUP_MAXES else f"{n} = {table}.{n} + excluded.{n}"
        for n in VALUES
    ]
    return (
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join([mark] * len(names))}) "
        f"ON CONFLICT ({', '.join(ROLLUP_KEYS)}) DO UPDATE SET {', '.join(add)}"
    )


def write(cursor: Any, dialect: str, added: Sequence[Sequence[Any]]) -> None:
    """Add the ledger rows ``added`` (just inserted, in this transaction) to every rollup table."""
    if not added:
        return
    rows = per_minute(added)
    for table, width in TABLES:
        if width != 60:
            rows = coarser(rows, width)  # from the previous table's rows: fewer each time
        # in key order: writers upserting the same rows take their locks in one order (no deadlock)
        cursor.executemany(upsert(dialect, table), [(*key, *rows[key]) for key in sorted(rows)])


__all__ = ["TABLES", "VALUES", "coarser", "per_minute", "upsert", "write"]
