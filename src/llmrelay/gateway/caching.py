"""The response cache at the gateway: what a request asks of it (headers) and
what an answer tells about it (headers, metrics, ledger).

Request headers: ``Cache-Control: no-cache`` (do not answer from the cache; the
answer is still stored), ``Cache-Control: no-store`` (do not store the answer),
``x-llmrelay-semantic-cache: true`` (also reuse the answer to a similar earlier
question, where the model group has ``semantic_cache: true``). Entries are
always kept per tenant: a key of tenant A never reads tenant B's.

Answer headers: ``x-llmrelay-cache: hit|miss`` (where the group caches),
``x-llmrelay-coalesced: true`` (shared with an identical request in flight).
An answer that cost nothing upstream (a hit, or a shared one) is recorded in
the ledger with no tokens and no cost, and counted in ``llmrelay_cache``.
"""

from __future__ import annotations

from ..cache import CacheInfo, CacheOptions
from ..types import ChatResponse, Usage
from .exchange import Exchange
from .metrics import RequestFacts

_FREE = Usage(0, 0)
_YES = ("1", "true", "yes", "on")


def options_for(ex: Exchange) -> CacheOptions:
    """The cache options of this request (its headers, its caller's tenant)."""
    control = (ex.header(b"cache-control") or "").lower()
    directives = {d.strip().split("=", 1)[0] for d in control.split(",")}
    semantic = (ex.header(b"x-llmrelay-semantic-cache") or "").strip().lower() in _YES
    return CacheOptions(
        no_cache="no-cache" in directives,
        no_store="no-store" in directives,
        semantic=semantic,
        tenant=ex.caller.tenant_id,
        report=lambda info: announce(ex, info),
    )


def announce(ex: Exchange, info: CacheInfo) -> None:
    """Put the cache's verdict in the answer's headers (before the status line goes), and
    in the request's facts (a stream from the cache that its client leaves costs nothing)."""
    if ex.facts.cache is None:
        ex.facts.cache = _verdict(info)
    ex.headers["x-llmrelay-cache"] = info.status
    if info.coalesced:
        ex.headers["x-llmrelay-coalesced"] = "true"


def note_answer(facts: RequestFacts, response: ChatResponse) -> None:
    """What the metrics and the ledger learn from a chat answer (its upstream time is
    the caller's to note: a JSON answer's latency, or a stream's measured relay time)."""
    facts.answered(response.usage, response.cost_usd, response.route)
    info = response.cache
    if info is None:
        return
    facts.cache = _verdict(info)
    if info.status == "hit":
        facts.deployment = "cache"
    if info.free:
        facts.usage, facts.cost_usd = _FREE, 0.0


def _verdict(info: CacheInfo) -> str:
    if info.status == "hit":
        return "semantic_hit" if info.similarity is not None else "hit"
    return "coalesced" if info.coalesced else "miss"


def created_at(response: ChatResponse, now: float) -> int:
    """The answer's ``created``: when it was first made, for a cached one (so a hit's
    body is the same as the miss's)."""
    return int(response.cache.stored_at) if response.cache is not None else int(now)


__all__ = ["announce", "created_at", "note_answer", "options_for"]
