"""The usage series on a big SQLite ledger (docs/performance.md, "Usage series").

Fills a temporary SQLite store with ROWS ledger rows (default 1,000,000) spread over
30 days (busier by day than by night, 8 tenants, 40 keys, 12 models with a few taking
most of the traffic, 3% errors, log-normal latencies, half of them streams with a time
to first token) through ``Store.add_usage`` in batches of 500, as the ledger writes
them, and prints what a row cost to write and the share of it the rollups took
(``rollup.write``). Then times each chart query, ``Store.usage_series`` end to end
(the SQL and the zero-filled series), the median of 5 runs after one warm-up, and
prints a table. ``EXPLAIN QUERY PLAN`` of each query with ``--plans``; ``--postgres URL``
runs it all on a new schema of that PostgreSQL database (dropped at the end) instead.

    python bench/bench_usage_series.py [--rows 1000000] [--plans] [--keep PATH] [--postgres URL]
"""

from __future__ import annotations

import argparse
import math
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from llmrelay.store import Store, UsageRecord, rollup
from llmrelay.store.engine import make_engine
from llmrelay.store.records import SeriesQuery
from llmrelay.store.series import series_statement

DAYS = 30
END = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the ledger's last 30 days end here
TENANTS = [f"tenant-{n}" for n in range(8)]
KEYS = [(f"key_{n:016x}", TENANTS[n % len(TENANTS)]) for n in range(40)]
MODELS = [f"model-{n:02d}" for n in range(12)]
MODEL_WEIGHTS = [1 / (n + 1) ** 1.2 for n in range(len(MODELS))]  # a few models take most requests
RUNS = 5
BATCH = 500


def rows(count: int, seed: int = 7) -> list[UsageRecord]:
    """``count`` ledger records, in time order."""
    rnd = random.Random(seed)
    start = END - DAYS * 86400
    models = rnd.choices(MODELS, MODEL_WEIGHTS, k=count)
    keys = rnd.choices(KEYS, k=count)
    out: list[tuple[object, ...]] = []
    for n in range(count):
        # busier in the (UTC) day: accept a uniform time with a daily-cycle probability
        while True:
            t = start + rnd.random() * DAYS * 86400
            if rnd.random() < 0.55 + 0.45 * math.sin((t % 86400) / 86400 * math.pi):
                break
        key_id, tenant = keys[n]
        model = models[n]
        status = 200 if rnd.random() > 0.03 else rnd.choice((400, 429, 500, 502, 499))
        prompt, completion = rnd.randint(20, 4000), rnd.randint(1, 800)
        upstream = rnd.lognormvariate(6.2, 0.6)
        out.append(UsageRecord(
            id=f"u{n:08d}", request_id=f"req-{n}", tenant=tenant, key_id=key_id, route="/v1/chat/completions",
            model=model, deployment=f"openai/{model}", status=status, prompt_tokens=prompt,
            completion_tokens=completion, cost_usd=(prompt * 0.15 + completion * 0.6) / 1e6,
            latency_ms=upstream + rnd.random() * 8, upstream_ms=upstream,
            error=None if status < 400 else "upstream_error", created_at=t,
            ttft_ms=upstream * rnd.random() if n % 2 else None,
        ))  # fmt: skip
    out.sort(key=lambda record: record.created_at)  # written in time order, as a ledger is
    return out


def fill(url: str, count: int) -> tuple[float, float]:
    """A migrated store at ``url`` holding ``count`` rows written as the ledger writes them; the
    seconds the writes took, and of those the seconds summing them into the rollups."""
    made = rows(count)
    spent = [0.0]
    write = rollup.write

    def timed(*args: object) -> None:
        began = time.perf_counter()
        write(*args)  # type: ignore[arg-type]
        spent[0] += time.perf_counter() - began

    rollup.write = timed  # type: ignore[assignment]
    try:
        with Store.open(url) as store:
            began = time.perf_counter()
            for start in range(0, len(made), BATCH):
                store.add_usage(made[start : start + BATCH])
            took = time.perf_counter() - began
    finally:
        rollup.write = write  # type: ignore[assignment]
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
    return took, spent[0]


@contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A store URL on a new schema of the PostgreSQL database at ``url``, dropped at the end."""
    import psycopg
    from sqlalchemy import make_url

    schema = f"llmrelay_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
    finally:
        with psycopg.connect(url, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


CHARTS: list[tuple[str, SeriesQuery]] = [
    ("hour x 7 days, split by model", SeriesQuery("hour", END - 7 * 86400, END, split="model")),
    ("minute x 1 hour, split by model", SeriesQuery("minute", END - 3600, END, split="model")),
    ("hour x 7 days, no split", SeriesQuery("hour", END - 7 * 86400, END)),
    ("hour x 24 h, split by tenant", SeriesQuery("hour", END - 86400, END, split="tenant")),
    ("hour x 7 days, 1 tenant, by key", SeriesQuery("hour", END - 7 * 86400, END, split="key", tenant="tenant-3")),
    ("day x 30 days, split by status", SeriesQuery("day", END - 30 * 86400, END, split="status")),
    ("minute x 24 h, split by model", SeriesQuery("minute", END - 86400, END, split="model")),
]  # fmt: skip


def time_chart(store: Store, query: SeriesQuery) -> tuple[float, int]:
    """The median of ``RUNS`` timed calls (ms) after a warm-up, and the rows the range holds."""
    answer = store.usage_series(query)
    times = []
    for _ in range(RUNS):
        began = time.perf_counter()
        store.usage_series(query)
        times.append((time.perf_counter() - began) * 1000)
    counted = sum(sum(s.values["requests"]) for s in answer.series)
    return statistics.median(times), int(counted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--plans", action="store_true", help="print each query's EXPLAIN QUERY PLAN (SQLite)")
    parser.add_argument("--keep", type=Path, help="fill this file (reused if it exists) instead of a temporary one")
    parser.add_argument("--postgres", metavar="URL", help="on a new schema of this PostgreSQL database instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        path = args.keep or Path(folder) / "ledger.db"
        url = stack.enter_context(postgres_schema(args.postgres)) if args.postgres else f"sqlite:///{path}"
        if args.postgres or args.keep is None or not path.exists():
            took, summing = fill(url, args.rows)
            print(
                f"wrote {args.rows:,} rows in batches of {BATCH} in {took:.1f} s "
                f"({took / args.rows * 1e6:.1f} us a row, {summing / took:.0%} of it summing the rollups)"
            )
        store = Store.open(url)
        try:
            print(f"{'chart':44} {'rows in range':>13} {'buckets':>8} {'series':>6} {'median ms':>10}")
            for name, query in CHARTS:
                ms, counted = time_chart(store, query)
                answer = store.usage_series(query)
                print(f"{name:44} {counted:>13,} {query.buckets:>8} {len(answer.series):>6} {ms:>10.1f}")
                if args.plans and not args.postgres:
                    sql = str(series_statement(query, "sqlite").compile(compile_kwargs={"literal_binds": True}))
                    db = sqlite3.connect(path)
                    for row in db.execute("EXPLAIN QUERY PLAN " + sql):
                        print("    ", row[-1])
                    db.close()
        finally:
            store.close()


if __name__ == "__main__":
    main()
