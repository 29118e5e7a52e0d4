"""The usage ledger's SQL: records to rows and back, filters, totals.

Pure statement building; ``Store`` runs them. Totals are computed by the
database with ``GROUP BY`` on plain columns (``day`` is stored, not derived),
so SQLite and PostgreSQL give the same answers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from operator import attrgetter
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, case, func, select

from .records import UsageQuery, UsageRecord
from .schema import usage

GROUPS: dict[str, tuple[str, Any]] = {
    "tenant": ("tenant", usage.c.tenant),
    "key": ("key_id", usage.c.key_id),
    "model": ("model", usage.c.model),
    "day": ("day", usage.c.day),
}
"""group_by name -> (name in the result, column)."""

TOTALS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "cost_usd")
_FIELDS = tuple(c.name for c in usage.columns if c.name != "day")


_DAYS: dict[int, str] = {}


def utc_day(ts: float) -> str:
    """``YYYY-MM-DD`` of epoch seconds ``ts``, in UTC (remembered per day: the ledger asks per row)."""
    number = int(ts // 86400)
    day = _DAYS.get(number)
    if day is None:
        if len(_DAYS) > 4096:
            _DAYS.clear()
        day = _DAYS[number] = time.strftime("%Y-%m-%d", time.gmtime(number * 86400))
    return day


_VALUES = attrgetter(*_FIELDS)
_CREATED = _FIELDS.index("created_at")
COLUMNS = (*_FIELDS, "day")
"""The order of ``usage_params``' values."""


def usage_params(records: Sequence[UsageRecord], now: float) -> list[tuple[Any, ...]]:
    """Rows for ``records`` as value tuples in ``COLUMNS`` order, one per id (the first
    record of an id wins, as a stored one does); a record without ``created_at`` (0) is stamped ``now``.
    Tuples straight from the records' attributes: the ledger's hot path."""
    unique = {record.id: record for record in reversed(records)}
    out: list[tuple[Any, ...]] = []
    for record in unique.values():
        values = _VALUES(record)
        created = values[_CREATED]
        if not created:
            created = now
            values = (*values[:_CREATED], now, *values[_CREATED + 1 :])
        out.append((*values, utc_day(created)))
    return out


def usage_record(row: Row[Any]) -> UsageRecord:
    values = row._mapping
    return UsageRecord(**{name: values[name] for name in _FIELDS})


def conditions(query: UsageQuery) -> list[ColumnElement[bool]]:
    """``query``'s filters as WHERE terms (limit and offset aside)."""
    out: list[ColumnElement[bool]] = []
    if query.tenant is not None:
        out.append(usage.c.tenant == query.tenant)
    if query.key_id is not None:
        out.append(usage.c.key_id == query.key_id)
    if query.model is not None:
        out.append(usage.c.model == query.model)
    if query.request_id is not None:
        out.append(usage.c.request_id == query.request_id)
    if query.since is not None:
        out.append(usage.c.created_at >= query.since)
    if query.until is not None:
        out.append(usage.c.created_at < query.until)
    return out


def records_statement(query: UsageQuery) -> Select[Any]:
    """The records ``query`` matches, newest first, one page."""
    return (
        select(usage)
        .where(*conditions(query))
        .order_by(usage.c.created_at.desc(), usage.c.id.desc())
        .limit(query.limit)
        .offset(query.offset)
    )


def check_group_by(group_by: Sequence[str]) -> list[str]:
    """``group_by`` without repeats, or ``ValueError`` naming an unknown field."""
    if isinstance(group_by, str):
        group_by = [group_by]
    out: list[str] = []
    for name in group_by:
        if name not in GROUPS:
            raise ValueError(f"cannot group usage by {name!r} (choose from {', '.join(GROUPS)})")
        if name not in out:
            out.append(name)
    return out


def totals_statement(query: UsageQuery, group_by: Sequence[str]) -> Select[Any]:
    columns = [GROUPS[name][1].label(GROUPS[name][0]) for name in group_by]
    stmt = (
        select(
            *columns,
            func.count().label("requests"),
            func.coalesce(func.sum(case((usage.c.status >= 400, 1), else_=0)), 0).label("errors"),
            func.coalesce(func.sum(usage.c.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(usage.c.completion_tokens), 0).label("completion_tokens"),
            func.coalesce(func.sum(usage.c.cached_tokens), 0).label("cached_tokens"),
            func.coalesce(func.sum(usage.c.reasoning_tokens), 0).label("reasoning_tokens"),
            func.coalesce(func.sum(usage.c.cost_usd), 0.0).label("cost_usd"),
        )
        .select_from(usage)
        .where(*conditions(query))
    )
    if columns:
        stmt = stmt.group_by(*(GROUPS[name][1] for name in group_by))
    return stmt


def totals_rows(rows: Sequence[Row[Any]], group_by: Sequence[str]) -> list[dict[str, Any]]:
    """The rows as dicts with Python numbers (PostgreSQL sums may be ``Decimal``),
    sorted by the group fields with ``None`` last: one order on every engine,
    whatever its collation."""
    keys = [GROUPS[name][0] for name in group_by]
    out: list[dict[str, Any]] = []
    for row in rows:
        values = row._mapping
        item: dict[str, Any] = {key: values[key] for key in keys}
        for name in TOTALS:
            item[name] = float(values[name]) if name == "cost_usd" else int(values[name])
        out.append(item)
    out.sort(key=lambda item: [(item[k] is None, item[k] or "") for k in keys])
    return out
