"""Usage time series: the ledger summed per time bucket and per series, in one SQL query.

Every figure is computed by the database, percentiles included, in one statement
per series query. Percentiles are *nearest rank*: the p-th percentile of n
latencies is the ``ceil(p * n)``-th smallest, an observed value, so SQLite and
PostgreSQL give the same number for the same rows:

- PostgreSQL: ``percentile_disc(p) WITHIN GROUP (ORDER BY latency_ms)`` (its
  definition is exactly that rank);
- SQLite, which has no percentile function: ``ROW_NUMBER()`` and ``COUNT(*)`` over
  the rows of each (bucket, series) ordered by latency, then per group the least
  latency whose row number ``rn`` has ``rn * 100 >= P * n`` (integer arithmetic:
  no rounding to differ).

A ``split`` keeps the ``top`` values with the most requests in the range (ties by
value, NULL last, in byte order on both engines) and sums the others as one
``other`` series, percentiles included: the top values are a CTE the rows are
joined to, so "other" is ranked over its own rows, not merged from per-value figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    FromClause,
    Integer,
    Row,
    Select,
    case,
    cast,
    func,
    literal_column,
    or_,
    select,
)

from .ledger import conditions
from .records import BUCKETS, SeriesQuery, UsageQuery
from .schema import usage

SPLIT_COLUMNS: dict[str, Any] = {
    "model": usage.c.model,
    "tenant": usage.c.tenant,
    "key": usage.c.key_id,
    "deployment": usage.c.deployment,
    "status": usage.c.status,
}
"""split name -> the ledger column whose values make the series."""

PERCENTILES = (50, 95)
METRICS = (
    "requests", "errors", "prompt_tokens", "completion_tokens", "cost_usd", "latency_ms_p50", "latency_ms_p95",
)  # fmt: skip
"""What each series holds, one number per bucket."""
_FLOATS = frozenset(("cost_usd", *(f"latency_ms_p{p}" for p in PERCENTILES)))

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


def _bucket(dialect: str, width: int) -> ColumnElement[int]:
    """The bucket number of a row: ``floor(created_at / width)`` (``created_at`` >= 0, so
    SQLite's truncating ``CAST`` floors; PostgreSQL's would round)."""
    if dialect == "postgresql":
        return cast(func.floor(usage.c.created_at / literal_column(str(width))), BigInteger)
    return cast(usage.c.created_at / literal_column(str(width)), Integer)


def series_statement(query: SeriesQuery, dialect: str) -> Select[Any]:
    """The one statement for ``query`` in ``dialect`` (``sqlite`` or ``postgresql``): a row per
    (bucket ``b``, series number ``k``) that has records, with the series' ``name`` and the metrics.
    ``k`` is the split value's rank by requests (1 is the most), ``top + 1`` for ``other``, 0 without split."""
    filters = UsageQuery(
        tenant=query.tenant, key_id=query.key_id, model=query.model, since=query.since, until=query.until
    )
    where = conditions(filters)
    column = SPLIT_COLUMNS[query.split] if query.split else None
    base = (
        select(
            _bucket(dialect, BUCKETS[query.bucket]).label("b"),
            *([column.label("s")] if column is not None else []),
            usage.c.status,
            usage.c.prompt_tokens,
            usage.c.completion_tokens,
            usage.c.cost_usd,
            usage.c.latency_ms,
        )
        .where(*where)
        .subquery("base")
    )
    if column is not None:
        # read from the table, not from base: the (column, created_at) index answers it without a sort
        in_bytes = column.collate("C") if dialect == "postgresql" and query.split != "status" else column
        order = (func.count().desc(), column.is_(None), in_bytes)
        top = (
            select(column.label("s"), func.row_number().over(order_by=order).label("rank"))
            .where(*where)
            .group_by(column)
            .order_by(*order)
            .limit(query.top)
            .cte("top")
        )
        rows: FromClause = base.outerjoin(top, base.c.s.is_not_distinct_from(top.c.s))
        k: ColumnElement[Any] = func.coalesce(top.c.rank, literal_column(str(query.top + 1)))
        name: ColumnElement[Any] = top.c.s
    else:
        rows, k, name = base, literal_column("0"), literal_column("NULL")
    if dialect == "postgresql":
        ranks = [
            func.percentile_disc(p / 100).within_group(base.c.latency_ms).label(f"latency_ms_p{p}") for p in PERCENTILES
        ]
        return (
            select(base.c.b, k.label("k"), name.label("name"), *_sums(base.c), *ranks)
            .select_from(rows)
            .group_by(base.c.b, *((k, name) if column is not None else ()))
        )
    # SQLite: one sort. Each (bucket, series) partition ordered by latency gives every row its
    # rank rn, the partition's size n and running sums; only the rows at the percentiles' ranks
    # and the last row (whose running sums are the totals) go on to the GROUP BY
    part = (base.c.b, k)
    latency = base.c.latency_ms
    ranked = (
        select(
            base.c.b,
            k.label("k"),
            name.label("name"),
            base.c.latency_ms,
            func.row_number().over(partition_by=part, order_by=latency, rows=(None, 0)).label("rn"),
            func.count().over(partition_by=part, order_by=latency, rows=(None, None)).label("n"),
            *(
                total.over(partition_by=part, order_by=latency, rows=(None, 0)).label(label)
                for label, total in _running(base.c)
            ),
        )
        .select_from(rows)
        .subquery("ranked")
    )
    r = ranked.c
    at_rank = {p: (r.rn * 100 >= p * r.n) & ((r.rn - 1) * 100 < p * r.n) for p in PERCENTILES}
    last = r.rn == r.n
    return (
        select(
            r.b,
            r.k,
            r.name,
            *(func.max(case((last, r[label]))).label(label) for label, _ in _running(base.c)),
            *(func.max(case((at_rank[p], r.latency_ms))).label(f"latency_ms_p{p}") for p in PERCENTILES),
        )
        .where(or_(last, *at_rank.values()))
        .group_by(r.b, *((r.k, r.name) if column is not None else ()))
    )


