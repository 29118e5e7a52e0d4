from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakeserver import FakeServer
from gateways import Served, served_gateway


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    async with FakeServer() as server:
        yield server


@pytest.fixture(autouse=True)
async def _close_shared_transport() -> AsyncIterator[None]:
    """Providers built without a transport share the process one: close this
    test's session (sessions are per event loop, and each test has its loop)."""
    yield
    from llmrelay._http1 import default_transport

    await default_transport().aclose()


@pytest.fixture
async def gw() -> AsyncIterator[Served]:
    """A gateway on 127.0.0.1 over fake OpenAI and Anthropic upstreams (see gateways.py)."""
    async for served in served_gateway():
        yield served


@pytest.fixture
def redis_url() -> str:
    """The test Redis (``LLMRELAY_TEST_REDIS_URL``); the test is skipped, saying why, when none answers."""
    from test_state_contract import REDIS_URL, redis_reason

    reason = redis_reason()
    if reason is not None:
        pytest.skip(reason)
    return REDIS_URL
