"""A state backend that is down or silent fails fast and says so, and works again once it answers.

Real sockets on 127.0.0.1 only: a port where nothing listens, a "silent Redis"
(a server that accepts and reads but never answers) and a relay in front of the
test Redis (``redis_url``; skipped, saying why, when none answers) that the
tests cut and start again on the same port. Every wait is bounded."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import pytest

from llmrelay.errors import StateUnavailable
from llmrelay.state.redis import RedisState
from test_state_contract import wipe

pytest.importorskip("redis", reason="the redis package is not installed")

Operation = Callable[[], Awaitable[object]]


def operations(state: RedisState) -> dict[str, Operation]:
    """One call of every ``RedisState`` operation that talks to Redis."""
    return {
        "ping": state.ping,
        "get": lambda: state.get("v"),
        "set": lambda: state.set("v", "x", ttl_s=60),
        "delete": lambda: state.delete("v"),
        "compare_and_set": lambda: state.compare_and_set("v", None, "y"),
        "incr": lambda: state.incr("c", 1, ttl_s=60),
        "counter": lambda: state.counter("c"),
        "reserve": lambda: state.reserve("c", 1, cap=100),
        "settle": lambda: state.settle("c", 1, 2),
        "seed": lambda: state.seed("c", 5, ttl_s=60),
        "seeded": lambda: state.seeded("c"),
        "window_acquire": lambda: state.window_acquire("w", time.time(), 60, (10,), (1,)),
        "window_adjust": lambda: state.window_adjust("w", time.time(), (1,)),
        "slot_acquire": lambda: state.slot_acquire("s", "a", 3, 60),
        "slot_release": lambda: state.slot_release("s", "a"),
        "slots_held": lambda: state.slots_held("s"),
    }


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, read and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def fails_fast(op: Operation, within_s: float) -> StateUnavailable:
    """Run ``op``, which must raise ``StateUnavailable`` within ``within_s`` seconds."""
    start = time.monotonic()
    with pytest.raises(StateUnavailable) as caught:
        await asyncio.wait_for(op(), timeout=10)  # a hang fails the test instead of stalling it
    elapsed = time.monotonic() - start
    assert elapsed < within_s, f"took {elapsed:.2f}s"
    return caught.value


class Connections:
    """The writers of a test server's connections, so the test can close every one."""

    def __init__(self) -> None:
        self.writers: set[asyncio.StreamWriter] = set()

    async def close_all(self) -> None:
        writers, self.writers = self.writers, set()
        for writer in writers:
            writer.close()
        for writer in writers:
            try:
                await asyncio.wait_for(writer.wait_closed(), timeout=2)
            except (TimeoutError, OSError):
                pass


class SilentRedis:
    """Accepts connections and reads everything sent, but never answers."""

    def __init__(self) -> None:
        self.connections = Connections()
        self.accepted = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.connections.writers.add(writer)
        try:
            while await reader.read(65536):
                pass
        except OSError:
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.connections.close_all()
            await self.server.wait_closed()


class Relay:
    """A TCP relay on 127.0.0.1 in front of a real server; ``cut`` closes the
    listener and every relayed connection, ``start`` listens again on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.connections = Connections()
        self.pipes: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def serving(self) -> bool:
        return self.server is not None and self.server.is_serving()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections.writers.add(client_writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        self.connections.writers.add(upstream_writer)
        if not self.serving:  # cut while this connection was being made
            client_writer.close()
            upstream_writer.close()
            return
        for reader, writer in ((client_reader, upstream_writer), (upstream_reader, client_writer)):
            task = asyncio.create_task(self._pipe(reader, writer, client_writer, upstream_writer))
            self.pipes.add(task)
            task.add_done_callback(self.pipes.discard)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *both: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:  # one side is gone: so is the relayed connection
            for end in both:
                end.close()

    async def cut(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.connections.close_all()
            pipes = list(self.pipes)
            for task in pipes:
                task.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)
            await self.server.wait_closed()
            self.server = None


@pytest.fixture
async def silent() -> AsyncIterator[SilentRedis]:
    server = SilentRedis()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def relay(redis_url: str) -> AsyncIterator[Relay]:
    target = urlsplit(redis_url)
    server = Relay(target.hostname or "127.0.0.1", target.port or 6379)
    await server.start()
    try:
        yield server
    finally:
        await server.cut()


def relayed_url(redis_url: str, port: int) -> str:
    """``redis_url`` (its credentials and database kept) pointed at the relay's port."""
    target = urlsplit(redis_url)
    netloc = target.netloc.rsplit("@", 1)[0] + "@" if "@" in target.netloc else ""
    return target._replace(netloc=f"{netloc}127.0.0.1:{port}").geturl()


# ---------------------------------------------------------------- nothing listens


