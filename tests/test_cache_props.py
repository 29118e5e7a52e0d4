"""Properties of the cache's parts: entries read back exactly what was stored,
anything else is a ``CorruptEntry``; the in-memory LRU never passes its byte cap;
keys depend on what changes an answer and on nothing else."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.cache import CorruptEntry, MemoryCache
from llmrelay.cache.entries import decode, encode
from llmrelay.cache.keys import request_key
from llmrelay.types import (
    ChatRequest,
    ChatResponse,
    Finish,
    Message,
    ReasoningDelta,
    Route,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageEvent,
)

text = st.text(max_size=40)
small = st.integers(min_value=0, max_value=10**6)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
usages = st.builds(Usage, small, small, small, small, small)
tool_calls = st.builds(ToolCall, text, text, st.dictionaries(text, json_value, max_size=3), text)
routes = st.none() | st.builds(Route, text, text, text, st.integers(0, 5))
responses = st.builds(
    ChatResponse,
    content=text,
    finish_reason=st.sampled_from(["stop", "length", "tool_calls"]),
    usage=usages,
    model=text,
    provider=text,
    tool_calls=st.lists(tool_calls, max_size=2),
    id=text,
    refusal=st.none() | text,
    reasoning=st.none() | text,
    native_finish_reason=st.none() | text,
    cost_usd=st.none() | st.floats(0, 10, allow_nan=False),
    latency_s=st.floats(0, 100, allow_nan=False),
    route=routes,
    raw=st.dictionaries(text, json_value, max_size=3),
)
events = st.lists(
    st.one_of(
        st.builds(TextDelta, text),
        st.builds(ReasoningDelta, text, st.none() | text),
        st.builds(ToolCallDelta, st.integers(0, 3), st.none() | text, st.none() | text, text),
        st.builds(UsageEvent, usages),
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(responses, st.floats(0, 2e9, allow_nan=False), st.none() | events)
def test_an_entry_reads_back_exactly(response: ChatResponse, at: float, given_events: list[StreamEvent] | None) -> None:
    stream = None if given_events is None else [*given_events, Finish(response.finish_reason, response)]
    back, stored_at, back_events = decode(encode(response, at, stream))
    assert back == response and stored_at == at
    if stream is None:
        assert back_events is None
    else:
        assert back_events is not None and back_events[:-1] == stream[:-1]
        last = back_events[-1]
        assert isinstance(last, Finish) and last.reason == response.finish_reason and last.response is back


@settings(max_examples=200, deadline=None)
@given(responses, st.integers(1, 200))
def test_a_damaged_entry_never_decodes_into_something_else(response: ChatResponse, cut: int) -> None:
    data = encode(response, 1.0)
    damaged = data[: max(len(data) - cut, 0)]
    try:
        back, _, _ = decode(damaged)
    except CorruptEntry:
        return
    assert back == response  # only a cut that left it whole may decode (never the case for JSON objects)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.binary(max_size=300)), max_size=60), st.integers(50, 2000))
def test_the_memory_cache_stays_under_its_byte_cap(writes: list[tuple[int, bytes]], cap: int) -> None:
    async def run() -> None:
        cache = MemoryCache(cap)
        for key, value in writes:
            name = f"k{key}"
            await cache.set(name, value, 60)
            assert cache.bytes <= cap
            if len(name) + len(value) <= cap:  # what was just written fits, so it is kept
                assert await cache.get(name) == value
            assert cache.bytes == sum(len(k) + len(v) for k, (_, v) in cache._entries.items())

    asyncio.run(run())


def _request(**changes: Any) -> ChatRequest:
    base: dict[str, Any] = {"model": "", "messages": [Message("user", "hi")], "temperature": 0.5}
    return ChatRequest(**{**base, **changes})


def test_keys_follow_what_changes_the_answer() -> None:
    key = request_key("chat", "g", _request(), None)
    assert key == request_key("chat", "g", _request(user="someone-else"), None)  # user: not part of it
    assert key == request_key("chat", "g", _request(model="other-name"), None)  # the group decides, not the name
    for different in (
        request_key("stream", "g", _request(), None),
        request_key("chat", "h", _request(), None),
        request_key("chat", "g", _request(), "tenant"),
        request_key("chat", "g", _request(temperature=0.6), None),
        request_key("chat", "g", _request(messages=[Message("user", "hi!")]), None),
        request_key("chat", "g", _request(messages=[Message("system", "hi")]), None),
        request_key("chat", "g", _request(extra={"logprobs": True}), None),
        request_key("chat", "g", _request(max_tokens=5), None),
    ):
        assert different != key
