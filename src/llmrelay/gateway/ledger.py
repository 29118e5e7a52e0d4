"""The usage ledger: one record per model request, written to the store off the
hot path, in batches. No record is lost quietly, and one bad record never
stops the ledger.

A handler hands its record to a queue before the last byte of its answer goes
out; a background task moves records from the queue to the store in batches
(``batch`` records, or whatever ``interval_s`` has gathered). Queues:

- ``MemoryQueue`` (no Redis): records wait in this process, at most
  ``max_records`` of them; beyond that ``put`` raises ``QueueFull``. A clean
  shutdown writes them all (or spools them when the store is down); a SIGKILL
  loses the ones not written yet (at most ``interval_s`` of traffic while the
  store is up, up to ``max_records`` while it is down).
- ``RedisQueue`` (``state: {backend: redis}``): a Redis stream with a consumer
  group. A record is in Redis before its response completes, so a SIGKILL of
  the gateway loses nothing: the records a dead process had read but not
  written are claimed by a live one (or by the next start) after
  ``claim_idle_s``. While the store is down they wait in Redis.

The spool (``spool.py``; optional, ``Ledger(spool=...)``) keeps what the queue
cannot take: when ``put`` fails (Redis down, the memory queue full), the record
is appended to a bounded directory of JSON-lines files on local disk (a warning
once per outage, naming the spool). The writer moves spooled records straight
to the store, in the same rounds as the queue's, and at ``start`` it writes
what a dead process left there. A SIGKILL loses nothing spooled (at most the
torn last line of a write in progress, whose ``record`` had not returned); a
power cut may (no fsync). When the queue fails and the spool is missing or
full, ``record`` logs the record's id at ERROR and raises. ``accepting`` turns
False just before that can happen (the spool nearly full; without a spool, the
memory queue at its bound; a Redis queue without a spool gives no warning), and
the gateway answers new model requests 503 meanwhile, so nothing it answers
goes unrecorded.

The store down: a failed batch is followed by a ping. When the store does not
answer, or the error is the store's own (locked, read-only, a missing table),
everything stays queued or spooled and the next round tries again. When it
answers, the batch holds bad records (a NUL PostgreSQL refuses, a number too
large for its column): they are written one at a time, and each record the
store still refuses is set aside in the reject file -- JSON lines (0o600) of the
record and the error's first line, ``rejected-<date>.jsonl`` in the spool's
directory or ``rejects_path`` -- logged at ERROR by id only (a record may hold
tenant data) and acknowledged, so it holds up no other record. With neither a
spool nor a ``rejects_path``, such a record can only be logged and dropped.

Writes are idempotent (records carry unique ids), so a record written twice
(re-read after a crash, claimed from a slow writer) is stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .._json import dumps, loads
from ..store.records import StoreUnavailable, UsageRecord
from ..store.store import Store
from .spool import Spool, append_rejects

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("llmrelay.gateway.ledger")


class RecordQueue(Protocol):
    async def put(self, record: UsageRecord) -> None: ...

    async def take(self, limit: int) -> list[tuple[str, UsageRecord]]:
        """Up to ``limit`` records not yet written, with receipts for ``done``."""
        ...

    async def done(self, receipts: Sequence[str]) -> None:
        """The records are in the store."""
        ...

    async def aclose(self) -> None: ...


class QueueFull(Exception):
    """The queue holds as many records as it may (``MemoryQueue.max_records``)."""


class MemoryQueue:
    """Records in this process's memory, at most ``max_records`` (taken and not done included)."""

    def __init__(self, max_records: int = 100_000) -> None:
        if max_records <= 0:
            raise ValueError(f"max_records must be positive, not {max_records!r}")
        self.max_records = max_records
        self._records: list[UsageRecord] = []
        self._taken: dict[str, UsageRecord] = {}

    @property
    def full(self) -> bool:
        return len(self._records) + len(self._taken) >= self.max_records

    async def put(self, record: UsageRecord) -> None:
        if len(self._records) + len(self._taken) >= self.max_records:
            raise QueueFull(f"the in-memory usage queue holds its maximum of {self.max_records} records")
        self._records.append(record)

    async def take(self, limit: int) -> list[tuple[str, UsageRecord]]:
        # records taken earlier and never marked done (a failed write) come first
        out = list(self._taken.items())[:limit]
        fresh, self._records = self._records[: limit - len(out)], self._records[limit - len(out) :]
        for record in fresh:
            self._taken[record.id] = record
            out.append((record.id, record))
        return out

    async def done(self, receipts: Sequence[str]) -> None:
        for receipt in receipts:
            self._taken.pop(receipt, None)

    def __len__(self) -> int:
        return len(self._records) + len(self._taken)

    async def aclose(self) -> None:
        return None


