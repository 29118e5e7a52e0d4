"""``Client`` and ``AsyncClient`` show the same API: the same public methods, each
with the same parameters (names, kinds, defaults, annotations); only the return
type differs by the sync/async wrapping. Annotations are compared as written
(both modules use ``from __future__ import annotations``)."""

from __future__ import annotations

import asyncio
import inspect
import re
from typing import Any, get_type_hints

import pytest

from llmrelay.client import AsyncClient, ChatParams, GenerationParams
from llmrelay.client_sync import Client

RENAMED = {"aclose": "close"}
"""Async name -> sync name, where the two differ."""


def methods(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_") and callable(getattr(cls, name))}


def properties(cls: type) -> set[str]:
    return {name for name in dir(cls) if isinstance(getattr(cls, name), property)}


ASYNC_METHODS = sorted(methods(AsyncClient))


def sync_return(async_method: Any, annotation: str) -> set[str]:
    """The return annotations the sync twin of a method returning ``annotation`` may have."""
    if inspect.iscoroutinefunction(async_method):
        return {annotation}
    stream = re.fullmatch(r"Async(?:Generator|Iterator|Iterable)\[(.+?)(?:, None)?\]", annotation)
    if stream is not None:
        item = stream.group(1)
        return {f"Generator[{item}, None, None]", f"Iterator[{item}]", f"Iterable[{item}]"}
    awaited = re.fullmatch(r"(?:Awaitable|Coroutine\[Any, Any,)\s*\[?(.+?)\]", annotation)
    if awaited is not None:
        return {awaited.group(1)}
    return {annotation}


def test_the_same_methods() -> None:
    assert methods(Client) == {RENAMED.get(name, name) for name in methods(AsyncClient)}


@pytest.mark.parametrize("name", ["__init__", *ASYNC_METHODS])
def test_the_same_parameters_and_return_types(name: str) -> None:
    async_method = getattr(AsyncClient, name)
    sync_method = getattr(Client, RENAMED.get(name, name))
    async_sig, sync_sig = inspect.signature(async_method), inspect.signature(sync_method)

    def described(sig: inspect.Signature) -> list[tuple[str, Any, Any, Any]]:
        return [(p.name, p.kind, p.default, p.annotation) for p in sig.parameters.values()]

    assert described(sync_sig) == described(async_sig)
    assert sync_sig.return_annotation in sync_return(async_method, async_sig.return_annotation)
    if async_method.__doc__:
        assert sync_method.__doc__, f"Client.{sync_method.__name__} has no docstring"


def test_the_same_attributes() -> None:
    """An ``AsyncClient``'s public attributes are properties of ``Client`` (kept in step)."""
    aio = AsyncClient(env={})
    attributes = {name for name in vars(aio) if not name.startswith("_")}
    asyncio.run(aio.aclose())
    assert properties(Client) == attributes | properties(AsyncClient)
    with Client(env={}) as client:
        client.check_context_window = False
        assert client.aio.check_context_window is False


def test_the_keyword_types_are_those_of_build_request() -> None:
    """``**params`` of chat, stream and run_tools are typed by these TypedDicts: they
    list exactly the keyword arguments of ``build_request`` (``run_tools`` gives its own
    ``tools``), with the same annotations."""
    keywords = {
        p.name: p.annotation
        for p in inspect.signature(AsyncClient.build_request).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }

    def written(params: type) -> dict[str, str]:
        return {name: getattr(t, "__forward_arg__", t) for name, t in params.__annotations__.items()}

    assert written(ChatParams) == keywords
    assert written(GenerationParams) == {name: t for name, t in keywords.items() if name != "tools"}
    assert not ChatParams.__required_keys__
    get_type_hints(ChatParams)  # the annotations resolve at runtime too
