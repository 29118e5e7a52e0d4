"""Schema migrations: an ordered list of steps, applied when a store opens.

Each step is a function of a SQLAlchemy ``Connection``; ``schema_version`` holds
one row per applied step. ``migrate`` runs the missing steps in one
transaction, under a lock every process opening the database takes first
(PostgreSQL: ``pg_advisory_xact_lock``; SQLite: ``BEGIN IMMEDIATE``), so many
gateway workers starting at once upgrade the database exactly once.

A step's DDL is frozen here, written out in full rather than taken from
``schema.py``: ``schema.py`` is the latest shape, and step 1 must create the
version 1 tables even after step 2 has changed them. Never edit a released
step; add a new one.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Double,
    Engine,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from . import schema
from .engine import db_reason, redact, write_transaction
from .records import StoreError


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _v1_initial(conn: Connection) -> None:
    md = MetaData()
    Table(
        "tenants",
        md,
        Column("id", String(64), primary_key=True),
        Column("rpm", Integer),
        Column("tpm", Integer),
        Column("budget_usd", Double),
        Column("budget_period", String(8), nullable=False),
        Column("model_limits", Text, nullable=False),
        Column("created_at", Double, nullable=False),
    )
    Table(
        "api_keys",
        md,
        Column("id", String(20), primary_key=True),
        Column("tenant", String(64), ForeignKey("tenants.id"), nullable=False, index=True),
        Column("name", Text, nullable=False),
        Column("prefix", String(16), nullable=False),
        Column("secret_hash", String(64), nullable=False, unique=True),
        Column("models", Text, nullable=False),
        Column("expires_at", Double),
        Column("rpm", Integer),
        Column("tpm", Integer),
        Column("budget_usd", Double),
        Column("budget_period", String(8), nullable=False),
        Column("model_limits", Text, nullable=False),
        Column("created_at", Double, nullable=False),
        Column("revoked_at", Double),
        Column("rotated_at", Double),
    )
    Table(
        "usage",
        md,
        Column("id", String(64), primary_key=True),
        Column("request_id", Text, nullable=False),
        Column("tenant", String(64)),
        Column("key_id", String(20)),
        Column("route", Text, nullable=False),
        Column("model", Text, nullable=False),
        Column("deployment", Text),
        Column("status", Integer, nullable=False),
        Column("prompt_tokens", Integer, nullable=False),
        Column("completion_tokens", Integer, nullable=False),
        Column("cached_tokens", Integer, nullable=False),
        Column("reasoning_tokens", Integer, nullable=False),
        Column("cost_usd", Double),
        Column("latency_ms", Double, nullable=False),
        Column("upstream_ms", Double, nullable=False),
        Column("cache_hit", Boolean, nullable=False),
        Column("error", Text),
        Column("created_at", Double, nullable=False),
        Column("day", String(10), nullable=False),
        Index("ix_usage_tenant_created", "tenant", "created_at"),
        Index("ix_usage_key_created", "key_id", "created_at"),
        Index("ix_usage_model_created", "model", "created_at"),
        Index("ix_usage_created", "created_at"),
    )
    Table(
        "conversations",
        md,
        Column("tenant", String(64), primary_key=True),
        Column("id", String(128), primary_key=True),
        Column("created_at", Double, nullable=False),
        Column("updated_at", Double, nullable=False),
        Column("messages", Integer, nullable=False),
        Index("ix_conversations_tenant_updated", "tenant", "updated_at"),
    )
    Table(
        "conversation_messages",
        md,
        Column("tenant", String(64), primary_key=True),
        Column("conversation_id", String(128), primary_key=True),
        Column("seq", Integer, primary_key=True, autoincrement=False),
        Column("message", Text, nullable=False),
        ForeignKeyConstraint(
            ["tenant", "conversation_id"], ["conversations.tenant", "conversations.id"], ondelete="CASCADE"
        ),
    )
    md.create_all(conn)


def _v2_max_parallel(conn: Connection) -> None:
    for table in ("tenants", "api_keys"):
        conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN max_parallel INTEGER")


def _v3_responses(conn: Connection) -> None:
    md = MetaData()
    Table(
        "responses",
        md,
        Column("tenant", String(64), primary_key=True),
        Column("id", String(64), primary_key=True),
        Column("previous_id", String(64)),
        Column("model", Text, nullable=False),
        Column("created_at", Double, nullable=False),
        Column("input_items", Text, nullable=False),
        Column("output_items", Text, nullable=False),
        Column("body", Text, nullable=False),
        Index("ix_responses_tenant_created", "tenant", "created_at"),
    )
    md.create_all(conn)


_V4_BOUNDS_MS = (
    5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500,
    10_000, 15_000, 20_000, 30_000, 60_000, 120_000,
)  # fmt: skip
"""The histogram bins of version 4's rollups (``histogram.BOUNDS_MS`` when it was made)."""
_V4_KEYS = ("start", "model", "tenant", "key_id", "deployment", "status")
_V4_COUNTS = (
    "requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "ttft_count",
)  # fmt: skip
_V4_FIGURES = ("cost_usd", "latency_ms_sum", "latency_ms_max", "ttft_ms_max")
_V4_BINS = len(_V4_BOUNDS_MS) + 1


