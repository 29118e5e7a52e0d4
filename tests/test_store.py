"""The store's contract, on SQLite (a file under tmp_path) and on a real
PostgreSQL (``LLMRELAY_TEST_POSTGRES_URL``, default
postgresql://postgres@127.0.0.1:5432/test; skipped with the reason when no
server answers there). Each PostgreSQL test gets a schema of its own, dropped
afterwards, so runs in parallel or one after another never see each other."""

from __future__ import annotations

import functools
import itertools
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, inspect, make_url, select, text

from llmrelay import errors
from llmrelay.config import Settings, load_settings
from llmrelay.store import (
    ApiKey,
    Conflict,
    Limits,
    NotFoundError,
    Store,
    StoredResponse,
    StoreError,
    Tenant,
    UsageQuery,
    UsageRecord,
    default_store_url,
    hash_secret,
)
from llmrelay.store.engine import make_engine, normalize_url, redact
from llmrelay.store.migrations import LATEST, MIGRATIONS, Migration, migrate
from llmrelay.store.schema import metadata, schema_version

PG_URL = os.environ.get("LLMRELAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
JOIN_S = 60.0


@functools.cache
def postgres_reason() -> str | None:
    """Why PostgreSQL tests cannot run here, or None when a server answers."""
    import psycopg

    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except Exception as exc:  # any failure to reach it is a reason to skip
        return f"no PostgreSQL at {redact(PG_URL)} ({type(exc).__name__}: {exc})"
    return None


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a new SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/store.db"
        return
    reason = postgres_reason()
    if reason is not None:
        pytest.skip(reason)
    import psycopg

    name = f"llmrelay_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f"CREATE SCHEMA {name}")
    try:
        url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={name}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = Store.open(db_url)
    try:
        yield opened
    finally:
        opened.close()


def record(**fields: Any) -> UsageRecord:
    base: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "request_id": "req",
        "tenant": "acme",
        "key_id": None,
        "route": "/v1/chat/completions",
        "model": "gpt",
        "created_at": 1_700_000_000.0,
    }
    return UsageRecord(**(base | fields))


