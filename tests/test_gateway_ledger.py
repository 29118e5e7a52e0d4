"""The usage ledger when things go wrong: a record the store refuses is set aside
and the rest land; a queue that fails spills into the on-disk spool; what a
killed process spooled is written by the next; a full spool turns new requests
away; a store that is down keeps everything queued until it is back.

Real databases and Redis only: SQLite under tmp_path, PostgreSQL
(``LLMRELAY_TEST_POSTGRES_URL``, see test_store.py) and Redis
(``LLMRELAY_TEST_REDIS_URL``, see test_state_contract.py), skipped with the
reason when a server does not answer. The outages are real too: a port where
nothing listens, a TCP relay that is stopped and started again, a SQLite write
lock held by another connection, a process killed with SIGKILL."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url

from llmrelay.gateway.ledger import Ledger, MemoryQueue, QueueFull, RedisQueue
from llmrelay.gateway.spool import Spool, SpoolFull
from llmrelay.store import Store, StoreError, UsageQuery, UsageRecord
from test_state_contract import REDIS_URL, redis_reason
from test_store import db_url, record  # noqa: F401  (db_url: a fresh SQLite file or PostgreSQL schema)

LEDGER_LOG = "llmrelay.gateway.ledger"
SECRET_TEXT = "tenant-private-words"
"""Part of a bad record's text: it must never reach the log."""

needs_redis = pytest.mark.skipif(redis_reason() is not None, reason=redis_reason() or "")
postgres_only = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def records(count: int, **fields: Any) -> list[UsageRecord]:
    return [record(request_id=f"req-{n}", **fields) for n in range(count)]


def stored_ids(store: Store) -> list[str]:
    return [row.id for row in store.usage(UsageQuery(limit=10_000))]


def spool_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("spool-*.jsonl")) if folder.exists() else []


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class Relay:
    """A TCP relay on a port of its own to ``host:port``: ``stop`` is the server going
    away (its connections cut, the port closed), ``start`` brings it back on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in self._open:
            writer.transport.abort()
        self._open.clear()
        await asyncio.sleep(0.05)  # the aborted connections' handlers finish

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._open |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()


@pytest.fixture
async def relays() -> AsyncIterator[list[Relay]]:
    """Relays a test starts; stopped at its end."""
    made: list[Relay] = []
    yield made
    for relay in made:
        await relay.stop()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path}/store.db")
    try:
        yield opened
    finally:
        opened.close()


# ---------------------------------------------------------------- records the store refuses


async def test_a_record_the_store_refuses_is_set_aside_and_the_rest_land(
    db_url: str,  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL refuses a NUL in a text column; SQLite an integer past 64 bits."""
    caplog.set_level(logging.DEBUG, logger=LEDGER_LOG)
    postgres = db_url.startswith("postgresql")
    bad = record(model=f"gpt\x00{SECRET_TEXT}") if postgres else record(model=SECRET_TEXT, prompt_tokens=2**63)
    batch = records(50)
    batch[17] = bad
    store = Store.open(db_url)
    spool = Spool(tmp_path / "spool")
    ledger = Ledger(store, MemoryQueue(), spool=spool)
    try:
        for item in batch:
            await ledger.record(item)
        assert await ledger.flush() == 49
        assert ledger.rejected == 1 and ledger.written == 49
        ids = stored_ids(store)
        assert len(ids) == 49 and bad.id not in ids

        [line] = spool.rejects_file().read_text().splitlines()
        rejected = json.loads(line)
        assert UsageRecord.from_json(rejected["record"]) == bad
        assert rejected["error"].startswith("DataError: " if postgres else "OverflowError: ")
        assert mode(spool.rejects_file()) == 0o600
        [error] = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert bad.id in error.getMessage()
        assert SECRET_TEXT not in caplog.text

        later = records(10)  # the ledger goes on
        for item in later:
            await ledger.record(item)
        assert await ledger.flush() == 10
        assert len(stored_ids(store)) == 59 and ledger.rejected == 1
        assert spool_files(tmp_path / "spool") == []  # the queue worked: nothing was spooled
    finally:
        await ledger.aclose()
        store.close()


