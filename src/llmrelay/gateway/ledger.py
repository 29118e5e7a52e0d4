"""The usage ledger: one record per model request, written to the store off the
hot path, in batches.

A handler hands its record to a queue before the last byte of its answer goes
out; a background task moves records from the queue to the store in batches
(``batch`` records, or whatever ``interval_s`` has gathered). Queues:

- ``MemoryQueue`` (no Redis): records wait in this process; a clean shutdown
  writes them all, a crash loses the ones not written yet (at most
  ``interval_s`` of traffic).
- ``RedisQueue`` (``state: {backend: redis}``): a Redis stream with a consumer
  group. A record is in Redis before its response completes, so a SIGKILL of
  the gateway loses nothing: the records a dead process had read but not
  written are claimed by a live one (or by the next start) after
  ``claim_idle_s``. Writes are idempotent (records carry unique ids), so a
  record written twice is stored once.
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
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from ..store.records import UsageRecord
from ..store.store import Store

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


class MemoryQueue:
    def __init__(self) -> None:
        self._records: list[UsageRecord] = []
        self._taken: dict[str, UsageRecord] = {}

    async def put(self, record: UsageRecord) -> None:
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
        await self._redis.xadd(self.stream, {"r": orjson.dumps(record.to_json())})

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
            out.append((receipt, UsageRecord.from_json(orjson.loads(raw))))
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


class Ledger:
    """Records in, batches out to the store, in the background."""

    def __init__(self, store: Store, queue: RecordQueue, *, batch: int = 500, interval_s: float = 0.5) -> None:
        self.store = store
        self.queue = queue
        self._batch = batch
        self._interval = interval_s
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # one thread of its own: writes never wait behind other work, and one thread's
        # allocations stay in one malloc arena
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmrelay-ledger")
        self.written = 0

    async def record(self, record: UsageRecord) -> None:
        await self.queue.put(record)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="llmrelay-ledger")

    async def flush(self) -> int:
        """Write everything queued now; returns the records written."""
        total = 0
        while True:
            items = await self.queue.take(self._batch)
            if not items:
                return total
            records = [record for _, record in items]
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._writer, self.store.add_usage, records)
            await self.queue.done([receipt for receipt, _ in items])
            total += len(items)
            self.written += len(items)
            if len(items) < self._batch:
                return total

    async def _run(self) -> None:
        while True:
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("writing the usage ledger failed; the records stay queued and are retried")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()

    async def aclose(self) -> None:
        """Stop the background writer and write what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception:
            log.exception("the usage ledger could not be written at shutdown")
        self._writer.shutdown(wait=False)
        await self.queue.aclose()


__all__ = ["Ledger", "MemoryQueue", "RecordQueue", "RedisQueue"]
