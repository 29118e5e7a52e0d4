"""``GET /admin/usage/series`` and ``Store.usage_series``: sums per bucket (whole buckets),
zero-filled gaps, top-N with ``other``, percentiles in the exact nearest-rank value's
histogram bin, rollups written with the ledger (records sent twice counted once, rollups
filled from an older database's ledger when it is migrated), the same answer
on SQLite and PostgreSQL (``LLMRELAY_TEST_POSTGRES_URL``, see test_store.py; skipped
with the reason when no server answers), hostile parameters, tenant isolation."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import make_url

from fakeserver import Reply
from gateways import Served
from llmrelay.store import Store, UsageQuery, UsageRecord
from llmrelay.store.engine import make_engine
from llmrelay.store.histogram import BOUNDS_MS, bin_of, percentiles
from llmrelay.store.ledger import COLUMNS, usage_params
from llmrelay.store.migrations import MIGRATIONS, migrate
from llmrelay.store.records import SeriesQuery
from test_gateway_openai import CHAT, answer, sse
from test_gateway_tenants import HI, call, new_key
from test_store import PG_URL, db_url, postgres_reason, record  # noqa: F401  (db_url: SQLite file or PG schema)

HOUR = 3600
T0 = 1_764_115_200.0  # 2025-11-26T00:00:00Z


def rank(values: list[float], p: int) -> float:
    """The nearest-rank p-th percentile: the ceil(p * n / 100)-th smallest."""
    ordered = sorted(values)
    return ordered[-(-p * len(ordered) // 100) - 1] if ordered else 0.0


def spread(seed: int = 3, count: int = 600) -> list[UsageRecord]:
    """Records over 12 hours with holes (hours 4 and 5 empty), 7 models, some errors."""
    rnd = random.Random(seed)
    out = []
    for n in range(count):
        hour = rnd.choice([h for h in range(12) if h not in (4, 5)])
        model = rnd.choices([f"m{i}" for i in range(7)], [30, 20, 12, 8, 5, 3, 1])[0]
        out.append(
            record(
                request_id=f"req-{n}",
                tenant=rnd.choice(["acme", "globex", None]),
                model=model,
                deployment=None if n % 11 == 0 else f"openai/{model}",
                status=rnd.choice([200] * 9 + [429, 500]),
                prompt_tokens=rnd.randint(1, 500),
                completion_tokens=rnd.randint(0, 90),
                cost_usd=None if n % 13 == 0 else rnd.randint(1, 10_000) / 1e6,
                latency_ms=rnd.choice([float(rnd.randint(5, 5000)), rnd.lognormvariate(6, 1.2)]),
                created_at=T0 + hour * HOUR + rnd.random() * HOUR,
                ttft_ms=None if n % 3 else rnd.lognormvariate(5, 1),
            )
        )
    return out


def expected(rows: list[UsageRecord], query: SeriesQuery) -> dict[Any, dict[str, list[float]]]:
    """What the series should be, computed here from the records (whole buckets; exact
    nearest-rank percentiles, which ``answered`` turns into their histogram bins)."""
    width = {"minute": 60, "hour": 3600, "day": 86400}[query.bucket]
    first = int(query.since // width)
    begin, end = first * width, (first + query.buckets) * width
    picked = [r for r in rows if begin <= r.created_at < end]
    attr = {"key": "key_id"}.get(query.split or "", query.split)
    value = (lambda r: getattr(r, attr)) if attr else (lambda r: "all")
    counts: dict[Any, int] = {}
    for r in picked:
        counts[value(r)] = counts.get(value(r), 0) + 1
    ordered = sorted(counts, key=lambda v: (-counts[v], v is None, str(v) if v is not None else ""))
    top = set(ordered[: query.top]) if query.split else set(ordered)
    groups: dict[Any, dict[int, list[UsageRecord]]] = {}
    for r in picked:
        name = value(r) if value(r) in top else ("other", True)
        groups.setdefault(name, {}).setdefault(int(r.created_at // width) - first, []).append(r)
    out: dict[Any, dict[str, list[float]]] = {}
    for name, buckets in groups.items():
        series: dict[str, list[float]] = {m: [0] * query.buckets for m in METRICS}
        for i, members in buckets.items():
            latencies = [r.latency_ms for r in members]
            series["requests"][i] = len(members)
            series["errors"][i] = sum(r.status >= 400 for r in members)
            series["prompt_tokens"][i] = sum(r.prompt_tokens for r in members)
            series["completion_tokens"][i] = sum(r.completion_tokens for r in members)
            series["cost_usd"][i] = pytest.approx(sum(r.cost_usd or 0.0 for r in members))
            ttfts = [r.ttft_ms for r in members if r.ttft_ms is not None]
            for p in (50, 95):
                series[f"latency_ms_p{p}"][i] = bin_of(rank(latencies, p))
                series[f"ttft_ms_p{p}"][i] = bin_of(rank(ttfts, p)) if ttfts else 0
        out[name] = series
    return out


METRICS = (
    "requests", "errors", "prompt_tokens", "completion_tokens", "cost_usd", "latency_ms_p50", "latency_ms_p95",
    "ttft_ms_p50", "ttft_ms_p95",
)  # fmt: skip


def answered(store: Store, query: SeriesQuery) -> dict[Any, dict[str, list[float]]]:
    """The store's series, each percentile as its histogram bin (the exact value's, when right)."""
    got = store.usage_series(query)
    out = {}
    for s in got.series:
        values = dict(s.values)
        for metric in METRICS:
            if "_p" in metric:
                values[metric] = [bin_of(v) if v else 0 for v in values[metric]]
        out[("other", True) if s.other else s.name] = values
    return out


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:  # noqa: F811
    opened = Store.open(db_url)
    try:
        yield opened
    finally:
        opened.close()


# ---------------------------------------------------------------- the store, on both engines


def test_sums_percentiles_and_zero_filled_gaps(store: Store) -> None:
    rows = spread()
    assert store.add_usage(rows) == len(rows)
    query = SeriesQuery("hour", T0, T0 + 12 * HOUR)
    got = store.usage_series(query)
    assert len(got.starts) == 12 and got.starts[0] == T0 and got.starts[-1] == T0 + 11 * HOUR
    [series] = got.series
    assert series.name == "all" and not series.other
    assert answered(store, query) == expected(rows, query)
    assert series.values["requests"][4] == series.values["requests"][5] == 0  # the holes, as zeros
    assert series.values["latency_ms_p95"][4] == 0
    assert sum(series.values["requests"]) == store.count_usage(UsageQuery(since=T0, until=T0 + 12 * HOUR))


@pytest.mark.parametrize("split", ["model", "tenant", "key", "deployment", "status"])
def test_split_keeps_the_top_and_sums_the_rest_as_other(store: Store, split: str) -> None:
    rows = spread(seed=5)
    store.add_usage(rows)
    query = SeriesQuery("hour", T0 + 1800, T0 + 11 * HOUR + 60, split=split, top=3)  # type: ignore[arg-type]
    assert answered(store, query) == expected(rows, query)
    got = store.usage_series(query)
    assert got.series[-1].other == (len({getattr(r, {"key": "key_id"}.get(split, split)) for r in rows}) > 3)


def test_filters_minute_buckets_and_an_empty_range(store: Store) -> None:
    rows = spread(seed=9)
    store.add_usage(rows)
    query = SeriesQuery("minute", T0 + 2 * HOUR, T0 + 3 * HOUR, split="model", tenant="acme")
    mine = [r for r in rows if r.tenant == "acme"]
    assert answered(store, query) == expected(mine, query)
    nothing = SeriesQuery("day", T0 + 86400 * 30, T0 + 86400 * 32, split="model")
    assert store.usage_series(nothing).series == []
    zeros = store.usage_series(SeriesQuery("day", T0 + 86400 * 30, T0 + 86400 * 32))
    assert zeros.series[0].values["requests"] == [0, 0]


def test_sqlite_and_postgresql_give_the_same_answer(tmp_path: Path) -> None:
    reason = postgres_reason()
    if reason is not None:
        pytest.skip(reason)
    import psycopg

    rows = spread(seed=11, count=900)
    schema = f"llmrelay_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    pg_url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        with Store.open(f"sqlite:///{tmp_path}/s.db") as lite, Store.open(pg_url.render_as_string(False)) as pg:
            lite.add_usage(rows)
            pg.add_usage(rows)
            for query in (
                SeriesQuery("hour", T0, T0 + 12 * HOUR),
                SeriesQuery("minute", T0 + 3 * HOUR, T0 + 5 * HOUR, split="model", top=2),
                SeriesQuery("hour", T0, T0 + 12 * HOUR, split="tenant", top=1),
                SeriesQuery("day", T0 - 86400, T0 + 86400, split="status"),
                SeriesQuery("hour", T0, T0 + 12 * HOUR, split="deployment", model="m1"),
            ):
                a, b = lite.usage_series(query).to_json(), pg.usage_series(query).to_json()
                for one, other in zip(a["series"], b["series"], strict=True):
                    one["cost_usd"] = pytest.approx(one["cost_usd"])  # summed in another order
                    assert one == other, query
                assert a["buckets"] == b["buckets"] and len(a["series"]) == len(b["series"])
    finally:
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def test_the_query_checks_itself() -> None:
    for bad, field in (
        ({"bucket": "week"}, "bucket"), ({"split": "planet"}, "split"), ({"top": 0}, "top"), ({"top": 51}, "top"),
        ({"since": T0 + 1}, "before"), ({"since": float("nan")}, "since"), ({"until": 1e16}, "until"),
        ({"bucket": "minute", "since": T0 - 30 * 86400}, "2000"),
    ):  # fmt: skip
        fields: dict[str, Any] = {"bucket": "hour", "since": T0 - 3600, "until": T0} | bad
        with pytest.raises(ValueError, match=field):
            SeriesQuery(**fields)


@given(
    st.lists(st.floats(0, 300_000, allow_nan=False), min_size=1, max_size=200),
    st.lists(st.sampled_from([1, 25, 50, 90, 95, 99, 100]), min_size=1, max_size=4, unique=True).map(sorted),
)
def test_a_percentile_lies_in_the_exact_values_bin(latencies: list[float], ps: list[int]) -> None:
    counts = [0] * (len(BOUNDS_MS) + 1)
    for ms in latencies:
        counts[bin_of(ms)] += 1
    got = percentiles(counts, ps, max(latencies))
    assert len(got) == len(ps) and got == sorted(got)
    for p, value in zip(ps, got, strict=True):
        exact = rank(latencies, p)
        assert bin_of(value) == bin_of(exact) or value == exact  # equal on a bin's edge
        assert value <= max(latencies) + 1e-3
    assert percentiles([0] * len(counts), ps, 0.0) == [0.0] * len(ps)


def test_a_record_sent_twice_is_summed_once(store: Store) -> None:
    rows = spread(seed=4, count=150)
    assert store.add_usage(rows[:100]) == 100
    assert store.add_usage(rows) == 50  # a retried batch: its first 100 are stored already
    assert store.add_usage(rows[:10] + rows[:10]) == 0
    query = SeriesQuery("hour", T0, T0 + 12 * HOUR)
    assert answered(store, query) == expected(rows, query)


def test_migrating_an_older_database_fills_the_rollups(tmp_path: Path) -> None:
    """A ledger written before the rollups existed gets its rows summed into them by the migration."""
    rows = spread(seed=6, count=400)
    older = make_engine(f"sqlite:///{tmp_path}/old.db")
    try:
        migrate(older, MIGRATIONS[:3])
        columns = [c for c in COLUMNS if c != "ttft_ms"]  # version 3's ledger
        with older.begin() as conn:
            for row in usage_params(rows, 0.0):
                conn.exec_driver_sql(
                    f"INSERT INTO usage ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                    tuple(v for c, v in zip(COLUMNS, row, strict=True) if c != "ttft_ms"),
                )
    finally:
        older.dispose()
    untimed = [replace(r, ttft_ms=None) for r in rows]
    with Store.open(f"sqlite:///{tmp_path}/old.db") as migrated, Store.open(f"sqlite:///{tmp_path}/new.db") as fresh:
        fresh.add_usage(untimed)
        for query in (
            SeriesQuery("hour", T0, T0 + 12 * HOUR, split="model", top=3),
            SeriesQuery("minute", T0 + HOUR, T0 + 3 * HOUR, split="tenant"),
        ):
            assert answered(migrated, query) == expected(untimed, query)
            for old, new in zip(migrated.usage_series(query).series, fresh.usage_series(query).series, strict=True):
                assert old.values["latency_ms_p95"] == new.values["latency_ms_p95"]  # the same bins and maxima


def test_writers_at_once_sum_every_row_once(db_url: str) -> None:  # noqa: F811
    """Gateway workers write their batches at the same time, into the same rollup rows, in
    different orders: every row is summed once and none waits on another forever (no deadlock)."""
    rows = spread(seed=8, count=800)
    batches = [rows[i : i + 40] for i in range(0, len(rows), 40)]
    failures: list[BaseException] = []

    def work(mine: list[list[UsageRecord]]) -> None:
        try:
            with Store.open(db_url) as store:
                for batch in mine:
                    store.add_usage(batch)
        except BaseException as exc:
            failures.append(exc)

    # each writer its share of the batches, half of them backwards, some sent by two writers
    shares = [batches[i::4] for i in range(4)]
    shares = [share[::-1] if i % 2 else share for i, share in enumerate(shares)]
    shares[0] = shares[0] + shares[1][:2]
    threads = [threading.Thread(target=work, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads) and failures == []
    with Store.open(db_url) as store:
        query = SeriesQuery("hour", T0, T0 + 12 * HOUR, split="tenant")
        assert answered(store, query) == expected(rows, query)


# ---------------------------------------------------------------- through the gateway


async def test_real_requests_land_in_their_buckets(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")), Reply(json=answer("ok")), Reply(status=400, json={}))
    key_id, secret = await new_key(gw, "acme")
    for _ in range(2):
        await gw.sdk(secret).chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="400"):
        await gw.sdk(secret).chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    await gw.app.ledger.flush()  # type: ignore[union-attr]
    rows = gw.store.usage(UsageQuery(key_id=key_id))
    assert len(rows) == 3

    status, body, _ = await call(gw, "GET", "/admin/usage/series?bucket=minute&split=model", key=secret)
    assert status == 200, body
    assert body["bucket"] == "minute" and body["bucket_seconds"] == 60 and body["split"] == "model"
    assert len(body["buckets"]) == 1441 and body["buckets"][-1].endswith(":00Z")
    [smart] = body["series"]
    assert smart["name"] == "smart" and smart["other"] is False
    assert sum(smart["requests"]) == 3 and sum(smart["errors"]) == 1
    assert sum(smart["prompt_tokens"]) == sum(r.prompt_tokens for r in rows)
    assert sum(smart["cost_usd"]) == pytest.approx(sum(r.cost_usd or 0 for r in rows))
    filled = [i for i, n in enumerate(smart["requests"]) if n]
    assert len(filled) <= 2 and smart["requests"].count(0) >= 1439  # the rest of the day: zeros
    latencies = [r.latency_ms for r in rows]
    if len(filled) == 1:
        assert bin_of(smart["latency_ms_p50"][filled[0]]) == bin_of(rank(latencies, 50))
        assert bin_of(smart["latency_ms_p95"][filled[0]]) == bin_of(rank(latencies, 95))
        assert smart["latency_ms_p95"][filled[0]] <= max(latencies)

    status, default, _ = await call(gw, "GET", "/admin/usage/series")  # the master key, defaults
    assert status == 200 and default["bucket"] == "hour" and len(default["buckets"]) in (24, 25)
    assert sum(default["series"][0]["requests"]) == 3 and default["until"] - default["since"] >= 86400


async def test_a_streams_time_to_first_token_is_in_the_ledger_and_its_series(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(chunks=sse("Hel", "lo"), delay_s=0.25))
    stream = await gw.sdk().chat.completions.create(model="smart", messages=HI, stream=True)  # type: ignore[arg-type]
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "Hello"
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
    await gw.sdk().chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    await gw.app.ledger.flush()  # type: ignore[union-attr]
    streamed, plain = sorted(gw.store.usage(UsageQuery()), key=lambda r: r.ttft_ms is None)
    assert streamed.ttft_ms is not None and 250 <= streamed.ttft_ms <= streamed.latency_ms and plain.ttft_ms is None

    status, body, _ = await call(gw, "GET", "/admin/usage/series?bucket=minute")
    assert status == 200, body
    [series] = body["series"]
    [i] = [i for i, n in enumerate(series["requests"]) if n]  # both in one minute: the test takes under one
    assert series["requests"][i] == 2
    assert bin_of(series["ttft_ms_p50"][i]) == bin_of(streamed.ttft_ms)  # the one stream's first token
    assert series["ttft_ms_p95"][i] <= streamed.ttft_ms + 1e-3


async def test_a_tenant_key_sees_only_its_tenant(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
    _, a = await new_key(gw, "tenant-a")
    b_id, b = await new_key(gw, "tenant-b")
    await gw.sdk(a).chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    for _ in range(2):
        await gw.sdk(b).chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    await gw.app.ledger.flush()  # type: ignore[union-attr]

    status, mine, _ = await call(gw, "GET", "/admin/usage/series?split=tenant", key=a)
    assert status == 200 and [s["name"] for s in mine["series"]] == ["tenant-a"]
    assert sum(mine["series"][0]["requests"]) == 1
    status, theirs, _ = await call(gw, "GET", f"/admin/usage/series?split=key&key_id={b_id}", key=a)
    assert status == 200 and theirs["series"] == []  # another tenant's key: nothing
    status, err, _ = await call(gw, "GET", "/admin/usage/series?tenant=tenant-b", key=a)
    assert status == 403 and err["error"]["code"] == "other_tenant"
    status, everyone, _ = await call(gw, "GET", "/admin/usage/series?split=tenant")
    assert status == 200 and [s["name"] for s in everyone["series"]] == ["tenant-b", "tenant-a"]


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("bucket=week", "bucket"),
        ("bucket=minute&since=1700000000&until=1702592000", "bucket"),  # 30 days of minutes
        ("bucket=day&since=0&until=253402300799", "bucket"),
        ("since=1700000100&until=1700000000", "since"),
        ("since=1700000000&until=1700000000", "since"),
        ("since=yesterday", "since"),
        ("since=nan", "since"),
        ("until=1e300", "until"),
        ("since=-5", "since"),
        ("top=1000000", "top"),
        ("top=0", "top"),
        ("top=-1", "top"),
        ("top=%EF%BC%95", "top"),  # a full-width digit 5
        ("split=planet", "split"),
        ("split=model%00", "split"),
        ("model=gpt%00x", "model"),
        ("tenant=acme%0D%0Ax", "tenant"),
        ("key_id=" + "k" * 300, "key_id"),
        ("model=", "model"),
        ("colour=red", "colour"),
        ("%00=1", "?"),
    ],
)
async def test_hostile_parameters_are_a_400_naming_them(gw: Served, query: str, param: str) -> None:
    status, err, _ = await call(gw, "GET", "/admin/usage/series?" + query)
    assert status == 400, (query, err)
    assert err["error"]["param"] == param and err["error"]["type"] == "invalid_request_error", err
    assert param in err["error"]["message"] or param == "?", err


async def test_the_route_is_in_the_openapi_document(gw: Served) -> None:
    status, doc, _ = await call(gw, "GET", "/openapi.json")
    assert status == 200
    names = {p["name"] for p in doc["paths"]["/admin/usage/series"]["get"]["parameters"]}
    assert names == {"bucket", "since", "until", "split", "top", "tenant", "key_id", "model"}