def _v4_rollups(conn: Connection) -> None:
    """``usage.ttft_ms``; ``usage_minute``, ``usage_hour`` and ``usage_day``, filled from the ledger's rows."""
    conn.exec_driver_sql("ALTER TABLE usage ADD COLUMN ttft_ms DOUBLE PRECISION")
    md = MetaData()
    for name in ("usage_minute", "usage_hour", "usage_day"):
        Table(
            name,
            md,
            Column("start", BigInteger, primary_key=True, autoincrement=False),
            Column("model", Text, primary_key=True),
            Column("tenant", String(64), primary_key=True),
            Column("key_id", String(20), primary_key=True),
            Column("deployment", Text, primary_key=True),
            Column("status", Integer, primary_key=True, autoincrement=False),
            *(Column(n, BigInteger, nullable=False) for n in _V4_COUNTS),
            *(Column(n, Double, nullable=False) for n in _V4_FIGURES),
            *(Column(f"lat_{i:02d}", Integer, nullable=False) for i in range(_V4_BINS)),
            *(Column(f"ttft_{i:02d}", Integer, nullable=False) for i in range(_V4_BINS)),
            sqlite_with_rowid=False,
        )
    md.create_all(conn)
    for statement in _v4_backfill(conn.dialect.name):
        conn.exec_driver_sql(statement)


