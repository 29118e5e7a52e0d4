"""Usage time series: the ledger's rollups summed per time bucket and per series, in one SQL query.

The series read the rollup of their bucket's width (per minute, hour or day), which
the ledger writes with its rows (``rollup.py``), never the ledger itself: a chart's
cost grows with its buckets and series, not with the requests in its range, and the
rows group by their start in the order they are stored. A bucket is always counted
whole (the first and the last too, whatever ``since`` and ``until`` say inside them).

Latency and time-to-first-token percentiles come from the rollups' histograms
(``histogram.py``): the nearest-rank percentile's bin, interpolated inside it, so the
exact value lies in the same bin as the answer. The database sums the bins; the
percentile of the sums is read here, the same on SQLite and PostgreSQL.

A ``split`` keeps the ``top`` values with the most requests in the range (ties by
value, the ledger's ``NULL`` last, in byte order on both engines) and sums the others
as one ``other`` series: the top values are a CTE the rollup rows are joined to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Row, Select, cast, func, literal_column, select

from .histogram import BINS, percentiles
from .records import BUCKETS, SeriesQuery
from .schema import LATENCY_BINS, ROLLUP_COUNTS, TTFT_BINS, usage_day, usage_hour, usage_minute

SPLIT_COLUMNS: dict[str, str] = {
    "model": "model", "tenant": "tenant", "key": "key_id", "deployment": "deployment", "status": "status",
}  # fmt: skip
"""split name -> the rollup column whose values make the series."""

PERCENTILES = (50, 95)
SUMS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost_usd")
METRICS = (
    *SUMS, *(f"latency_ms_p{p}" for p in PERCENTILES), *(f"ttft_ms_p{p}" for p in PERCENTILES),
)  # fmt: skip
"""What each series holds, one number per bucket. ``ttft_ms_*``: over the streams that had a first token."""
_PERCENTILE_METRICS = METRICS[len(SUMS) :]
_MAXIMA = ("latency_ms_max", "ttft_ms_max")

ALL = "all"
"""The name of the one series of a query without ``split``."""
OTHER = "other"
"""The name of the series summing the values past the top ones."""


@dataclass(slots=True)
class Series:
    """One series: its ``name`` (the split's value; ``None`` when the ledger has none, as for the
    master key's tenant), whether it is ``other``, and per metric one number per bucket."""

    name: str | int | None
    other: bool
    values: dict[str, list[float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "other": self.other, **self.values}


@dataclass(slots=True)
class UsageSeries:
    """``Store.usage_series``' answer: the buckets' starts (epoch seconds, UTC) and the series,
    most requested first, ``other`` last."""

    query: SeriesQuery
    starts: list[int]
    series: list[Series]

    def to_json(self) -> dict[str, Any]:
        q = self.query
        return {
            "object": "usage.series",
            "bucket": q.bucket, "bucket_seconds": BUCKETS[q.bucket], "since": q.since, "until": q.until,
            "split": q.split, "top": q.top if q.split else None,
            "buckets": [iso(start) for start in self.starts],
            "series": [s.to_json() for s in self.series],
        }  # fmt: skip


def iso(ts: int) -> str:
    """Epoch seconds as ISO 8601 in UTC (``2025-11-26T14:00:00Z``)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_TABLES = {"minute": usage_minute, "hour": usage_hour, "day": usage_day}
"""The rollup each bucket reads: its rows are the buckets, so rows group by their start as they are stored."""


def series_statement(query: SeriesQuery, dialect: str) -> Select[Any]:
    """The one statement for ``query`` in ``dialect`` (``sqlite`` or ``postgresql``): a row per
    (bucket ``b``, series number ``k``) that has requests, with the series' ``name`` (``''`` for
    the ledger's ``NULL``), the sums and the histograms' bins summed. ``k`` is the split value's
    rank by requests (1 is the most), ``top + 1`` for ``other``, 0 without split."""
    table = _TABLES[query.bucket]
    t = table.c
    width = BUCKETS[query.bucket]
    first = query.first_bucket * width
    where = [t.start >= first, t.start < first + query.buckets * width]
    for name, value in (("tenant", query.tenant), ("key_id", query.key_id), ("model", query.model)):
        if value is not None:
            where.append(t[name] == value)
    figures = (*ROLLUP_COUNTS, "cost_usd", *LATENCY_BINS, *TTFT_BINS)
    if not query.split:
        return (
            select(
                t.start.label("b"), literal_column("0").label("k"), literal_column("NULL").label("name"),
                *(_sum(t[n]) for n in figures), *(func.max(t[n]).label(n) for n in _MAXIMA),
            )
            .where(*where)
            .group_by(t.start)
        )  # fmt: skip
    column = t[SPLIT_COLUMNS[query.split]]
    # first per (bucket, value), once (materialized), in the rollup's key order where the split
    # is its next column (model): the wide rows are summed as they are read. The top values are
    # ranked from those few sums, which are then joined to them and summed again per series
    per_value = (
        select(
            t.start.label("b"), column.label("s"),
            *(_sum(t[n]) for n in figures), *(func.max(t[n]).label(n) for n in _MAXIMA),
        )
        .where(*where)
        .group_by(t.start, column)
        .cte("per_value")
        .prefix_with("MATERIALIZED")
    )  # fmt: skip
    v = per_value.c
    if query.split == "status":
        order: tuple[Any, ...] = (func.sum(v.requests).desc(), v.s)
    else:  # the ledger's NULL ('' here) last, the others in byte order
        order = (func.sum(v.requests).desc(), v.s == "", v.s.collate("C") if dialect == "postgresql" else v.s)
    top = (
        select(v.s, func.row_number().over(order_by=order).label("rank"))
        .group_by(v.s)
        .order_by(*order)
        .limit(query.top)
        .cte("top")
    )
    k: ColumnElement[Any] = func.coalesce(top.c.rank, literal_column(str(query.top + 1))).label("k")
    return (
        select(
            v.b, k, top.c.s.label("name"),
            *(_sum(v[n]) for n in figures), *(func.max(v[n]).label(n) for n in _MAXIMA),
        )
        .select_from(per_value.outerjoin(top, v.s == top.c.s))
        .group_by(v.b, k, top.c.s)
    )  # fmt: skip


def _sum(column: Any) -> ColumnElement[Any]:
    """The sum of a rollup column, a whole number on both engines where it counts (PostgreSQL
    sums ``BIGINT`` as ``NUMERIC``, which Python reads as ``Decimal``)."""
    total = func.sum(column)
    return (total if column.name == "cost_usd" else cast(total, BigInteger)).label(column.name)


def series_result(query: SeriesQuery, rows: Sequence[Row[Any]]) -> UsageSeries:
    """The statement's rows as series over every bucket, the empty ones zeros, the
    percentiles read from the summed bins."""
    width, first, count = BUCKETS[query.bucket], query.first_bucket, query.buckets
    found: dict[int, Series] = {}
    if rows:
        names = list(rows[0]._fields)
        at = {name: names.index(name) for name in (*SUMS, "b", "k", "name", "ttft_count", *_MAXIMA)}
        lat, ttft = names.index(LATENCY_BINS[0]), names.index(TTFT_BINS[0])
    for row in rows:
        k = int(row[at["k"]])
        series = found.get(k)
        if series is None:
            other = bool(query.split) and k > query.top
            named = ALL if not query.split else OTHER if other else _name(row[at["name"]])
            series = found[k] = Series(named, other, {m: [0] * count for m in METRICS})
        i = int(row[at["b"]]) // width - first
        values = series.values
        for metric in SUMS:
            values[metric][i] = float(row[at[metric]]) if metric == "cost_usd" else int(row[at[metric]])
        got = percentiles(row[lat : lat + BINS], PERCENTILES, row[at["latency_ms_max"]])
        if row[at["ttft_count"]]:
            got += percentiles(row[ttft : ttft + BINS], PERCENTILES, row[at["ttft_ms_max"]])
        for metric, value in zip(_PERCENTILE_METRICS, got, strict=False):  # no first token: zeros
            values[metric][i] = value
    if not found and not query.split:
        found[0] = Series(ALL, False, {m: [0] * count for m in METRICS})
    starts = [(first + i) * width for i in range(count)]
    return UsageSeries(query, starts, [found[k] for k in sorted(found)])


def _name(value: Any) -> str | int | None:
    """A split value as the ledger has it (the rollups keep its ``NULL`` as ``''``)."""
    return None if value == "" else value


__all__ = ["ALL", "METRICS", "OTHER", "SPLIT_COLUMNS", "Series", "UsageSeries", "series_result", "series_statement"]
