"""``GET /admin/usage/series``: the usage ledger as time series, for charts.

The same filters and the same tenant scoping as ``GET /admin/usage`` (a virtual key
sees its own tenant's, asking for another's is a 403); the figures come from one SQL
query (``Store.usage_series``). Every parameter is checked first: a bad one is a 400
naming it, never a 500.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, cast

from ..store.records import BUCKETS, LAST_TIME, MAX_BUCKETS, MAX_TOP, SPLITS, Bucket, SeriesQuery, Split
from .admin_api import own_tenant, printable, query_number, refuse_unknown
from .exchange import Exchange
from .http import HTTPError
from .storage import store_call
from .tenancy import Caller

if TYPE_CHECKING:
    from .app import Gateway

PARAMS = frozenset(("bucket", "since", "until", "split", "top", "tenant", "key_id", "model"))
DEFAULT_RANGE_S = 86400.0
"""Without ``since``: the last 24 hours."""
DEFAULT_BUCKETS = 200
"""Without ``bucket``: the finest of minute, hour, day that gives at most this many."""
MAX_FILTER_CHARS = 256


async def usage_series(gw: Gateway, ex: Exchange) -> None:
    """``GET /admin/usage/series?bucket=&since=&until=&split=&top=&tenant=&key_id=&model=``."""
    query = parse(ex.query, ex.caller, time.time())
    series = await store_call(gw.store_().usage_series, query)
    await ex.reply(200, series.to_json())


def parse(raw: dict[str, str], caller: Caller, now: float) -> SeriesQuery:
    """The query the parameters ask for, or a 400 naming the first bad one."""
    refuse_unknown(raw, PARAMS)
    filters = {name: _text(raw, name) for name in ("tenant", "key_id", "model")}
    tenant = own_tenant(caller, filters["tenant"])
    until = _time(raw, "until", now)
    since = _time(raw, "since", None)
    if since is not None and since >= until:
        raise HTTPError(400, f"'since' ({since:g}) must be before 'until' ({until:g})", param="since")
    bucket = _choice(raw, "bucket", tuple(BUCKETS))
    if since is None:
        bucket = bucket or _default_bucket(DEFAULT_RANGE_S)
        width = BUCKETS[bucket]
        since = max(0.0, math.floor((until - DEFAULT_RANGE_S) / width) * width)  # whole buckets
    bucket = bucket or _default_bucket(until - since)
    split = _choice(raw, "split", SPLITS)
    top = _top(raw)
    try:
        return SeriesQuery(
            bucket=cast(Bucket, bucket), since=since, until=until, split=cast(Split | None, split), top=top,
            tenant=tenant, key_id=filters["key_id"], model=filters["model"],
        )  # fmt: skip
    except ValueError as exc:  # too many buckets: the only check left to the query
        raise HTTPError(400, str(exc).removeprefix("series: "), param="bucket") from None


def _default_bucket(span: float) -> str:
    for name, width in BUCKETS.items():
        if span / width <= DEFAULT_BUCKETS:
            return name
    return "day"


def _shown(value: str) -> str:
    return repr(printable(value))


def _text(raw: dict[str, str], name: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not value or len(value) > MAX_FILTER_CHARS or not value.isprintable():
        raise HTTPError(
            400, f"{name!r} must be 1 to {MAX_FILTER_CHARS} printable characters, not {_shown(value)}", param=name
        )
    return value


def _time(raw: dict[str, str], name: str, default: float | None) -> Any:
    return query_number(raw, name, default, 0, LAST_TIME)  # epoch seconds


def _choice(raw: dict[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if value not in allowed:
        raise HTTPError(400, f"{name!r} must be one of {', '.join(allowed)}, not {_shown(value)}", param=name)
    return value


def _top(raw: dict[str, str]) -> int:
    value = raw.get("top")
    if value is None:
        return 10
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_TOP:
        raise HTTPError(400, f"'top' must be a whole number from 1 to {MAX_TOP}, not {_shown(value)}", param="top")
    return int(value)


__all__ = ["DEFAULT_BUCKETS", "DEFAULT_RANGE_S", "MAX_BUCKETS", "parse", "usage_series"]
