"""Embedding micro-batching: concurrent ``embed`` calls to one deployment become one upstream call.

A model group with ``embed_batch_ms > 0`` sends its embeddings through the router's
``EmbedBatcher``. The first call for a (provider, model, dimensions, user, extra) opens a
batch and waits up to that many milliseconds for others; the batch goes upstream when the
window ends, or at once when its texts reach the provider's ``max_embed_inputs`` (or the
next caller would take it past ``max_embed_tokens``). The answer is cut back into one
``EmbeddingResponse`` per caller: its own vectors in its order, and a share of the usage and
cost in proportion to its UTF-8 bytes (whole tokens, adding up to the batch's exactly).
Bytes, not characters: a token is never shorter than a byte, so no caller's share
can pass the most its own texts could make, whatever the others sent (four-byte
characters of many tokens each would hand their tokens to the others by characters).

Each caller stays a normal router attempt (its own timeout, retries, failover): the batch
only replaces the provider call. The upstream call runs in a task of its own, so a caller
that leaves (cancelled, timed out) takes nothing from the others; once every caller has
left, the upstream call is cancelled. A failure reaches every caller as its own copy of
the same error (same type, same message).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import fields, replace
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .. import errors
from .._error_copy import own_copy
from ..types import EmbeddingRequest, EmbeddingResponse, Usage

if TYPE_CHECKING:
    from ..providers.base import Provider
    from .groups import ModelGroup

S = TypeVar("S", bound=Callable[..., Awaitable[Any]])
BatchKey = tuple[object, ...]
_USAGE_FIELDS = tuple(f.name for f in fields(Usage))


# ---- the usage split ----------------------------------------------------------------------


def apportion(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` cut into whole shares in proportion to ``weights``, adding up to exactly
    ``total`` (largest remainder, in integers: each share is within one of its exact part).
    When every weight is 0 the shares are equal (as equal as whole numbers go)."""
    if not weights:
        return []
    if sum(weights) <= 0:
        weights = [1] * len(weights)
    mass = sum(weights)
    shares = [total * w // mass for w in weights]
    remainders = [total * w % mass for w in weights]
    left = total - sum(shares)
    for i in sorted(range(len(weights)), key=remainders.__getitem__, reverse=True)[:left]:
        shares[i] += 1
    return shares


def split_usage(usage: Usage, weights: Sequence[int]) -> list[Usage]:
    """Each caller's share of a batch's usage, every count apportioned by ``weights``."""
    columns = [apportion(round(getattr(usage, name)), weights) for name in _USAGE_FIELDS]  # (some count in floats)
    return [Usage(*row) for row in zip(*columns, strict=True)]


def token_bound(texts: Sequence[str]) -> int:
    """An upper bound on the tokens of ``texts``: their UTF-8 bytes, plus one per text.
    Byte-level BPE and byte-fallback tokenizers never make more tokens than bytes; the
    one is for a start-of-text token. Loose for English (about 4 bytes a token), never short."""
    return sum(len(t) if t.isascii() else len(t.encode()) for t in texts) + len(texts)


# ---- a batch -------------------------------------------------------------------------------


class _Caller:
    """One caller's place in a batch: its texts and where its answer goes."""

    __slots__ = ("future", "inputs", "tokens", "weight")

    def __init__(self, inputs: list[str], tokens: int, future: asyncio.Future[EmbeddingResponse]) -> None:
        self.inputs = inputs
        self.tokens = tokens
        self.weight = tokens  # UTF-8 bytes: what the usage is split by (never more than a text can hold)
        self.future = future


class _Batch:
    """Callers gathered for one upstream call, then the call itself (``task``)."""

    __slots__ = (
        "callers", "inputs", "key", "max_inputs", "max_tokens", "owner", "provider", "request", "task", "timer",
        "tokens", "waiting",
    )  # fmt: skip

    def __init__(self, owner: EmbedBatcher, key: BatchKey, provider: Provider, request: EmbeddingRequest) -> None:
        self.owner = owner
        self.key = key
        self.provider = provider
        self.request = request  # the first caller's: model, dimensions, user and extra are the batch's
        self.max_inputs = provider.max_embed_inputs
        self.max_tokens = provider.max_embed_tokens
        self.callers: list[_Caller] = []
        self.inputs = 0
        self.tokens = 0
        self.waiting = 0  # callers that have not left
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None

    def room_for(self, size: int, tokens: int) -> bool:
        if self.inputs + size > self.max_inputs:
            return False
        return self.max_tokens is None or self.tokens + tokens <= self.max_tokens

    @property
    def full(self) -> bool:
        return self.inputs >= self.max_inputs or (self.max_tokens is not None and self.tokens >= self.max_tokens)

    def join(self, inputs: list[str], tokens: int) -> _Caller:
        caller = _Caller(inputs, tokens, asyncio.get_running_loop().create_future())
        caller.future.add_done_callback(partial(self._left, caller))
        self.callers.append(caller)
        self.waiting += 1
        self.inputs += len(inputs)
        self.tokens += tokens
        return caller

    def launch(self) -> None:
        """Send the batch (the window ended or it is full); callers that already left are not sent."""
        if self.task is not None or not self.waiting:
            return
        if self.timer is not None:
            self.timer.cancel()
        self.owner.forget(self)
        self.callers = [c for c in self.callers if not c.future.done()]  # done here: left, not yet counted
        if not self.callers:
            return
        self.task = asyncio.get_running_loop().create_task(self._send(), name="llmrelay-embed-batch")
        self.owner.keep(self.task)

    def _left(self, caller: _Caller, future: asyncio.Future[EmbeddingResponse]) -> None:
        """A caller's answer was given, or it left; once every caller has left, stop."""
        if not future.cancelled():
            return
        self.waiting -= 1
        if self.task is None:  # not sent yet: its texts will not be
            self.inputs -= len(caller.inputs)
            self.tokens -= caller.tokens
        if self.waiting:
            return
        if self.task is not None:
            self.task.cancel()  # nobody waits for the answer any more
            return
        if self.timer is not None:
            self.timer.cancel()
        self.owner.forget(self)

    async def _send(self) -> None:
        callers, provider = self.callers, self.provider
        request = replace(self.request, inputs=[text for c in callers for text in c.inputs])
        try:
            response = await provider.embed(request)
            if len(response.vectors) != len(request.inputs):
                raise errors.ProviderError(
                    f"asked for {len(request.inputs)} embeddings, got {len(response.vectors)}", provider=provider.name
                )
            answers = _answers(response, callers)  # in here: a failure to split reaches every caller too
        except Exception as exc:
            for caller in callers:
                if not caller.future.done():
                    caller.future.set_exception(own_copy(exc))
            return
        except BaseException:  # cancelled (every caller left), or the process is going down
            for caller in callers:
                caller.future.cancel()
            raise
        for caller, answer in zip(callers, answers, strict=True):
            if not caller.future.done():
                caller.future.set_result(answer)


def _answers(response: EmbeddingResponse, callers: Sequence[_Caller]) -> list[EmbeddingResponse]:
    """The batch's answer cut into one per caller: its vectors, its share of usage and cost."""
    weights = [c.weight for c in callers]
    usages = split_usage(response.usage, weights)
    total = response.usage.total_tokens
    mass = sum(weights)
    out: list[EmbeddingResponse] = []
    start = 0
    for caller, usage in zip(callers, usages, strict=True):
        end = start + len(caller.inputs)
        cost = response.cost_usd
        if cost is not None:
            if total:
                cost *= usage.total_tokens / total
            else:
                cost *= caller.weight / mass if mass else 1 / len(callers)
        share = EmbeddingResponse(
            response.vectors[start:end], usage, response.model, response.provider, cost, response.latency_s,
            raw=dict(response.raw),
        )  # fmt: skip
        out.append(share)
        start = end
    return out


# ---- the batcher --------------------------------------------------------------------------


class EmbedBatcher:
    """The open batches of one router, by (event loop, provider, model, dimensions, user, extra)."""

    def __init__(self) -> None:
        self._open: dict[BatchKey, _Batch] = {}
        self._running: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones

    def sender(self, group: ModelGroup, send: S) -> S:
        """``send`` for ``group``: through the batcher when the group batches embeddings."""
        if group.embed_batch_ms <= 0:
            return send
        return cast(S, partial(self.embed, group.embed_batch_ms / 1000))

    async def embed(self, window_s: float, provider: Provider, request: EmbeddingRequest) -> EmbeddingResponse:
        """``provider.embed(request)``, sent together with the calls that come within ``window_s``."""
        size = len(request.inputs)
        tokens = token_bound(request.inputs) if provider.max_embed_tokens is not None else 0
        key = _key(provider, request)
        if key is None or not _batchable(provider, size, tokens):
            return await provider.embed(request)  # at or past the limit alone: nothing to join
        batch = self._open.get(key)
        if batch is not None and not batch.room_for(size, tokens):
            batch.launch()  # no room left: it goes now, a new batch starts with this caller
            batch = None
        if batch is None:
            batch = self._open[key] = _Batch(self, key, provider, request)
            batch.timer = asyncio.get_running_loop().call_later(window_s, batch.launch)
        caller = batch.join(request.inputs, tokens)
        if batch.full:
            batch.launch()
        start = time.perf_counter()
        answer = await caller.future
        answer.latency_s = time.perf_counter() - start  # what this caller waited: window and call
        return answer

    def forget(self, batch: _Batch) -> None:
        if self._open.get(batch.key) is batch:
            del self._open[batch.key]

    def keep(self, task: asyncio.Task[None]) -> None:
        self._running.add(task)
        task.add_done_callback(self._running.discard)


def _batchable(provider: Provider, size: int, tokens: int) -> bool:
    """Whether a request leaves room for another (one at or past a limit goes alone)."""
    if size >= provider.max_embed_inputs:
        return False
    cap = provider.max_embed_tokens
    return cap is None or tokens < cap


def _key(provider: Provider, request: EmbeddingRequest) -> BatchKey | None:
    """What callers must share to go together; ``None`` for ``extra`` that has no stable
    form (not JSON): such a caller goes alone rather than guess."""
    extra: object = ()
    if request.extra:
        try:
            extra = json.dumps(request.extra, sort_keys=True)
        except (TypeError, ValueError):
            return None
    loop = asyncio.get_running_loop()
    return (loop, provider, request.model, request.dimensions, request.user, extra)


__all__ = ["EmbedBatcher", "apportion", "split_usage", "token_bound"]