async def test_a_port_where_nothing_listens_fails_fast_naming_the_server() -> None:
    port = free_port()
    state = RedisState(f"redis://:sekrit@127.0.0.1:{port}/0", timeout_s=0.3)
    try:
        for name, op in operations(state).items():
            error = await fails_fast(op, within_s=1.0)
            assert f"Redis at 127.0.0.1:{port}" in error.message and f"({name})" in error.message
            assert "could not be reached" in error.message and "sekrit" not in str(error)
            assert error.retryable and error.status_code == 503 and error.code == "state_unavailable"
    finally:
        await state.aclose()


# ---------------------------------------------------------------- a silent Redis


async def test_a_silent_redis_fails_every_operation_within_the_timeout(silent: SilentRedis) -> None:
    state = RedisState(f"redis://127.0.0.1:{silent.port}/0", timeout_s=0.3)
    try:
        for name, op in operations(state).items():
            error = await fails_fast(op, within_s=1.5)
            where = f"Redis at 127.0.0.1:{silent.port}"
            assert error.message == f"the state backend ({where}) did not answer within 0.3s ({name})"
    finally:
        await state.aclose()
    assert silent.accepted >= 1  # it did connect: the silence is what timed out


async def test_callers_waiting_for_a_pool_connection_fail_fast_too(silent: SilentRedis) -> None:
    state = RedisState(f"redis://127.0.0.1:{silent.port}/0", timeout_s=0.3, max_connections=2)
    try:
        start = time.monotonic()
        results = await asyncio.wait_for(
            asyncio.gather(*(state.incr("c") for _ in range(40)), return_exceptions=True), timeout=20
        )
        elapsed = time.monotonic() - start
    finally:
        await state.aclose()
    assert all(isinstance(r, StateUnavailable) for r in results), results
    assert elapsed < 3.0, f"took {elapsed:.2f}s"  # in turn, 2 at a time, 40 x 0.3 s would be 6 s


# ---------------------------------------------------------------- Redis goes away and comes back


async def test_the_same_state_works_again_once_redis_answers(redis_url: str, relay: Relay) -> None:
    prefix = f"llmrelay-test:{uuid.uuid4().hex}:"
    state = RedisState(relayed_url(redis_url, relay.port), prefix=prefix, timeout_s=0.3)
    try:
        first = await asyncio.gather(*(state.incr("c") for _ in range(10)))  # several pooled connections
        assert sorted(first) == [float(n) for n in range(1, 11)]
        await relay.cut()
        for op in operations(state).values():
            await fails_fast(op, within_s=1.5)
        await relay.start()  # the same port again
        assert sorted(await asyncio.gather(*(state.incr("c") for _ in range(10)))) == [float(n) for n in range(11, 21)]
        for op in operations(state).values():  # each raises StateUnavailable if it still cannot get through
            await asyncio.wait_for(op(), timeout=5)
        assert await state.ping()
    finally:
        await state.aclose()
        wipe(prefix)


async def test_a_cut_in_the_middle_of_concurrent_work_leaves_nothing_broken(redis_url: str, relay: Relay) -> None:
    prefix = f"llmrelay-test:{uuid.uuid4().hex}:"
    state = RedisState(relayed_url(redis_url, relay.port), prefix=prefix, timeout_s=0.3)
    outcomes: list[object] = []
    stop = asyncio.Event()

    async def keep_counting() -> None:
        for _ in range(2000):  # bounded, however long the test runs
            if stop.is_set():
                return
            try:
                outcomes.append(await state.incr("c"))
            except StateUnavailable as exc:
                outcomes.append(exc)
                await asyncio.sleep(0.01)

    def failures() -> int:
        return sum(isinstance(o, StateUnavailable) for o in outcomes)

    async def until(count: Callable[[], int], target: int) -> None:
        for _ in range(500):
            if count() >= target:
                return
            await asyncio.sleep(0.01)
        pytest.fail("the workers made no progress in 5 s")

    workers = [asyncio.create_task(keep_counting()) for _ in range(8)]
    try:
        for _ in range(3):  # cut and restore a few times, with work in flight each time
            await until(outcomes.__len__, len(outcomes) + 20)
            await relay.cut()
            await until(failures, failures() + 8)
            await relay.start()
        stop.set()
        await asyncio.wait_for(asyncio.gather(*workers), timeout=10)
        assert all(isinstance(o, (float, StateUnavailable)) for o in outcomes), {type(o) for o in outcomes}
        assert any(isinstance(o, float) for o in outcomes) and any(isinstance(o, StateUnavailable) for o in outcomes)
        before = await state.counter("c")
        await asyncio.gather(*(state.incr("c") for _ in range(20)))
        assert await state.counter("c") == before + 20
    finally:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await state.aclose()
        wipe(prefix)


async def test_redis_errors_that_are_bugs_are_not_outages(redis_url: str) -> None:
    from redis.exceptions import ResponseError

    prefix = f"llmrelay-test:{uuid.uuid4().hex}:"
    state = RedisState(redis_url, prefix=prefix, timeout_s=0.3)
    try:
        await state.set("v", "x")
        with pytest.raises(ResponseError, match="WRONGTYPE"):  # a value key used as slots: a bug, not an outage
            await state.slot_acquire("v", "a", 1, 60)
    finally:
        await state.aclose()
        wipe(prefix)
