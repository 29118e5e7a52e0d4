"""Property: whatever the deployments do, a routed call answers with one
deployment's whole text or fails with an ``LLMError``; a stream never shows text
from two deployments or repeats any; attempts stay within the retry budget."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmrelay import AsyncClient, errors
from llmrelay.router import AttemptRecord, ModelGroup, RoutingSettings
from llmrelay.testing import FakeProvider, Reply
from llmrelay.types import Finish, TextDelta

NAMES = ("d0", "d1", "d2")
RETRIES = 2


def text_of(name: str) -> str:
    return f"{name} says one two three four"


FAULTS = [
    lambda: errors.ProviderError("500", status_code=500),
    lambda: errors.RateLimited("429", retry_after=0.001),
    lambda: errors.Timeout("slow"),
    lambda: errors.ConnectionError("reset"),
    lambda: errors.Overloaded("529"),
    lambda: errors.ContentFiltered("filtered"),
    lambda: errors.InvalidRequest("bad input"),
]

# a reply: ("ok",) or (fault index, pieces shown before it breaks: None = at once)
reply_spec = st.one_of(
    st.just(("ok", None)),
    st.tuples(st.integers(0, len(FAULTS) - 1), st.one_of(st.none(), st.integers(0, 3))),
)
scripts = st.lists(st.lists(reply_spec, min_size=1, max_size=6), min_size=3, max_size=3)


def build(name: str, script: list[tuple[object, int | None]]) -> FakeProvider:
    replies = []
    for kind, after in script:
        if kind == "ok":
            replies.append(Reply(text_of(name)))
        else:
            assert isinstance(kind, int)
            replies.append(Reply(text_of(name), error=FAULTS[kind](), error_after=after))
    replies.append(Reply(text_of(name)))  # once the script is spent, it answers
    return FakeProvider(name, replies)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scripts=scripts, streams=st.lists(st.booleans(), min_size=4, max_size=4), seed=st.integers(0, 1000))
def test_routed_calls_answer_whole_or_fail_cleanly(
    scripts: list[list[tuple[object, int | None]]], streams: list[bool], seed: int
) -> None:
    asyncio.run(_run(scripts, streams, seed))


async def _run(scripts: list[list[tuple[object, int | None]]], streams: list[bool], seed: int) -> None:
    providers = [build(name, script) for name, script in zip(NAMES, scripts, strict=True)]
    records: list[AttemptRecord] = []
    routing = RoutingSettings(
        strategy="random", retries=RETRIES, backoff_s=0.0, backoff_max_s=0.0, cooldown_s=0.001, deadline_s=10, seed=seed
    )
    group = ModelGroup("g", [f"{n}/m" for n in NAMES])
    async with AsyncClient(env={}, providers=providers, models=[group], routing=routing, hooks=[records.append]) as c:
        for stream in streams:
            before = len(records)
            try:
                if stream:
                    shown = ""
                    final = None
                    try:
                        async for event in c.stream("g", "hi"):
                            if isinstance(event, TextDelta):
                                shown += event.text
                            elif isinstance(event, Finish):
                                final = event.response
                    except errors.StreamInterrupted as exc:
                        assert shown and any(text_of(n).startswith(shown) for n in NAMES), shown
                        assert exc.partial is not None and exc.partial.content == shown
                        assert records[-1].outcome == "interrupted"
                        continue
                    assert final is not None and shown == final.content
                    answer = final
                else:
                    answer = await c.chat("g", "hi")
                assert answer.route is not None
                assert answer.content == text_of(answer.provider) and answer.route.deployment == f"{answer.provider}/m"
            except errors.LLMError as exc:
                assert not isinstance(exc, errors.StreamInterrupted)
                if isinstance(exc, errors.InvalidRequest) and not isinstance(exc, errors.ContentFiltered):
                    assert records[-1].error == "InvalidRequest"  # the request's own fault: nothing after it
            made = [r for r in records[before:] if r.outcome != "cancelled"]
            assert 1 <= len(made) <= (RETRIES + 1) + len(NAMES)  # retries, plus skips that are not retries