def _v4_backfill(dialect: str) -> list[str]:
    """The SQL summing the ledger's rows into the minutes, the minutes into the hours, the hours into the days."""

    def bins(column: str, prefix: str) -> list[str]:
        out = []
        for i in range(_V4_BINS):
            low = f"{column} > {_V4_BOUNDS_MS[i - 1]}" if i else f"{column} IS NOT NULL"
            high = f" AND {column} <= {_V4_BOUNDS_MS[i]}" if i < len(_V4_BOUNDS_MS) else ""
            out.append(f"SUM(CASE WHEN {low}{high} THEN 1 ELSE 0 END) AS {prefix}_{i:02d}")
        return out

    minute = "CAST(created_at / 60 AS INTEGER) * 60"  # created_at >= 0: SQLite's CAST floors
    if dialect == "postgresql":
        minute = "CAST(floor(created_at / 60) AS BIGINT) * 60"
    keys = f"{minute}, model, COALESCE(tenant, ''), COALESCE(key_id, ''), COALESCE(deployment, ''), status"
    values = ", ".join((
        "COUNT(*)", "SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END)", "SUM(prompt_tokens)", "SUM(completion_tokens)",
        "SUM(cached_tokens)", "SUM(reasoning_tokens)", "COUNT(ttft_ms)", "COALESCE(SUM(cost_usd), 0)",
        "SUM(latency_ms)", "MAX(latency_ms)", "COALESCE(MAX(ttft_ms), 0)",
        *bins("latency_ms", "lat"), *bins("ttft_ms", "ttft"),
    ))  # fmt: skip
    sums = [*_V4_COUNTS, *_V4_FIGURES]
    sums += [f"lat_{i:02d}" for i in range(_V4_BINS)] + [f"ttft_{i:02d}" for i in range(_V4_BINS)]
    names = ", ".join((*_V4_KEYS, *sums))
    again = ", ".join(f"MAX({n})" if n.endswith("_max") else f"SUM({n})" for n in sums)
    coarser = [
        f"INSERT INTO {into} ({names}) SELECT start / {width} * {width}, model, tenant, key_id, deployment, status, "
        f"{again} FROM {source} GROUP BY start / {width} * {width}, model, tenant, key_id, deployment, status"
        for into, source, width in (("usage_hour", "usage_minute", 3600), ("usage_day", "usage_hour", 86400))
    ]
    return [f"INSERT INTO usage_minute ({names}) SELECT {keys}, {values} FROM usage GROUP BY {keys}", *coarser]


def _v5_self_keys(conn: Connection) -> None:
    conn.exec_driver_sql("ALTER TABLE tenants ADD COLUMN self_keys BOOLEAN NOT NULL DEFAULT false")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "tenants, virtual keys, usage ledger, conversations", _v1_initial),
    Migration(2, "max_parallel: requests in flight per key and per tenant", _v2_max_parallel),
    Migration(3, "responses: stored Responses API answers, per tenant", _v3_responses),
    Migration(4, "usage rollups per minute, hour and day for the usage series; usage.ttft_ms", _v4_rollups),
    Migration(5, "tenants.self_keys: a tenant's keys may manage its keys", _v5_self_keys),
)
"""Every step, in order; ``version`` counts from 1 without gaps."""

LATEST = MIGRATIONS[-1].version

_PG_LOCK_KEY = zlib.crc32(b"llmrelay.store.migrations")
"""The advisory lock every process takes before migrating a PostgreSQL database."""


def current_version(conn: Connection) -> int:
    """The database's schema version (0: empty, never migrated)."""
    if not inspect(conn).has_table(schema.schema_version.name):
        return 0
    return int(conn.execute(select(func.coalesce(func.max(schema.schema_version.c.version), 0))).scalar_one())


def _check_not_newer(found: int, known: int) -> None:
    if found > known:
        raise StoreError(
            f"the database schema is version {found}, newer than this llmrelay knows (version {known}): "
            "upgrade llmrelay, or point it at another database"
        )


def migrate(engine: Engine, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database up to the last of ``migrations``; return its version.

    Safe when several processes do it at once: all but one wait for the lock,
    then find nothing left to do. A database newer than ``migrations`` is a
    ``StoreError`` naming both versions (and is left untouched).
    """
    for expected, step in enumerate(migrations, start=1):
        if step.version != expected:
            raise StoreError(f"migration steps must be numbered 1, 2, ...: step {expected} says {step.version}")
    known = len(migrations)
    try:
        with engine.connect() as conn:  # the usual case, without taking the lock: nothing to do
            found = current_version(conn)
        _check_not_newer(found, known)
        if found == known:
            return found
        with write_transaction(engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
            schema.schema_version.create(conn, checkfirst=True)
            found = current_version(conn)
            _check_not_newer(found, known)
            for step in migrations[found:]:
                step.apply(conn)
                conn.execute(
                    insert(schema.schema_version).values(
                        version=step.version, description=step.description, applied_at=time.time()
                    )
                )
            return known
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open the database at {redact(engine.url)}: {db_reason(exc)}") from exc
