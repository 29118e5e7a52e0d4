"""``RedisState``: the ``StateBackend`` shared by every process and machine that
points at one Redis (``state: {backend: redis, url: redis://...}``).

Each operation is one Redis command or one Lua script, so it is atomic across
every client of the server: limits, reservations and breaker transitions stay
exact however many gateway processes share them. Keys live under ``prefix``;
a window's two keys share a hash tag, so they stay together on a cluster.

Layout for a logical key ``K``: values and counters are the string ``{prefix}K``;
a sliding window is a sorted set ``{prefix}{K}:w`` (entry id -> timestamp) and a
hash ``{prefix}{K}:h`` (``e:<id>`` -> the entry's costs, ``t:<d>`` -> running
total of dimension ``d``, ``win`` -> window length, ``seq`` -> last id). A
seeded counter's marker is the string ``{prefix}K:seeded``. Concurrency slots
are a sorted set ``{prefix}K`` (slot id -> end of its lease in milliseconds on
the Redis server's clock, read with ``TIME`` inside the script, so processes
with skewed clocks agree), expiring with its longest lease. Lua turns
non-integer numbers into integers on the way out, so scripts return numbers as
strings.

An outage fails fast and says so: connecting, and every answer, is bounded by
``timeout_s``, and failing to reach Redis or to hear back in time raises
``StateUnavailable`` naming the server (never the URL's password); other Redis
errors (a script error, ``WRONGTYPE``) are bugs and pass through. A broken
connection is dropped, and the pool checks the ones it hands out, so the same
``RedisState`` works again as soon as Redis answers.

Unlike ``MemoryState``, values and counters share a type in Redis, so using a
key in both families is not detected. Uses ``redis`` (redis-py) ``asyncio``;
one ``RedisState`` per event loop, like ``AsyncClient``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from .. import errors
from .base import WindowResult

if TYPE_CHECKING:
    from redis.asyncio import Redis

_EPS = 1e-9

_CAS = """
local cur = redis.call('GET', KEYS[1])
if ARGV[2] == '1' then
  if cur ~= ARGV[1] then return 0 end
elseif cur then
  return 0
end
if ARGV[4] == '1' then
  if ARGV[5] ~= '' then redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[5]) else redis.call('SET', KEYS[1], ARGV[3]) end
else
  redis.call('DEL', KEYS[1])
end
return 1
"""

_INCR = """
local existed = redis.call('EXISTS', KEYS[1])
local total = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
if existed == 0 and ARGV[2] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return total
"""

_RESERVE = """
local cur = redis.call('GET', KEYS[1])
local total = (tonumber(cur) or 0) + tonumber(ARGV[1])
if total > tonumber(ARGV[2]) then return 0 end
redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
if not cur and ARGV[3] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
"""

_SEED = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local existed = redis.call('EXISTS', KEYS[1])
redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then
  if existed == 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
else
  redis.call('SET', KEYS[2], '1')
end
return 1
"""

# Concurrency slots: KEYS[1] = sorted set of slot id -> lease end (ms, server clock).
_SERVER_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_SLOT_ACQUIRE = (
    _SERVER_MS
    + """
local slot, limit, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local others = redis.call('ZCARD', KEYS[1])
if redis.call('ZSCORE', KEYS[1], slot) then others = others - 1 end
if others >= limit then return 0 end
redis.call('ZADD', KEYS[1], now + lease, slot)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], tonumber(last[2]) - now)
return 1
"""
)