def every_row(url: str) -> str:
    """Every row of every table, as text."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return repr([conn.execute(select(table)).all() for table in metadata.sorted_tables])
    finally:
        engine.dispose()


# ---------------------------------------------------------------- URLs, opening, ping


def test_urls_are_normalised() -> None:
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite+pysqlite"
    for bad in ("mysql://u@h/db", "redis://127.0.0.1:6379/0"):
        with pytest.raises(StoreError, match=r"unsupported store URL scheme .*supported: sqlite, postgresql"):
            normalize_url(bad)
    with pytest.raises(StoreError, match="not a database URL"):
        Store.open("just some words")


def test_repr_of_a_postgres_url_hides_its_password() -> None:
    store = Store(make_engine("postgresql://relay:hunter2@127.0.0.1:1/db"))  # connects lazily: nothing runs
    for shown in (repr(store), str(store), store.url):
        assert "hunter2" not in shown
        assert "relay:***@127.0.0.1:1/db" in shown
    settings = Settings(store_url="postgresql://relay:hunter2@127.0.0.1/db")
    assert "hunter2" not in repr(settings)


def test_a_dead_database_is_a_store_error_without_the_password() -> None:
    dead = "postgresql://relay:hunter2@127.0.0.1:1/db"
    with pytest.raises(StoreError, match="does not answer") as caught:
        Store(make_engine(dead)).ping()
    assert "hunter2" not in str(caught.value)
    with pytest.raises(StoreError, match="cannot open the database") as caught:
        Store.open(dead)
    assert "hunter2" not in str(caught.value)


def test_a_sqlite_path_that_cannot_be_created_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create"):
        Store.open(f"sqlite:///{tmp_path}/file/sub/store.db")


def test_sqlite_creates_the_directory_and_runs_in_wal_mode(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path}/a/b/store.db") as store:
        store.ping()
        engine = make_engine(f"sqlite:///{tmp_path}/a/b/store.db")
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        engine.dispose()
    assert (tmp_path / "a" / "b" / "store.db").is_file()


def test_in_memory_sqlite_is_shared_by_threads() -> None:
    with Store.open("sqlite://") as store:
        store.create_key("acme")

        def work(i: int) -> None:
            store.append_messages("acme", "c", [{"role": "user", "content": str(i)}])

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(JOIN_S)
        conversation = store.conversation("acme", "c")
        assert conversation is not None
        assert sorted(m["content"] for m in conversation.messages) == [str(i) for i in range(8)]
        assert len(store.list_keys("acme")) == 1


def test_records_and_settings_need_no_database_driver() -> None:
    code = "import sys, llmrelay.store, llmrelay.config; assert 'sqlalchemy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=JOIN_S)


def test_ping(store: Store) -> None:
    store.ping()


# ---------------------------------------------------------------- tenants


def test_tenants(store: Store) -> None:
    created = store.create_tenant(Tenant("acme", rpm=10, model_limits={"gpt": Limits(rpm=5, tpm=1000)}))
    assert created.created_at > 0
    assert store.get_tenant("acme") == created
    with pytest.raises(Conflict, match="acme"):
        store.create_tenant(Tenant("acme"))
    assert store.get_tenant("nobody") is None
    updated = store.update_tenant("acme", budget_usd=12.5, budget_period="day", tpm=100)
    assert (updated.rpm, updated.tpm, updated.budget_usd, updated.budget_period) == (10, 100, 12.5, "day")
    assert store.get_tenant("acme") == updated
    assert updated.model_limits == {"gpt": Limits(rpm=5, tpm=1000)}
    with pytest.raises(NotFoundError):
        store.update_tenant("nobody", rpm=1)
    with pytest.raises(ValueError, match="created_at"):
        store.update_tenant("acme", created_at=1.0)
    with pytest.raises(ValueError, match="budget_period"):
        store.update_tenant("acme", budget_period="week")
    fresh = store.create_tenant(Tenant("beta.team-1"))
    assert (fresh.id, fresh.rpm, fresh.budget_usd) == ("beta.team-1", None, None)
    assert [t.id for t in store.list_tenants()] == ["acme", "beta.team-1"]


@pytest.mark.parametrize("bad", ["", "-x", "a b", "é", "x" * 65, "a/b"])
def test_tenant_ids_are_slugs(bad: str) -> None:
    with pytest.raises(ValueError, match="tenant id"):
        Tenant(bad)


def test_records_check_their_values() -> None:
    with pytest.raises(ValueError, match="rpm"):
        Tenant("a", rpm=0)
    with pytest.raises(ValueError, match="budget_usd"):
        Tenant("a", budget_usd=-1.0)
    with pytest.raises(ValueError, match="model_limits"):
        Tenant("a", model_limits={"m": {"rpm": 1}})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="key id"):
        ApiKey("key_nothex", "a")
    with pytest.raises(ValueError, match="models"):
        ApiKey("key_" + "0" * 16, "a", models="gpt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prompt_tokens"):
        record(prompt_tokens=-1)
    with pytest.raises(ValueError, match="limit"):
        UsageQuery(limit=-1)


def test_keys_for_a_new_tenant_under_concurrency(store: Store) -> None:
    barrier = threading.Barrier(6)
    results: list[ApiKey] = []

    def work() -> None:
        barrier.wait(JOIN_S)
        results.append(store.create_key("racy")[0])

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_S)
    assert len(results) == 6
    assert [t.id for t in store.list_tenants()] == ["racy"]  # created once, by whichever key came first
    assert sorted(k.id for k in store.list_keys("racy")) == sorted(k.id for k in results)


# ---------------------------------------------------------------- keys


def test_a_key_secret_is_returned_once_and_only_its_hash_is_stored(store: Store, db_url: str) -> None:
    key, secret = store.create_key("acme", name="ci", models=["gpt", "claude"], rpm=60)
    assert secret.startswith("sk-relay-") and len(secret) > 40
    assert key.id.startswith("key_") and len(key.id) == 20
    assert key.prefix == secret[:14]
    assert (key.tenant, key.name, key.models, key.rpm) == ("acme", "ci", ("gpt", "claude"), 60)
    assert store.get_tenant("acme") is not None  # created with the key
    assert store.key_by_secret(secret) == key
    assert store.get_key(key.id) == key
    assert store.key_by_secret(secret + "x") is None
    rows = every_row(db_url)
    assert secret not in rows
    assert secret[14:30] not in rows
    assert hash_secret(secret) in rows
    if db_url.startswith("sqlite"):
        folder = Path(make_url(db_url).database or "").parent
        for path in folder.iterdir():  # the database, its WAL and shared memory
            assert secret.encode() not in path.read_bytes()


def test_revoke(store: Store) -> None:
    key, secret = store.create_key("acme")
    other, _ = store.create_key("acme")
    revoked = store.revoke_key(key.id)
    assert revoked.revoked_at is not None
    assert revoked.usable(time.time()) == "revoked"
    assert store.revoke_key(key.id) == revoked  # idempotent
    found = store.key_by_secret(secret)
    assert found is not None and found.usable(time.time()) == "revoked"
    assert [k.id for k in store.list_keys("acme")] == [other.id]
    assert {k.id for k in store.list_keys(include_revoked=True)} == {key.id, other.id}
    with pytest.raises(StoreError, match="revoked"):
        store.rotate_key(key.id)
    for missing in (store.revoke_key, store.rotate_key):
        with pytest.raises(NotFoundError):
            missing("key_" + "f" * 16)
    with pytest.raises(NotFoundError):
        store.update_key("key_" + "f" * 16, name="x")


def test_rotate_keeps_the_id_and_replaces_the_secret(store: Store) -> None:
    key, old = store.create_key("acme", name="svc")
    rotated, new = store.rotate_key(key.id)
    assert rotated.id == key.id and new != old
    assert rotated.rotated_at is not None and rotated.prefix == new[:14]
    assert store.key_by_secret(old) is None
    assert store.key_by_secret(new) == rotated
    assert store.get_key(key.id) == rotated


def test_expiry(store: Store) -> None:
    now = time.time()
    key, secret = store.create_key("acme", expires_at=now + 60)
    assert key.usable(now) is None
    assert key.usable(now + 60) == "expired"
    found = store.key_by_secret(secret)
    assert found is not None and found.usable(now + 3600) == "expired"
    forever, _ = store.create_key("acme")
    assert forever.usable(now + 10**9) is None


def test_update_key(store: Store) -> None:
    key, _ = store.create_key("acme", models=["gpt"])
    updated = store.update_key(
        key.id,
        name="renamed",
        models=["claude"],
        budget_usd=3.0,
        budget_period="total",
        model_limits={"claude": Limits(tpm=500)},
    )
    assert (updated.name, updated.models, updated.budget_usd, updated.budget_period) == (
        "renamed",
        ("claude",),
        3.0,
        "total",
    )
    assert store.get_key(key.id) == updated
    with pytest.raises(ValueError, match="models"):
        store.update_key(key.id, models="gpt")
    with pytest.raises(ValueError, match="tenant"):
        store.update_key(key.id, tenant="other")
    with pytest.raises(ValueError, match="models"):
        store.create_key("acme", models="gpt")


# ---------------------------------------------------------------- stored responses


def _response(tenant: str, rid: str, previous: str | None, n: int) -> StoredResponse:
    return StoredResponse(
        id=rid, tenant=tenant, created_at=1000.0 + n, model="m", previous_id=previous,
        input_items=[{"type": "message", "role": "user", "content": [{"type": "input_text", "text": f"q{n}"}]}],
        output_items=[{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": f"a{n}"}]}],
        body={"id": rid, "object": "response", "n": n},
    )  # fmt: skip


def test_stored_responses_chain_back_within_their_tenant(store: Store) -> None:
    table = store.responses
    table.save(_response("acme", "resp_1", None, 1))
    table.save(_response("acme", "resp_2", "resp_1", 2))
    table.save(_response("beta", "resp_3", "resp_1", 3))  # names acme's response: its chain is broken
    found = table.get("acme", "resp_2")
    assert found is not None and found.body == {"id": "resp_2", "object": "response", "n": 2}
    history = table.history("acme", "resp_2")
    assert history is not None
    texts = [item["content"][0]["text"] for item in history]
    assert texts == ["q1", "a1", "q2", "a2"]  # oldest first, each input before its output
    assert table.get("beta", "resp_1") is None and table.history("beta", "resp_1") is None
    assert table.history("beta", "resp_3") is None  # never another tenant's items
    assert table.get("acme", "x" * 65) is None
    assert table.delete("beta", "resp_2") is False and table.get("acme", "resp_2") is not None
    assert table.delete("acme", "resp_1") is True
    assert table.history("acme", "resp_2") is None  # a deleted link breaks the chain
    with pytest.raises(ValueError, match="tenant id"):
        table.save(_response("bad tenant", "resp_9", None, 9))


def test_a_history_too_long_or_too_big_is_refused_by_name(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmrelay.store import responses as stored

    table = store.responses
    previous = None
    for n in range(4):
        table.save(_response("acme", f"resp_{n}", previous, n))
        previous = f"resp_{n}"
    assert len(table.history("acme", "resp_3") or []) == 8
    monkeypatch.setattr(stored, "MAX_CHAIN", 3)
    with pytest.raises(ValueError, match="over 3 responses"):
        table.history("acme", "resp_3")
    monkeypatch.setattr(stored, "MAX_CHAIN", 1000)
    monkeypatch.setattr(stored, "MAX_HISTORY_BYTES", 300)
    with pytest.raises(ValueError, match="MB of items"):
        table.history("acme", "resp_3")


# ---------------------------------------------------------------- conversations


def test_conversations_are_scoped_per_tenant(store: Store) -> None:
    store.append_messages("acme", "chat-1", [{"role": "user", "content": "acme's secret plan"}])
    store.append_messages("beta", "chat-1", [{"role": "user", "content": "beta's question"}])
    store.append_messages(
        "acme", "chat-1", [{"role": "assistant", "content": [{"type": "text", "text": "ok ✓"}]}, {"role": "user"}]
    )
    acme = store.conversation("acme", "chat-1")
    beta = store.conversation("beta", "chat-1")
    assert acme is not None and beta is not None
    assert acme.messages == [
        {"role": "user", "content": "acme's secret plan"},
        {"role": "assistant", "content": [{"type": "text", "text": "ok ✓"}]},
        {"role": "user"},
    ]
    assert beta.messages == [{"role": "user", "content": "beta's question"}]
    assert store.conversation("gamma", "chat-1") is None
    assert store.delete_conversation("gamma", "chat-1") is False
    assert store.delete_conversation("beta", "chat-1") is True
    assert store.conversation("beta", "chat-1") is None
    assert store.conversation("acme", "chat-1") == acme
    assert store.delete_conversation("beta", "chat-1") is False


def test_conversation_listing(store: Store) -> None:
    clock = itertools.count(1000.0)
    store._clock = lambda: next(clock)
    store.append_messages("acme", "a", [{"role": "user", "content": "1"}])
    store.append_messages("acme", "b", [])
    store.append_messages("acme", "a", [{"role": "assistant", "content": "2"}])
    listed = store.list_conversations("acme")
    assert [(c.id, c.messages, c.created_at, c.updated_at) for c in listed] == [
        ("a", 2, 1000.0, 1002.0),
        ("b", 0, 1001.0, 1001.0),
    ]
    assert [c.id for c in store.list_conversations("acme", limit=1, offset=1)] == ["b"]
    assert store.list_conversations("beta") == []
    with pytest.raises(ValueError, match="conversation id"):
        store.append_messages("acme", "", [])
    with pytest.raises(ValueError, match="message 0"):
        store.append_messages("acme", "a", ["not a dict"])  # type: ignore[list-item]


def test_concurrent_appends_keep_every_message(store: Store) -> None:
    barrier = threading.Barrier(5)

    def work(i: int) -> None:
        barrier.wait(JOIN_S)
        for j in range(4):
            store.append_messages("acme", "shared", [{"role": "user", "content": f"{i}-{j}"}])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_S)
    conversation = store.conversation("acme", "shared")
    assert conversation is not None
    contents = [m["content"] for m in conversation.messages]
    assert sorted(contents) == sorted(f"{i}-{j}" for i in range(5) for j in range(4))
    for i in range(5):  # each thread's messages in the order it sent them
        assert [c for c in contents if c.startswith(f"{i}-")] == [f"{i}-{j}" for j in range(4)]


# ---------------------------------------------------------------- usage


def test_usage_is_idempotent(store: Store) -> None:
    first = record()
    assert store.add_usage([first]) == 1
    assert store.add_usage([first]) == 0
    again = record()
    assert store.add_usage([again, again, first]) == 1
    assert store.add_usage([]) == 0
    assert store.count_usage(UsageQuery()) == 2


def test_usage_listing_and_filters(store: Store) -> None:
    records = [
        record(tenant="acme", key_id="key_" + "a" * 16, model="gpt", created_at=100.0, cost_usd=1.0),
        record(tenant="acme", key_id="key_" + "b" * 16, model="claude", created_at=200.0, cost_usd=2.0),
        record(tenant="beta", key_id=None, model="gpt", created_at=300.0, cost_usd=None, status=500, error="boom"),
        record(tenant=None, key_id=None, model="gpt", created_at=400.0, cost_usd=4.0, cache_hit=True),
    ]
    store.add_usage(records)
    assert store.usage(UsageQuery()) == records[::-1]  # newest first, every field back as written
    assert store.usage(UsageQuery(limit=2, offset=1)) == [records[2], records[1]]
    assert store.usage(UsageQuery(tenant="acme")) == [records[1], records[0]]
    assert store.usage(UsageQuery(model="gpt", since=100.0, until=300.0)) == [records[0]]
    assert store.usage(UsageQuery(key_id="key_" + "b" * 16)) == [records[1]]
    assert store.count_usage(UsageQuery(model="gpt", limit=1)) == 3
    assert store.spend() == pytest.approx(7.0)
    assert store.spend(tenant="acme") == pytest.approx(3.0)
    assert store.spend(key_id="key_" + "a" * 16) == pytest.approx(1.0)
    assert store.spend(tenant="acme", since=150.0) == pytest.approx(2.0)
    assert store.spend(tenant="nobody") == 0.0


def test_a_record_without_a_time_is_stamped_now(store: Store) -> None:
    before = time.time()
    store.add_usage([record(created_at=0.0)])
    (stored,) = store.usage(UsageQuery())
    assert before <= stored.created_at <= time.time()


def test_totals_by_group(store: Store) -> None:
    day1, day2 = 1_700_000_000.0, 1_700_000_000.0 + 86400
    key = "key_" + "a" * 16
    store.add_usage(
        [
            record(tenant="acme", key_id=key, created_at=day1, prompt_tokens=10, completion_tokens=5, cost_usd=0.5),
            record(tenant="acme", key_id=key, created_at=day2, prompt_tokens=1, cached_tokens=1, status=429),
            record(tenant="beta", model="claude", created_at=day2, reasoning_tokens=7, cost_usd=0.25),
        ]
    )
    totals = store.usage_totals(UsageQuery(), ["tenant", "day"])
    assert totals == [
        {
            "tenant": "acme",
            "day": "2023-11-14",
            "requests": 1,
            "errors": 0,
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "cached_tokens": 0,
            "reasoning_tokens": 0,
            "cost_usd": 0.5,
        },
        {
            "tenant": "acme",
            "day": "2023-11-15",
            "requests": 1,
            "errors": 1,
            "prompt_tokens": 1,
            "completion_tokens": 0,
            "cached_tokens": 1,
            "reasoning_tokens": 0,
            "cost_usd": 0.0,
        },
        {
            "tenant": "beta",
            "day": "2023-11-15",
            "requests": 1,
            "errors": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cached_tokens": 0,
            "reasoning_tokens": 7,
            "cost_usd": 0.25,
        },
    ]
    by_key = store.usage_totals(UsageQuery(), ["key"])
    assert [(t["key_id"], t["requests"]) for t in by_key] == [(key, 2), (None, 1)]
    (overall,) = store.usage_totals(UsageQuery(), ())
    assert (overall["requests"], overall["errors"], overall["cost_usd"]) == (3, 1, 0.75)
    (empty,) = store.usage_totals(UsageQuery(tenant="nobody"), [])
    assert empty["requests"] == 0 and empty["cost_usd"] == 0.0 and empty["prompt_tokens"] == 0
    with pytest.raises(ValueError, match="cannot group usage by 'week'"):
        store.usage_totals(UsageQuery(), ["week"])  # type: ignore[list-item]


TOKENS = ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens")
GROUP_FIELDS = {"tenant": "tenant", "key": "key_id", "model": "model", "day": "day"}
_windows = itertools.count()

record_fields = st.fixed_dictionaries(
    {
        "tenant": st.sampled_from([None, "acme", "beta", "Gamma"]),
        "key_id": st.sampled_from([None, "key_" + "0" * 16, "key_" + "1" * 16]),
        "model": st.sampled_from(["gpt", "claude", "Gpt-4o", "a.b/c"]),
        "status": st.sampled_from([200, 200, 201, 400, 429, 500]),
        "prompt_tokens": st.integers(0, 1_000_000),
        "completion_tokens": st.integers(0, 1_000_000),
        "cached_tokens": st.integers(0, 1000),
        "reasoning_tokens": st.integers(0, 1000),
        "cost_usd": st.none() | st.floats(0, 50, allow_nan=False),
        "offset_s": st.floats(0, 3 * 86400 - 1, allow_nan=False),
    }
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    drawn=st.lists(record_fields, max_size=25),
    group_by=st.lists(st.sampled_from(["tenant", "key", "model", "day"]), unique=True, max_size=4),
    resend=st.integers(0, 25),
)
def test_totals_equal_python_sums(store: Store, drawn: list[dict[str, Any]], group_by: list[str], resend: int) -> None:
    start = 1_600_000_000.0 + next(_windows) * 10 * 86400  # a time window of this example's own
    records = [record(created_at=start + fields.pop("offset_s"), **fields) for fields in (dict(d) for d in drawn)]
    assert store.add_usage(records) == len(records)
    assert store.add_usage(records[:resend]) == 0  # sent again: nothing added
    query = UsageQuery(since=start, until=start + 3 * 86400)

    expected: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in records:
        values = {
            "tenant": r.tenant,
            "key_id": r.key_id,
            "model": r.model,
            "day": datetime.fromtimestamp(r.created_at, UTC).strftime("%Y-%m-%d"),
        }
        group = tuple(values[GROUP_FIELDS[g]] for g in group_by)
        sums = expected.setdefault(
            group,
            {GROUP_FIELDS[g]: v for g, v in zip(group_by, group, strict=True)}
            | dict.fromkeys(("requests", "errors", *TOKENS), 0)
            | {"cost_usd": 0.0},
        )
        sums["requests"] += 1
        sums["errors"] += r.status >= 400
        for name in TOKENS:
            sums[name] += getattr(r, name)
        sums["cost_usd"] += r.cost_usd or 0.0
    if not group_by and not expected:
        expected[()] = dict.fromkeys(("requests", "errors", *TOKENS), 0) | {"cost_usd": 0.0}

    totals = store.usage_totals(query, group_by)  # type: ignore[arg-type]
    got = {tuple(row[GROUP_FIELDS[g]] for g in group_by): row for row in totals}
    assert len(got) == len(totals)
    assert set(got) == set(expected)
    for group, row in got.items():
        want = expected[group]
        assert row == want | {"cost_usd": pytest.approx(want["cost_usd"], rel=1e-9, abs=1e-9)}
    assert store.count_usage(query) == len(records)
    assert store.spend(since=start) == pytest.approx(sum(r.cost_usd or 0.0 for r in records), rel=1e-9, abs=1e-9)


@given(st.builds(record, cost_usd=st.none() | st.floats(0, 1e6), error=st.none() | st.text(max_size=20)))
def test_usage_record_json_round_trip(r: UsageRecord) -> None:
    import json

    assert UsageRecord.from_json(json.loads(json.dumps(r.to_json()))) == r
    assert UsageRecord.from_json(r.to_json() | {"added_later": 1}) == r


# ---------------------------------------------------------------- migrations


def versions(url: str) -> list[int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(schema_version.c.version).order_by(schema_version.c.version)).scalars())
    finally:
        engine.dispose()


def test_opening_twice_is_a_no_op(db_url: str) -> None:
    Store.open(db_url).close()
    Store.open(db_url).close()
    assert versions(db_url) == [step.version for step in MIGRATIONS]


def test_migrating_gives_the_schema_the_code_uses(db_url: str) -> None:
    Store.open(db_url).close()
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            found = inspect(conn)
            assert set(metadata.tables) <= set(found.get_table_names())
            for table in metadata.sorted_tables:
                assert [c["name"] for c in found.get_columns(table.name)] == [c.name for c in table.columns]
                assert {i["name"] for i in found.get_indexes(table.name)} >= {i.name for i in table.indexes}
    finally:
        engine.dispose()


def _open_and_close(url: str, barrier: Any) -> None:
    barrier.wait(JOIN_S)
    with Store.open(url) as store:
        store.create_key("shared")  # a write on the migrated schema (its tenant made if absent)


def test_concurrent_opens_from_threads(db_url: str) -> None:
    barrier = threading.Barrier(3)
    failures: list[BaseException] = []

    def work() -> None:
        try:
            _open_and_close(db_url, barrier)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_S)
    assert failures == []
    assert versions(db_url) == [step.version for step in MIGRATIONS]


def test_concurrent_opens_from_processes(db_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=_open_and_close, args=(db_url, barrier)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(JOIN_S)
        if p.exitcode is None:
            p.kill()
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert versions(db_url) == [step.version for step in MIGRATIONS]
    with Store.open(db_url) as store:
        assert [t.id for t in store.list_tenants()] == ["shared"]


def test_a_database_newer_than_the_code_is_refused(db_url: str) -> None:
    Store.open(db_url).close()
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(insert(schema_version).values(version=LATEST + 5, description="from the future", applied_at=0.0))
    engine.dispose()
    with pytest.raises(StoreError, match=rf"version {LATEST + 5}, newer .*\(version {LATEST}\)"):
        Store.open(db_url)


def test_steps_run_in_order_once_each(db_url: str) -> None:
    Store.open(db_url).close()

    def add_note(conn: Any) -> None:
        conn.execute(text("ALTER TABLE tenants ADD COLUMN note TEXT"))

    def fill_note(conn: Any) -> None:
        conn.execute(text("UPDATE tenants SET note = 'migrated'"))

    steps = [*MIGRATIONS, Migration(LATEST + 1, "tenant notes", add_note), Migration(LATEST + 2, "fill", fill_note)]
    with Store.open(db_url) as store:
        store.create_tenant(Tenant("acme"))
    engine = make_engine(db_url)
    try:
        assert migrate(engine, steps) == LATEST + 2
        assert migrate(engine, steps) == LATEST + 2  # nothing left to do
        with engine.connect() as conn:
            assert conn.execute(text("SELECT note FROM tenants")).scalar_one() == "migrated"
        with pytest.raises(StoreError, match="numbered"):
            migrate(engine, [Migration(2, "gap", add_note)])
    finally:
        engine.dispose()
    assert versions(db_url) == list(range(1, LATEST + 3))
    with pytest.raises(StoreError, match=rf"version {LATEST + 2}"):
        Store.open(db_url)


# ---------------------------------------------------------------- where the store lives


def test_default_store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_store_url(Settings(), env={}) == f"sqlite:///{tmp_path.resolve()}/llmrelay.db"
    config = tmp_path / "conf" / "llmrelay.yaml"
    assert default_store_url(Settings(path=config), env={}) == f"sqlite:///{tmp_path.resolve()}/conf/llmrelay.db"
    given_url = "postgresql://u:p@127.0.0.1/db"
    assert default_store_url(Settings(path=config, store_url=given_url), env={}) == given_url
    env = {"LLMRELAY_STORE_URL": "sqlite:///from-env.db"}
    assert default_store_url(Settings(store_url=given_url), env=env) == f"sqlite:///{tmp_path.resolve()}/from-env.db"
    monkeypatch.setenv("LLMRELAY_STORE_URL", "postgresql://127.0.0.1/other")
    assert default_store_url(Settings(store_url=given_url)) == "postgresql://127.0.0.1/other"


def test_config_store_url(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    path = conf / "llmrelay.yaml"
    path.write_text("store: {url: sqlite:///data/relay.db}\n")
    assert load_settings(path, env={}).store_url == f"sqlite:///{conf.resolve()}/data/relay.db"
    path.write_text("store: {url: 'sqlite:////var/lib/relay.db'}\n")
    assert load_settings(path, env={}).store_url == "sqlite:////var/lib/relay.db"
    path.write_text("store: {url: '${DB_URL}'}\n")
    pg = "postgresql://relay:pw@127.0.0.1:5432/relay"
    settings = load_settings(path, env={"DB_URL": pg})
    assert settings.store_url == pg and "pw@" not in repr(settings)
    path.write_text("store: {}\n")
    assert load_settings(path, env={}).store_url is None
    path.write_text("providers: []\n")
    assert load_settings(path, env={}).store_url is None
    path.write_text("store: {uri: sqlite:///x.db}\n")
    with pytest.raises(errors.ConfigError, match=r"store\.uri: unknown key"):
        load_settings(path, env={})
