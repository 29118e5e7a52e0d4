"""The tables as the code reads and writes them (SQLAlchemy Core).

This is the *current* shape of the database. The migrations in
``migrations.py`` build it step by step and keep their own frozen copy of each
step's DDL; a test checks that migrating an empty database gives exactly these
tables and columns. Change the schema by adding a migration step, then update
this module to match.

Times are epoch seconds (double precision). JSON is kept as text, the same on
SQLite and PostgreSQL. ``usage.day`` (``YYYY-MM-DD``, UTC) is computed when a
record is written, so totals per day are a plain ``GROUP BY`` on both engines.
``usage_minute``, ``usage_hour`` and ``usage_day`` are the ledger summed per minute, hour and day
(latencies as histograms), written in the same transaction as its rows: the usage
series read them, not the ledger (``rollup.py``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
)

from .histogram import BINS

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", Double, nullable=False),
)

tenants = Table(
    "tenants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("rpm", Integer),
    Column("tpm", Integer),
    Column("budget_usd", Double),
    Column("budget_period", String(8), nullable=False),
    Column("model_limits", Text, nullable=False),  # JSON {model: {rpm, tpm}}
    Column("created_at", Double, nullable=False),
    Column("max_parallel", Integer),  # version 2
    Column("self_keys", Boolean, nullable=False, server_default=false()),  # version 5
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(20), primary_key=True),
    Column("tenant", String(64), ForeignKey("tenants.id"), nullable=False, index=True),
    Column("name", Text, nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),  # sha256 hex; never the secret
    Column("models", Text, nullable=False),  # JSON list
    Column("expires_at", Double),
    Column("rpm", Integer),
    Column("tpm", Integer),
    Column("budget_usd", Double),
    Column("budget_period", String(8), nullable=False),
    Column("model_limits", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("revoked_at", Double),
    Column("rotated_at", Double),
    Column("max_parallel", Integer),  # version 2
)

usage = Table(
    "usage",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("request_id", Text, nullable=False),
    Column("tenant", String(64)),  # no foreign key: the ledger outlives what it mentions
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
    Column("ttft_ms", Double),  # version 4: streams' time to first token
    Index("ix_usage_tenant_created", "tenant", "created_at"),
    Index("ix_usage_key_created", "key_id", "created_at"),
    Index("ix_usage_model_created", "model", "created_at"),
    Index("ix_usage_created", "created_at"),
)

conversations = Table(
    "conversations",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("id", String(128), primary_key=True),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("messages", Integer, nullable=False),
    Index("ix_conversations_tenant_updated", "tenant", "updated_at"),
)

conversation_messages = Table(
    "conversation_messages",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("conversation_id", String(128), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("message", Text, nullable=False),  # JSON object
    ForeignKeyConstraint(
        ["tenant", "conversation_id"], ["conversations.tenant", "conversations.id"], ondelete="CASCADE"
    ),
)

responses = Table(  # version 3
    "responses",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("previous_id", String(64)),  # the response it continued (same tenant), if any
    Column("model", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("input_items", Text, nullable=False),  # JSON list: the request's own new items
    Column("output_items", Text, nullable=False),  # JSON list: the answer's output items
    Column("body", Text, nullable=False),  # JSON object: the response as it was answered
    Index("ix_responses_tenant_created", "tenant", "created_at"),
)


ROLLUP_KEYS = ("start", "model", "tenant", "key_id", "deployment", "status")
"""A rollup row's key: its minute's (or hour's) start in epoch seconds, and the ledger's
columns a series can be split or filtered by (``''`` where the ledger has ``NULL``)."""
ROLLUP_COUNTS = (
    "requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "ttft_count",
)  # fmt: skip
ROLLUP_TOTALS = ("cost_usd", "latency_ms_sum")
ROLLUP_MAXES = ("latency_ms_max", "ttft_ms_max")
LATENCY_BINS = tuple(f"lat_{i:02d}" for i in range(BINS))
TTFT_BINS = tuple(f"ttft_{i:02d}" for i in range(BINS))
"""Per bin of ``histogram.BOUNDS_MS``: how many requests took that long, or had their first token then."""


def _rollup(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("start", BigInteger, primary_key=True, autoincrement=False),
        Column("model", Text, primary_key=True),  # next to start: series split by model read in key order
        Column("tenant", String(64), primary_key=True),
        Column("key_id", String(20), primary_key=True),
        Column("deployment", Text, primary_key=True),
        Column("status", Integer, primary_key=True, autoincrement=False),
        *(Column(n, BigInteger, nullable=False) for n in ROLLUP_COUNTS),
        *(Column(n, Double, nullable=False) for n in (*ROLLUP_TOTALS, *ROLLUP_MAXES)),
        *(Column(n, Integer, nullable=False) for n in (*LATENCY_BINS, *TTFT_BINS)),
        sqlite_with_rowid=False,  # rows kept in key order: a range of starts is one read, no lookups
    )


usage_minute = _rollup("usage_minute")  # version 4: the ledger summed per minute, written with it
usage_hour = _rollup("usage_hour")  # version 4: ... per hour
usage_day = _rollup("usage_day")  # version 4: ... per UTC day