class RedisQueue:
    """A Redis stream ``{prefix}ledger`` read through the consumer group ``writers``."""

    GROUP = "writers"

    def __init__(self, redis: Redis, prefix: str = "llmrelay:", *, claim_idle_s: float = 10.0) -> None:
        self._redis = redis
        self.stream = f"{prefix}ledger"
        self._consumer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._claim_idle_ms = int(claim_idle_s * 1000)
        self._ready = False

    async def _ensure_group(self) -> None:
        if self._ready:
            return
        try:
            await self._redis.xgroup_create(self.stream, self.GROUP, id="0", mkstream=True)
        except Exception as exc:  # BUSYGROUP: another process made it
            if "BUSYGROUP" not in str(exc):
                raise
        self._ready = True

    async def put(self, record: UsageRecord) -> None:
        await self._redis.xadd(self.stream, {"r": dumps(record.to_json())})

    async def take(self, limit: int) -> list[tuple[str, UsageRecord]]:
        await self._ensure_group()
        entries: list[tuple[Any, dict[Any, Any]]] = []
        # first: what a dead (or slow) writer took and never acknowledged
        claimed = await self._redis.xautoclaim(
            self.stream, self.GROUP, self._consumer, self._claim_idle_ms, start_id="0-0", count=limit
        )
        entries.extend(claimed[1])
        # then: this consumer's own unacknowledged (after a failed write), and new ones
        if len(entries) < limit:
            entries.extend(await self._read("0", limit))
        if len(entries) < limit:
            entries.extend(await self._read(">", limit - len(entries)))
        out: list[tuple[str, UsageRecord]] = []
        seen: set[str] = set()
        for entry_id, fields in entries:
            receipt = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            if receipt in seen or not fields:
                continue
            seen.add(receipt)
            raw = fields.get(b"r") or fields.get("r") or b"{}"
            out.append((receipt, UsageRecord.from_json(loads(raw))))
        return out

    async def _read(self, start: str, count: int) -> list[tuple[Any, dict[Any, Any]]]:
        """Entries from ``start`` (``0``: this consumer's unacknowledged; ``>``: new ones)."""
        answer: Any = await self._redis.xreadgroup(self.GROUP, self._consumer, {self.stream: start}, count=count)
        return [item for _, items in answer or [] for item in items if item[1]]

    async def done(self, receipts: Sequence[str]) -> None:
        if receipts:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xack(self.stream, self.GROUP, *receipts)
                pipe.xdel(self.stream, *receipts)
                await pipe.execute()

    async def pending(self) -> int:
        """Records in the stream not yet written (for tests and readiness)."""
        return int(await self._redis.xlen(self.stream))

    async def aclose(self) -> None:
        return None


class _Source(Protocol):
    """Where the writer takes records from: a ``RecordQueue`` or the spool."""

    async def take(self, limit: int) -> list[tuple[str, UsageRecord]]: ...

    async def done(self, receipts: Sequence[str]) -> None: ...


class _Spooled:
    """The spool as the writer reads it: its file I/O in the writer's thread."""

    def __init__(self, spool: Spool, thread: ThreadPoolExecutor) -> None:
        self._spool = spool
        self._thread = thread

    async def take(self, limit: int) -> list[tuple[str, UsageRecord]]:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._spool.take, limit)

    async def done(self, receipts: Sequence[str]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._spool.done, list(receipts))


@dataclass
class _Outcome:
    """What became of a batch: the receipts to acknowledge, and why the round stopped, if it did."""

    done: list[str] = field(default_factory=list)
    written: int = 0
    rejected: int = 0
    outage: Exception | None = None


_RECORD_SQLSTATES = ("22", "23", "54")
"""PostgreSQL's classes of a row's fault: data exception, integrity violation, program limit exceeded."""


