"""Small shared pieces: retry hints, secrets, environment providers, transports."""

from __future__ import annotations

from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmrelay import errors
from llmrelay._headers import parse_duration_s, retry_after_s, should_retry
from llmrelay._secret import Secret, redact
from llmrelay.config import providers_from_env
from llmrelay.providers.base import ProviderConfig
from llmrelay.providers.openai.provider import OpenAIProvider
from llmrelay.providers.wire_errors import describe_body
from llmrelay.testing import MockTransport, json_response
from llmrelay.types import ChatRequest, Message


def test_retry_after_prefers_ms_then_seconds_then_date() -> None:
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_s({"retry-after": "3"}) == 3.0
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({"retry-after": "-4"}) is None
    assert retry_after_s({}) is None
    when = formatdate(1_000_030, usegmt=True)
    assert retry_after_s({"retry-after": when}, now=1_000_000) == pytest.approx(30.0)
    assert retry_after_s({"retry-after": formatdate(999_000, usegmt=True)}, now=1_000_000) == 0.0


def test_should_retry_header() -> None:
    assert should_retry({"x-should-retry": "true"}) is True
    assert should_retry({"x-should-retry": "false"}) is False
    assert should_retry({}) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("34.4s", 34.4), ("6m0s", 360.0), ("14ms", 0.014), ("1h2m3s", 3723.0), ("2", 2.0), ("", None), ("5x", None)],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    result = parse_duration_s(text)
    assert result == (pytest.approx(seconds) if seconds is not None else None)


@given(st.floats(0, 10_000, allow_nan=False).map(lambda f: round(f, 3)))
def test_duration_round_trip(seconds: float) -> None:
    assert parse_duration_s(f"{seconds}s") == pytest.approx(seconds)


def test_secrets_never_printed() -> None:
    key = "sk-proj-abcdefghijklmnop1234"
    secret = Secret(key)
    config = ProviderConfig("openai", "openai", api_key=key)
    assert key not in repr(secret) and key not in str(secret) and key not in repr(config)
    assert secret.get() == key
    assert key not in redact(f"bad key {key} sent")
    assert "AIzaSyA1234567890abcdefghijkl" not in redact("url?key=AIzaSyA1234567890abcdefghijkl&x=1")


def test_providers_from_env() -> None:
    env = {
        "OPENAI_API_KEY": "sk-a",
        "ANTHROPIC_API_KEY": "sk-ant-b",
        "GOOGLE_API_KEY": "g",
        "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com",
        "AZURE_OPENAI_API_KEY": "az",
        "OPENAI_API_VERSION": "2025-01-01",
        "OLLAMA_BASE_URL": "http://127.0.0.1:11434/v1",
    }
    found = providers_from_env(env)
    assert set(found) == {"openai", "openai-responses", "anthropic", "gemini", "azure", "ollama"}
    assert found["azure"].options["api_version"] == "2025-01-01"
    assert found["ollama"].api_key is None and found["ollama"].base_url == "http://127.0.0.1:11434/v1"


def test_describe_body_variants() -> None:
    assert describe_body(b"", {}) == "an empty body"
    assert "HTML page ('Gateway Timeout')" in describe_body(b"<html><title>Gateway Timeout</title></html>", {})
    assert "non-JSON body" in describe_body(b"upstream connect error", {"content-type": "text/plain"})


async def test_mock_transport_drives_a_real_codec() -> None:
    def handler(request: object) -> object:
        return json_response(
            {
                "id": "x",
                "model": "gpt-4o-mini",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "mocked"}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1},
            }
        )

    transport = MockTransport(handler)  # type: ignore[arg-type]
    provider = OpenAIProvider(ProviderConfig("openai", "openai", api_key="sk-x"), transport)
    r = await provider.chat(ChatRequest("gpt-4o-mini", [Message("user", "Hi")]))
    assert r.content == "mocked"
    assert transport.requests[0].url == "https://api.openai.com/v1/chat/completions"


def test_error_tree_defaults() -> None:
    assert errors.RateLimited("x").retryable and errors.RateLimited("x").status_code == 429
    assert not errors.InvalidRequest("x").retryable
    assert issubclass(errors.ContextWindowExceeded, errors.InvalidRequest)
    assert errors.class_for_status(418) is errors.InvalidRequest
    assert errors.class_for_status(599) is errors.ProviderError
    exc = errors.Overloaded("busy", provider="anthropic", retry_after=2.0)
    assert str(exc) == "anthropic: busy" and exc.retry_after == 2.0