_SLOTS_HELD = (
    _SERVER_MS
    + """
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""
)

_SETTLE = """
local cur = redis.call('GET', KEYS[1])
if not cur then return '0' end
local total = tonumber(cur) + tonumber(ARGV[2]) - tonumber(ARGV[1])
if total < 0 then total = 0 end
local text = string.format('%.17g', total)
redis.call('SET', KEYS[1], text, 'KEEPTTL')
return text
"""

# Shared by the two window scripts: KEYS[1] = sorted set, KEYS[2] = hash.
_WINDOW_LIB = """
local z, h = KEYS[1], KEYS[2]
local function split(text)
  local out = {}
  for v in string.gmatch(text, '[^,]+') do out[#out + 1] = tonumber(v) end
  return out
end
local function join(parts)
  local out = {}
  for i = 1, #parts do out[i] = string.format('%.17g', parts[i]) end
  return table.concat(out, ',')
end
local function purge(horizon)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', horizon)
  if #gone == 0 then return end
  for _, id in ipairs(gone) do
    local c = redis.call('HGET', h, 'e:' .. id)
    if c then
      for d, v in ipairs(split(c)) do redis.call('HINCRBYFLOAT', h, 't:' .. d, -v) end
      redis.call('HDEL', h, 'e:' .. id)
    end
  end
  redis.call('ZREMRANGEBYSCORE', z, '-inf', horizon)
  if redis.call('ZCARD', z) == 0 then redis.call('DEL', z, h) end
end
local function totals(n)
  local out = {}
  for d = 1, n do out[d] = tonumber(redis.call('HGET', h, 't:' .. d) or '0') end
  return out
end
local function add(now, win, costs)
  local id = redis.call('HINCRBY', h, 'seq', 1)
  redis.call('ZADD', z, now, id)
  redis.call('HSET', h, 'e:' .. id, join(costs), 'win', string.format('%.17g', win))
  for d = 1, #costs do redis.call('HINCRBYFLOAT', h, 't:' .. d, costs[d]) end
  local ms = math.ceil(win * 1000)
  redis.call('PEXPIRE', z, ms)
  redis.call('PEXPIRE', h, ms)
  return tostring(id)
end
local function reset_s(now, win)
  local last = redis.call('ZRANGE', z, -1, -1, 'WITHSCORES')
  if #last == 0 then return 0 end
  return math.max(tonumber(last[2]) + win - now, 0)
end
"""

_ACQUIRE = (
    _WINDOW_LIB
    + """
local now, win, reserve, n = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1', tonumber(ARGV[4])
local limits, costs = {}, {}
for d = 1, n do
  limits[d] = tonumber(ARGV[4 + d])
  costs[d] = tonumber(ARGV[4 + n + d])
end
purge(now - win)
local used = totals(n)
local wait = 0
local fits = true
for d = 1, n do
  if limits[d] >= 0 and used[d] + costs[d] > limits[d] + 1e-9 then fits = false end
end
local function answer(allowed, waiting, entry)
  local out = {allowed, string.format('%.17g', waiting), string.format('%.17g', reset_s(now, win)), entry}
  for d = 1, n do out[#out + 1] = string.format('%.17g', used[d]) end
  return out
end
if not fits then
  local entries = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
  for d = 1, n do
    local excess = used[d] + costs[d] - limits[d]
    if limits[d] >= 0 and excess > 1e-9 then
      if costs[d] > limits[d] then return answer('0', -1, '') end
      local freed, until_ts = 0, now - win
      if #entries > 0 then until_ts = tonumber(entries[#entries]) end
      for k = 1, #entries, 2 do
        freed = freed + split(redis.call('HGET', h, 'e:' .. entries[k]))[d]
        if freed >= excess then until_ts = tonumber(entries[k + 1]) break end
      end
      wait = math.max(wait, until_ts + win - now)
    end
  end
  return answer('0', math.max(wait, 0), '')
end
local entry = ''
local any = false
for d = 1, n do if costs[d] > 0 then any = true end end
if reserve and any then
  entry = add(now, win, costs)
  used = totals(n)
end
return answer('1', 0, entry)
"""
)

_ADJUST = (
    _WINDOW_LIB
    + """
local now, n, entry = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local deltas = {}
for d = 1, n do deltas[d] = tonumber(ARGV[3 + d]) end
local win = tonumber(redis.call('HGET', h, 'win') or '')
if not win then return 0 end
purge(now - win)
local function change(id, d, delta)
  local parts = split(redis.call('HGET', h, 'e:' .. id))
  local new = math.max(parts[d] + delta, 0)
  local applied = new - parts[d]
  parts[d] = new
  redis.call('HSET', h, 'e:' .. id, join(parts))
  redis.call('HINCRBYFLOAT', h, 't:' .. d, applied)
  return applied
end
if entry ~= '' then
  if redis.call('HEXISTS', h, 'e:' .. entry) == 1 then
    for d = 1, n do change(entry, d, deltas[d]) end
  end
  return 1
end
local ids = redis.call('ZREVRANGE', z, 0, -1)
for d = 1, n do
  local owed = -deltas[d]
  for _, id in ipairs(ids) do
    if owed <= 0 then break end
    owed = owed + change(id, d, -owed)
  end
end
local extra, any = {}, false
for d = 1, n do
  extra[d] = math.max(deltas[d], 0)
  if extra[d] > 0 then any = true end
end
if any then add(now, win, extra) end
return 1
"""
)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _guarded(
    op: Callable[Concatenate[RedisState, _P], Coroutine[Any, Any, _R]],
) -> Callable[Concatenate[RedisState, _P], Coroutine[Any, Any, _R]]:
    """Make ``op`` raise ``StateUnavailable`` when Redis cannot be reached or does not answer in time."""

    @functools.wraps(op)
    async def guarded(self: RedisState, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await op(self, *args, **kwargs)
        except self._outages as exc:
            raise self._unavailable(op.__name__, exc) from exc

    return guarded


def _where(client: Redis) -> str:
    """The server a client talks to (``host:port`` or socket path), without credentials."""
    kwargs: dict[str, Any] = client.connection_pool.connection_kwargs
    if kwargs.get("path"):
        return str(kwargs["path"])
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


def _ms(ttl_s: float | None) -> str:
    return "" if ttl_s is None else str(max(math.ceil(ttl_s * 1000), 1))


def _num(value: float) -> str:
    return repr(float(value))


class RedisState:
    """A ``StateBackend`` on Redis; see ``StateBackend`` for each operation's contract."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "llmrelay:",
        max_connections: int = 64,
        timeout_s: float = 2.0,
        client: Redis | None = None,
    ) -> None:
        """``timeout_s`` bounds connecting and each answer. ``max_connections``
        bounds the pool; callers beyond it wait for a free connection (up to
        ``timeout_s``, but at least 1 s and at most 5 s) instead of failing at
        once. A ``client`` given is used as it is (its own timeouts)."""
        try:
            from redis import exceptions as redis_errors
            from redis.asyncio import BlockingConnectionPool, Redis
        except ImportError:  # pragma: no cover - depends on the install
            from .._install import install_hint

            raise errors.ConfigError(
                f"the redis state backend needs the redis package: {install_hint('redis')}"
            ) from None
        if client is None:
            pool = BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=min(max(timeout_s, 1.0), 5.0),
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                decode_responses=True,
            )
            client = Redis(connection_pool=pool)
        self._redis: Redis = client
        self._prefix = prefix
        self._where = _where(client)
        # asyncio.TimeoutError is the builtin TimeoutError (an OSError) since Python 3.11
        self._timeouts: tuple[type[BaseException], ...] = (redis_errors.TimeoutError, TimeoutError)
        self._outages = (*self._timeouts, redis_errors.ConnectionError, OSError)
        self._cas = self._redis.register_script(_CAS)
        self._incr = self._redis.register_script(_INCR)
        self._reserve = self._redis.register_script(_RESERVE)
        self._settle = self._redis.register_script(_SETTLE)
        self._seed = self._redis.register_script(_SEED)
        self._slot_acquire = self._redis.register_script(_SLOT_ACQUIRE)
        self._slots_held = self._redis.register_script(_SLOTS_HELD)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._adjust = self._redis.register_script(_ADJUST)

    def _key(self, key: str) -> str:
        return self._prefix + key

    def _unavailable(self, op: str, exc: BaseException) -> errors.StateUnavailable:
        """The error for an outage met by ``op``: which server, and whether it was silent or unreachable."""
        where = f"the state backend (Redis at {self._where})"
        if isinstance(exc, self._timeouts):
            timeout = self._redis.connection_pool.connection_kwargs.get("socket_timeout")
            within = "in time" if timeout is None else f"within {timeout:g}s"
            return errors.StateUnavailable(f"{where} did not answer {within} ({op})")
        return errors.StateUnavailable(f"{where} could not be reached ({op}): {exc or type(exc).__name__}")

    def _window_keys(self, key: str) -> list[str]:
        tagged = f"{self._prefix}{{{key}}}"
        return [tagged + ":w", tagged + ":h"]

    @_guarded
    async def ping(self) -> bool:
        """Whether the server answers (for readiness checks)."""
        return bool(await self._redis.ping())

    # -- values -------------------------------------------------------------------------------

    @_guarded
    async def get(self, key: str) -> str | None:
        value: Any = await self._redis.get(self._key(key))
        return None if value is None else str(value)

    @_guarded
    async def set(self, key: str, value: str, ttl_s: float | None = None) -> None:
        ms = _ms(ttl_s)
        await self._redis.set(self._key(key), value, px=int(ms) if ms else None)

    @_guarded
    async def delete(self, key: str) -> None:
        await self._redis.delete(self._key(key), *self._window_keys(key))

    @_guarded
    async def compare_and_set(
        self, key: str, expected: str | None, value: str | None, ttl_s: float | None = None
    ) -> bool:
        args = [expected or "", "1" if expected is not None else "0", value or "", "1" if value is not None else "0"]
        return bool(await self._cas(keys=[self._key(key)], args=[*args, _ms(ttl_s)]))

    # -- counters -----------------------------------------------------------------------------

    @_guarded
    async def incr(self, key: str, amount: float = 1.0, ttl_s: float | None = None) -> float:
        return float(await self._incr(keys=[self._key(key)], args=[_num(amount), _ms(ttl_s)]))

    @_guarded
    async def counter(self, key: str) -> float:
        value: Any = await self._redis.get(self._key(key))
        return 0.0 if value is None else float(value)

    @_guarded
    async def reserve(self, key: str, amount: float, cap: float, ttl_s: float | None = None) -> bool:
        if amount < 0:
            raise ValueError("a reservation cannot be negative")
        return bool(await self._reserve(keys=[self._key(key)], args=[_num(amount), _num(cap), _ms(ttl_s)]))

    @_guarded
    async def settle(self, key: str, reserved: float, actual: float) -> float:
        return float(await self._settle(keys=[self._key(key)], args=[_num(reserved), _num(actual)]))

    @_guarded
    async def seed(self, key: str, amount: float, ttl_s: float | None = None) -> bool:
        keys = [self._key(key), self._key(key + ":seeded")]
        return bool(await self._seed(keys=keys, args=[_num(amount), _ms(ttl_s)]))

    @_guarded
    async def seeded(self, key: str) -> bool:
        return bool(await self._redis.exists(self._key(key + ":seeded")))

    # -- sliding windows ----------------------------------------------------------------------

    @_guarded
    async def window_acquire(
        self,
        key: str,
        now: float,
        window_s: float,
        limits: Sequence[float],
        costs: Sequence[float],
        *,
        reserve: bool = True,
    ) -> WindowResult:
        if len(limits) != len(costs) or any(c < 0 for c in costs):
            raise ValueError("window costs must be non-negative, one per limit")
        caps = ["-1" if math.isinf(limit) else _num(limit) for limit in limits]
        args = [_num(now), _num(window_s), "1" if reserve else "0", str(len(limits)), *caps, *map(_num, costs)]
        out = await self._acquire(keys=self._window_keys(key), args=args)
        allowed, wait, reset, entry, *used = (str(v) for v in out)
        retry_after = math.inf if float(wait) < 0 else float(wait)
        return WindowResult(
            allowed == "1", tuple(max(float(u), 0.0) for u in used), retry_after, float(reset), entry or None
        )

    @_guarded
    async def window_adjust(self, key: str, now: float, deltas: Sequence[float], *, entry: str | None = None) -> None:
        args = [_num(now), str(len(deltas)), entry or "", *map(_num, deltas)]
        await self._adjust(keys=self._window_keys(key), args=args)

    # -- concurrency slots --------------------------------------------------------------------

    @_guarded
    async def slot_acquire(self, key: str, slot: str, limit: int, ttl_s: float) -> bool:
        if ttl_s <= 0:
            raise ValueError("a slot's lease must be positive")
        return bool(await self._slot_acquire(keys=[self._key(key)], args=[slot, str(int(limit)), _ms(ttl_s)]))

    @_guarded
    async def slot_release(self, key: str, slot: str) -> None:
        await self._redis.zrem(self._key(key), slot)

    @_guarded
    async def slots_held(self, key: str) -> int:
        return int(await self._slots_held(keys=[self._key(key)]))

    @property
    def redis(self) -> Redis:
        """The client, for features built on other Redis types (the ledger's stream)."""
        return self._redis

    @property
    def prefix(self) -> str:
        return self._prefix

    async def aclose(self) -> None:
        await self._redis.aclose()


__all__ = ["RedisState"]