def _store_fault(exc: BaseException) -> bool:
    """Whether a failed write is the store's fault (down, locked, read-only, a missing table) and not the
    record's. ``StoreUnavailable`` (connecting, beginning or committing failed) is the store's; a PostgreSQL
    error is the row's in the classes of ``_RECORD_SQLSTATES`` only; a driver error without a SQLSTATE is
    the store's when it is a DB-API ``OperationalError`` or ``InterfaceError`` (SQLite: locked, read-only,
    disk full). Anything else (psycopg's ``DataError`` for a NUL, a value the driver cannot bind) is the
    record's."""
    if isinstance(exc, StoreUnavailable):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        return sqlstate[:2] not in _RECORD_SQLSTATES
    return any(cls.__name__ in ("OperationalError", "InterfaceError") for cls in type(exc).__mro__)


def _reason(exc: BaseException) -> str:
    """The error's type and first line (for logs and the reject file)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


class Ledger:
    """Records in, batches out to the store, in the background."""

    def __init__(
        self,
        store: Store,
        queue: RecordQueue,
        *,
        batch: int = 500,
        interval_s: float = 0.5,
        spool: Spool | None = None,
        rejects_path: str | os.PathLike[str] | None = None,
    ) -> None:
        """``spool`` keeps what ``queue`` cannot take (``None``: such a record is lost, and
        ``record`` raises). ``rejects_path``: the JSON-lines file of the records the store
        refuses (default: ``rejected-<date>.jsonl`` in the spool's directory)."""
        self.store = store
        self.queue = queue
        self.spool = spool
        self._rejects_path = Path(rejects_path) if rejects_path is not None else None
        self._batch = batch
        self._interval = interval_s
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()
        # one thread of its own: writes never wait behind other work, and one thread's
        # allocations stay in one malloc arena
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmrelay-ledger")
        # the spool first: its records are older than the queue's, and it is read even when the queue cannot be
        self._sources: list[_Source] = [queue] if spool is None else [_Spooled(spool, self._writer), queue]
        self._queue_failing = False
        self.written = 0
        self.rejected = 0
        """Records the store refused: set aside in the reject file (dropped when there is none)."""
        self.spooled = 0
        """Records that went to the spool because the queue failed."""

    @property
    def accepting(self) -> bool:
        """Whether a record made now would be kept: ``False`` while the spool is full (with a
        spool) or the memory queue is at its bound (without one)."""
        if self.spool is not None:
            return not self.spool.full
        return not (isinstance(self.queue, MemoryQueue) and self.queue.full)

    async def record(self, record: UsageRecord) -> None:
        """Queue ``record``; when the queue fails, spool it. Raises (after an ERROR naming the
        record) only when neither can take it."""
        try:
            await self.queue.put(record)
        except Exception as exc:
            await self._spool(record, exc)
            return
        if self._queue_failing:
            self._queue_failing = False
            log.info("the usage queue takes records again")

    async def _spool(self, record: UsageRecord, failure: Exception) -> None:
        if self.spool is None:
            log.error("usage record %s could not be queued (%s) and there is no spool", record.id, _reason(failure))
            raise failure
        if not self._queue_failing:
            self._queue_failing = True
            log.warning(
                "the usage queue does not take records (%s); they go to the spool %s until it does",
                _reason(failure),
                self.spool.directory,
            )
        try:
            await asyncio.to_thread(self.spool.append, [record])
        except OSError as exc:
            log.error(
                "usage record %s could not be queued (%s) nor spooled (%s)", record.id, _reason(failure), _reason(exc)
            )
            raise
        self.spooled += 1

    def start(self) -> None:
        """Start the background writer; its first round writes what earlier processes left in the spool."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="llmrelay-ledger")

    async def flush(self) -> int:
        """Write everything spooled and queued now; returns the records written (not those set
        aside). Raises when the store is down (the records stay where they are) or the queue
        cannot be read (after writing what the spool holds)."""
        async with self._flushing:
            total = 0
            failure: Exception | None = None
            for source in self._sources:
                try:
                    written, outage = await self._drain(source)
                except Exception as exc:  # the queue (or the spool) could not be read
                    failure = failure or exc
                    continue
                total += written
                if outage is not None:
                    raise outage
            if failure is not None:
                raise failure
            return total

    async def _drain(self, source: _Source) -> tuple[int, Exception | None]:
        """Write ``source`` out batch by batch: the records written, and the store's error if it is down."""
        loop = asyncio.get_running_loop()
        total = 0
        while True:
            items = await source.take(self._batch)
            if not items:
                return total, None
            outcome = await loop.run_in_executor(self._writer, self._write, items)
            if outcome.done:
                await source.done(outcome.done)
            total += outcome.written
            self.written += outcome.written
            self.rejected += outcome.rejected
            if outcome.outage is not None:
                return total, outcome.outage
            if len(items) < self._batch:
                return total, None

    def _write(self, items: list[tuple[str, UsageRecord]]) -> _Outcome:
        """Write a batch (in the writer's thread): at once, or one record at a time when that
        fails while the store answers."""
        try:
            self.store.add_usage([record for _, record in items])
        except Exception as exc:
            down = self._outage(exc)
            return _Outcome(outage=down) if down is not None else self._one_by_one(items)
        return _Outcome(done=[receipt for receipt, _ in items], written=len(items))

    def _outage(self, exc: Exception) -> Exception | None:
        """The error to report when the store is down or at fault for ``exc``; ``None`` when ``exc`` is the records'."""
        if _store_fault(exc):
            return exc
        try:
            self.store.ping()
        except Exception as down:
            return down
        return None

    def _one_by_one(self, items: list[tuple[str, UsageRecord]]) -> _Outcome:
        """Write ``items`` one record at a time, setting aside each one the store refuses."""
        outcome = _Outcome()
        for receipt, record in items:
            try:
                self.store.add_usage([record])
                outcome.written += 1
            except Exception as exc:
                outcome.outage = self._outage(exc) or self._reject(record, exc)
                if outcome.outage is not None:
                    return outcome
                outcome.rejected += 1
            outcome.done.append(receipt)
        return outcome

    def _reject(self, record: UsageRecord, exc: Exception) -> OSError | None:
        """Set ``record`` aside in the reject file; the ``OSError`` when it cannot be (it stays queued)."""
        path = self._rejects_path or (self.spool.rejects_file() if self.spool is not None else None)
        kind = type(exc).__name__  # the error's text may quote the record: it goes to the reject file only
        if path is None:
            log.error(
                "usage record %s cannot be stored (%s) and there is no reject file: it is dropped", record.id, kind
            )
            return None
        try:
            append_rejects(path, [(record, _reason(exc))])
        except OSError as disk:
            log.error(
                "usage record %s cannot be stored (%s) nor set aside in %s (%s); it stays queued",
                record.id,
                kind,
                path,
                _reason(disk),
            )
            return disk
        log.error("usage record %s cannot be stored (%s); it is set aside in %s", record.id, kind, path)
        return None

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:  # once per outage, not every round
                    log.error(
                        "writing the usage ledger failed (%s); the records stay queued and are retried every %g s",
                        _reason(exc),
                        self._interval,
                    )
                failing = True
            else:
                if failing:
                    log.info("the usage ledger is written again")
                failing = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()

    async def aclose(self) -> None:
        """Stop the background writer and write what is left; what the store cannot take from
        the memory queue now goes to the spool, if there is one."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception as exc:
            log.error("the usage ledger could not be written at shutdown (%s)", _reason(exc))
            await self._spool_leftovers()
        finally:
            self._writer.shutdown(wait=False)
            await self.queue.aclose()
            if self.spool is not None:
                await asyncio.to_thread(self.spool.close)

    async def _spool_leftovers(self) -> None:
        """Move what the memory queue still holds to the spool (a Redis queue keeps its own)."""
        if not isinstance(self.queue, MemoryQueue) or not len(self.queue):
            return
        if self.spool is None:
            log.error("%d usage records are lost: the store is down and there is no spool", len(self.queue))
            return
        items = await self.queue.take(len(self.queue))
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._writer, self.spool.append, [record for _, record in items]
            )
        except OSError as exc:
            log.error(
                "%d usage records could be neither written nor spooled at shutdown (%s)", len(items), _reason(exc)
            )
            return
        await self.queue.done([receipt for receipt, _ in items])
        log.warning("%d usage records went to the spool %s at shutdown", len(items), self.spool.directory)


__all__ = ["Ledger", "MemoryQueue", "QueueFull", "RecordQueue", "RedisQueue"]