def _running(c: Any) -> list[tuple[str, Any]]:
    """The additive metrics as window aggregates (their value on a partition's last row is its total)."""
    return [
        ("requests", func.count()),
        ("errors", func.sum(case((c.status >= 400, 1), else_=0))),
        ("prompt_tokens", func.sum(c.prompt_tokens)),
        ("completion_tokens", func.sum(c.completion_tokens)),
        ("cost_usd", func.total(c.cost_usd)),
    ]


def _sums(c: Any) -> list[ColumnElement[Any]]:
    """The additive metrics over the rows whose columns are ``c``."""
    return [
        func.count().label("requests"),
        func.coalesce(func.sum(case((c.status >= 400, 1), else_=0)), 0).label("errors"),
        func.coalesce(func.sum(c.prompt_tokens), 0).label("prompt_tokens"),
        func.coalesce(func.sum(c.completion_tokens), 0).label("completion_tokens"),
        func.coalesce(func.sum(c.cost_usd), 0.0).label("cost_usd"),
    ]


def series_result(query: SeriesQuery, rows: Sequence[Row[Any]]) -> UsageSeries:
    """The statement's rows as series over every bucket, the empty ones zeros."""
    width, first, count = BUCKETS[query.bucket], query.first_bucket, query.buckets
    found: dict[int, Series] = {}
    for row in rows:
        v = row._mapping
        k = int(v["k"])
        series = found.get(k)
        if series is None:
            other = bool(query.split) and k > query.top
            named = ALL if not query.split else OTHER if other else v["name"]
            series = found[k] = Series(named, other, {m: [0] * count for m in METRICS})
        i = int(v["b"]) - first
        for metric in METRICS:
            series.values[metric][i] = float(v[metric]) if metric in _FLOATS else int(v[metric])
    if not found and not query.split:
        found[0] = Series(ALL, False, {m: [0] * count for m in METRICS})
    starts = [(first + i) * width for i in range(count)]
    return UsageSeries(query, starts, [found[k] for k in sorted(found)])


__all__ = ["ALL", "METRICS", "OTHER", "SPLIT_COLUMNS", "Series", "UsageSeries", "series_result", "series_statement"]