@postgres_only
async def test_every_kind_of_row_postgresql_refuses_is_set_aside(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    """Refused by the server (the transaction aborts) or by the driver; in a reject file of its own."""
    bad = [
        record(model=f"a\x00{SECRET_TEXT}"),  # the driver: NUL
        record(tenant="t" * 65),  # the server: value too long for varchar(64)
        record(prompt_tokens=2**31),  # the server: integer out of range
        record(key_id="k" * 21),  # the server: value too long for varchar(20)
    ]
    good = records(30)
    batch = good[:10] + bad[:2] + good[10:20] + bad[2:] + good[20:]
    rejects = tmp_path / "rejects" / "refused.jsonl"
    store = Store.open(db_url)
    ledger = Ledger(store, MemoryQueue(), batch=16, rejects_path=rejects)
    try:
        for item in batch:
            await ledger.record(item)
        assert await ledger.flush() == 30
        assert ledger.rejected == 4
        assert sorted(stored_ids(store)) == sorted(r.id for r in good)
        lines = [json.loads(line) for line in rejects.read_text().splitlines()]
        assert [line["record"]["id"] for line in lines] == [r.id for r in bad]
        assert [line["error"].split(":")[0] for line in lines] == [
            "DataError",
            "StringDataRightTruncation",
            "NumericValueOutOfRange",
            "StringDataRightTruncation",
        ]
        assert mode(rejects) == 0o600
    finally:
        await ledger.aclose()
        store.close()


# ---------------------------------------------------------------- a queue that fails


async def test_a_queue_whose_redis_is_unreachable_spools_and_the_writer_stores_it(
    sqlite_store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from llmrelay.state.redis import RedisState

    caplog.set_level(logging.INFO, logger=LEDGER_LOG)
    state = RedisState(f"redis://127.0.0.1:{free_port()}/0", prefix="llmrelay-test-nowhere:", timeout_s=0.5)
    spool = Spool(tmp_path / "spool")
    ledger = Ledger(sqlite_store, RedisQueue(state.redis, state.prefix), spool=spool, interval_s=0.05)
    made = records(20)
    try:
        for item in made:
            await ledger.record(item)  # no error: spooled
        assert ledger.spooled == 20 and ledger.accepting
        assert len([r for r in caplog.records if "does not take records" in r.getMessage()]) == 1  # once, not 20 times
        assert [mode(path) for path in spool_files(tmp_path / "spool")] == [0o600]
        assert mode(tmp_path / "spool") == 0o700

        ledger.start()
        for _ in range(100):  # up to 5 s
            if sqlite_store.count_usage(UsageQuery()) == 20:
                break
            await asyncio.sleep(0.05)
        assert sorted(stored_ids(sqlite_store)) == sorted(r.id for r in made)
        for _ in range(40):  # its file goes once its records are done, up to 2 s
            if not spool_files(tmp_path / "spool"):
                break
            await asyncio.sleep(0.05)
        assert spool_files(tmp_path / "spool") == [] and ledger.accepting
    finally:
        await ledger.aclose()
        await state.redis.aclose()


@needs_redis
async def test_records_made_while_redis_is_away_land_with_the_others(
    sqlite_store: Store, tmp_path: Path, relays: list[Relay]
) -> None:
    import redis.asyncio as aioredis

    target = make_url(REDIS_URL)
    relay = Relay(target.host or "127.0.0.1", target.port or 6379)
    relays.append(relay)
    await relay.start()
    prefix = f"llmrelay-test-{uuid.uuid4().hex[:8]}:"
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{relay.port}/{target.database or 0}", socket_timeout=2)
    queue = RedisQueue(client, prefix)
    ledger = Ledger(sqlite_store, queue, spool=Spool(tmp_path / "spool"))
    before, during, after = records(10), records(10), records(10)
    try:
        for item in before:
            await ledger.record(item)
        assert ledger.spooled == 0 and not (tmp_path / "spool").exists()  # the hot path touched no file
        await relay.stop()
        for item in during:
            await ledger.record(item)
        assert ledger.spooled == 10
        await relay.start()
        for item in after:
            await ledger.record(item)
        assert ledger.spooled == 10
        assert await ledger.flush() == 30
        assert sorted(stored_ids(sqlite_store)) == sorted(r.id for r in before + during + after)
        assert await queue.pending() == 0 and spool_files(tmp_path / "spool") == []
    finally:
        await relay.start()  # if a failure left it stopped: the ledger's last flush goes through it
        await ledger.aclose()
        await client.aclose()
        direct = aioredis.Redis.from_url(REDIS_URL)
        await direct.delete(queue.stream)
        await direct.aclose()


# ---------------------------------------------------------------- crash recovery

_KILLED_WRITER = """
import json, os, signal, sys
from llmrelay.gateway.spool import Spool
from llmrelay.store import UsageRecord

records = [UsageRecord.from_json(data) for data in json.load(sys.stdin)]
spool = Spool(sys.argv[1])
spool.append(records[:25])
spool.append(records[25:])
os.kill(os.getpid(), signal.SIGKILL)
"""


async def test_what_a_killed_process_spooled_is_written_once_by_the_next(sqlite_store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    made = records(40)
    dead = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, str(folder)],
        input=json.dumps([r.to_json() for r in made]), text=True, capture_output=True, timeout=60,
    )  # fmt: skip
    assert dead.returncode == -signal.SIGKILL, dead.stderr
    [left] = spool_files(folder)
    torn = json.dumps(record().to_json()).encode()
    with left.open("ab") as f:  # a write cut short by the kill
        f.write(torn[: len(torn) // 2])

    ledger = Ledger(sqlite_store, MemoryQueue(), spool=Spool(folder))
    try:
        ledger.start()
        await ledger.flush()
        assert sorted(stored_ids(sqlite_store)) == sorted(r.id for r in made)
        assert ledger.written == 40 and ledger.rejected == 0  # each record once; the torn line skipped
        assert spool_files(folder) == []
    finally:
        await ledger.aclose()


async def test_a_live_process_spool_file_is_left_to_it(tmp_path: Path) -> None:
    live, other = Spool(tmp_path), Spool(tmp_path)
    made = records(3)
    live.append(made)
    assert other.take(10) == []  # its owner holds it
    assert [r for _, r in live.take(10)] == made
    live.close()  # as the kernel does for a process that dies
    taken = other.take(10)
    assert [r for _, r in taken] == made
    other.done([receipt for receipt, _ in taken])
    assert spool_files(tmp_path) == []
    other.close()


async def test_the_spool_reads_in_pieces_and_skips_what_is_not_a_record(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    made = records(6)
    made[2] = record(error="e" * 600_000)  # longer than one read
    spool.append(made[:3])
    [path] = spool_files(tmp_path)
    with path.open("ab") as f:  # a corrupt line and a line that is no record, between whole ones
        f.write(b'{"id": "x", "trun\n[1, 2]\n')
    spool.append(made[3:])
    seen: list[UsageRecord] = []
    for _ in range(10):  # three at a time, each batch done before the next
        taken = spool.take(3)
        if not taken:
            break
        seen.extend(r for _, r in taken)
        spool.done([receipt for receipt, _ in taken])
    assert seen == made and spool.skipped == 2
    assert spool_files(tmp_path) == [] and spool.used == 0
    spool.close()


# ---------------------------------------------------------------- bounds


async def test_a_full_spool_refuses_records_and_the_ledger_stops_accepting(
    sqlite_store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LEDGER_LOG)
    spool = Spool(tmp_path / "spool", max_bytes=4096)
    ledger = Ledger(sqlite_store, MemoryQueue(max_records=5), spool=spool)
    kept: list[UsageRecord] = []
    closed_at: int | None = None
    refused: UsageRecord | None = None
    try:
        for n in range(100):  # a record is some 300 bytes: the spool is full long before
            if closed_at is None and not ledger.accepting:
                closed_at = n
            item = record()
            try:
                await ledger.record(item)
            except SpoolFull:
                refused = item
                break
            kept.append(item)
        assert refused is not None and closed_at is not None and closed_at <= len(kept)
        assert not ledger.accepting and len(kept) > 5
        assert refused.id in caplog.text and "nor spooled" in caplog.text
        assert 4096 - spool.headroom < spool.used <= 4096
        assert sum(path.stat().st_size for path in spool_files(tmp_path / "spool")) == spool.used
        assert {mode(path) for path in spool_files(tmp_path / "spool")} == {0o600}

        assert await ledger.flush() == len(kept)  # the store takes it all: room again
        assert ledger.accepting and spool.used == 0
        assert sorted(stored_ids(sqlite_store)) == sorted(r.id for r in kept)
    finally:
        await ledger.aclose()


async def test_without_a_spool_a_full_memory_queue_stops_accepting(sqlite_store: Store) -> None:
    ledger = Ledger(sqlite_store, MemoryQueue(max_records=3))
    try:
        for item in records(3):
            await ledger.record(item)
        assert not ledger.accepting
        with pytest.raises(QueueFull):
            await ledger.record(record())
        assert await ledger.flush() == 3 and ledger.accepting
    finally:
        await ledger.aclose()


# ---------------------------------------------------------------- the store down


@pytest.fixture
def locked_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Store, sqlite3.Connection]]:
    """A SQLite store (waiting 0.2 s for the write lock) and a connection to take the lock with."""
    monkeypatch.setattr("llmrelay.store.engine.BUSY_TIMEOUT_S", 0.2)
    path = tmp_path / "store.db"
    store = Store.open(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        yield store, other
    finally:
        other.close()
        store.close()


async def test_a_locked_sqlite_store_keeps_everything_queued_until_it_is_free(
    locked_sqlite: tuple[Store, sqlite3.Connection], tmp_path: Path
) -> None:
    """The store answers a ping but cannot write: an outage all the same, nothing rejected."""
    store, other = locked_sqlite
    queue = MemoryQueue()
    ledger = Ledger(store, queue, spool=Spool(tmp_path / "spool"))
    made = records(20)
    try:
        other.execute("BEGIN IMMEDIATE")
        for item in made:
            await ledger.record(item)
        for _ in range(2):
            with pytest.raises(StoreError, match="locked"):
                await ledger.flush()
        assert ledger.rejected == 0 and ledger.written == 0 and len(queue) == 20
        assert not (tmp_path / "spool").exists()  # nothing set aside, nothing spooled
        other.execute("ROLLBACK")
        assert await ledger.flush() == 20
        assert sorted(stored_ids(store)) == sorted(r.id for r in made)
    finally:
        await ledger.aclose()


async def test_a_shutdown_while_the_store_is_down_spools_the_memory_queue(
    locked_sqlite: tuple[Store, sqlite3.Connection], tmp_path: Path
) -> None:
    store, other = locked_sqlite
    made = records(15)
    first = Ledger(store, MemoryQueue(), spool=Spool(tmp_path / "spool"))
    other.execute("BEGIN IMMEDIATE")
    for item in made:
        await first.record(item)
    await first.aclose()
    assert len(spool_files(tmp_path / "spool")) == 1
    other.execute("ROLLBACK")

    second = Ledger(store, MemoryQueue(), spool=Spool(tmp_path / "spool"))
    try:
        assert await second.flush() == 15
        assert sorted(stored_ids(store)) == sorted(r.id for r in made)
        assert spool_files(tmp_path / "spool") == []
    finally:
        await second.aclose()


@postgres_only
async def test_a_postgresql_store_that_goes_away_keeps_everything_queued_until_it_is_back(
    db_url: str,  # noqa: F811
    tmp_path: Path,
    relays: list[Relay],
) -> None:
    direct = make_url(db_url)
    relay = Relay(direct.host or "127.0.0.1", direct.port or 5432)
    relays.append(relay)
    await relay.start()
    url = direct.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    # the relay runs on this event loop: every store call goes through a thread
    store = await asyncio.to_thread(Store.open, url)
    queue = MemoryQueue()
    ledger = Ledger(store, queue, spool=Spool(tmp_path / "spool"))
    before, during = records(10), records(10)
    try:
        for item in before:
            await ledger.record(item)
        assert await ledger.flush() == 10
        await relay.stop()  # the port is closed now
        for item in during:
            await ledger.record(item)
        with pytest.raises(StoreError, match=r"does not answer|connection"):
            await ledger.flush()
        assert ledger.rejected == 0 and len(queue) == 10
        await relay.start()
        assert await ledger.flush() == 10
        assert ledger.rejected == 0 and len(queue) == 0
    finally:
        await ledger.aclose()
        await asyncio.to_thread(store.close)
    check = Store.open(db_url)
    try:
        assert sorted(stored_ids(check)) == sorted(r.id for r in before + during)
    finally:
        check.close()
