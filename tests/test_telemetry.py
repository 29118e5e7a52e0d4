"""OpenTelemetry traces: off by default with nothing of OpenTelemetry imported; the GenAI
attributes of call and attempt spans (checked with the SDK's in-memory exporter), the
attempt's ``traceparent`` in the provider's request, streams, the gateway's request span
continuing the caller's ``traceparent``, content captured only when asked, and one run
exporting over OTLP/HTTP to a real receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from fakeserver import FakeServer, Reply
from gateways import Served, served_gateway
from llmrelay import AsyncClient
from llmrelay.router import ModelGroup, RoutingSettings
from llmrelay.telemetry import CONTENT_ENV, wanted
from llmrelay.telemetry.spans import Telemetry
from test_gateway_openai import CHAT, answer, sse
from test_gateway_tenants import HI

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def exported() -> Iterator[tuple[Telemetry, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Telemetry(provider), exporter
    provider.shutdown()


@pytest.fixture
async def upstream() -> AsyncIterator[FakeServer]:
    async with FakeServer() as server:
        yield server


def client_for(server: FakeServer, telemetry: Telemetry | None, retries: int = 1) -> AsyncClient:
    env = {"OPENAI_API_KEY": "sk-upstream-key-123456", "OPENAI_BASE_URL": server.url + "/v1"}
    group = ModelGroup("smart", ["openai/gpt-4o-mini", "openai/gpt-4o"])
    routing = RoutingSettings(retries=retries, cooldowns=False)
    return AsyncClient(env=env, models=[group], routing=routing, telemetry=telemetry)


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        out.setdefault(span.name, []).append(span)
    return out


def traceparent_of(span: ReadableSpan) -> str:
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


# ---------------------------------------------------------------- switched on and off


def test_off_by_default_nothing_of_opentelemetry_is_imported() -> None:
    code = (
        "import sys, asyncio; from llmrelay import AsyncClient; from llmrelay.gateway.app import Gateway\n"
        "c = AsyncClient(env={'OPENAI_API_KEY': 'x'}); assert c.telemetry is None\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith('opentelemetry')}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env={"PATH": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("entry", "env", "on", "capture"),
    [
        (None, {}, False, False),
        (None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True, False),
        (None, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://x/v1/traces", CONTENT_ENV: "true"}, True, True),
        ({"enabled": True}, {}, True, False),
        ({"enabled": True, "capture_content": True}, {}, True, True),
        ({"enabled": True}, {"OTEL_SDK_DISABLED": "true"}, False, False),
        ({"enabled": True}, {"OTEL_TRACES_EXPORTER": "none"}, False, False),
        ({"enabled": False}, {CONTENT_ENV: "true"}, False, False),
    ],
)
def test_when_telemetry_is_on(entry: dict[str, Any] | None, env: dict[str, str], on: bool, capture: bool) -> None:
    fields = {"enabled": False, "service_name": None, "endpoint": None, "headers": {}, "capture_content": False}
    section = SimpleNamespace(**(fields | entry)) if entry is not None else None
    got = wanted(section, env)
    assert (got is not None) == on
    if got is not None:
        assert got.capture_content == capture and got.service_name == "llmrelay"


def test_a_config_asking_for_telemetry_without_the_extra_says_what_to_install(tmp_path: Any) -> None:
    config = tmp_path / "llmrelay.yaml"
    config.write_text("telemetry: {enabled: true, service_name: gw, endpoint: 'http://127.0.0.1:9/v1/traces'}\n")
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"  # as if the extra were not installed
        f"from llmrelay import AsyncClient, errors\ntry:\n  AsyncClient({str(config)!r})\n"
        "except errors.ConfigError as e:\n  print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "OpenTelemetry is missing" in out.stdout and "otel" in out.stdout, (out.stdout, out.stderr)


# ---------------------------------------------------------------- the library's spans


async def test_a_call_and_its_attempts_with_genai_attributes(
    upstream: FakeServer, exported: tuple[Telemetry, InMemorySpanExporter]
) -> None:
    telemetry, exporter = exported
    upstream.on("POST", CHAT, Reply(status=500, json={"error": {"message": "boom"}}), Reply(json=answer("Paris.")))
    async with client_for(upstream, telemetry) as client:
        r = await client.chat("smart", "Capital of France?", max_tokens=20, temperature=0.5)
    assert r.content == "Paris."
    spans = by_name(exporter.get_finished_spans())
    [call] = spans["chat smart"]
    first, second = sorted(
        spans["chat gpt-4o-mini"] + spans["chat gpt-4o"], key=lambda s: s.attributes["llmrelay.attempt"]
    )
    assert call.kind == SpanKind.INTERNAL and first.kind == second.kind == SpanKind.CLIENT
    assert first.parent is not None and first.parent.span_id == call.context.span_id
    assert second.parent is not None and second.parent.span_id == call.context.span_id
    a = call.attributes
    assert a["gen_ai.operation.name"] == "chat" and a["llmrelay.group"] == "smart"
    assert a["gen_ai.request.max_tokens"] == 20 and a["gen_ai.request.temperature"] == 0.5
    assert a["gen_ai.usage.input_tokens"] == 9 and a["gen_ai.usage.output_tokens"] == 3
    assert a["llmrelay.attempts"] == 2 and a["llmrelay.deployment"] == second.attributes["llmrelay.deployment"]
    assert first.attributes["llmrelay.deployment"] != second.attributes["llmrelay.deployment"]
    assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a  # no content unless asked
    assert first.attributes["llmrelay.outcome"] == "error" and first.attributes["error.type"] == "ProviderError"
    assert first.status.status_code == StatusCode.ERROR
    assert second.attributes["llmrelay.outcome"] == "ok" and second.attributes["gen_ai.provider.name"] == "openai"
    b = second.attributes
    assert b["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18" and b["gen_ai.response.finish_reasons"] == ("stop",)
    assert b["gen_ai.usage.input_tokens"] == 9 and b["gen_ai.usage.output_tokens"] == 3 and b["llmrelay.cost_usd"] > 0
    assert second.attributes["server.address"] == "127.0.0.1"
    assert second.name == f"chat {second.attributes['gen_ai.request.model']}"
    sent = [req.headers.get("traceparent") for req in upstream.requests]
    assert sent == [traceparent_of(first), traceparent_of(second)]  # each attempt's own span, propagated


async def test_a_stream_and_a_failed_call(
    upstream: FakeServer, exported: tuple[Telemetry, InMemorySpanExporter]
) -> None:
    telemetry, exporter = exported
    upstream.on("POST", CHAT, Reply(chunks=sse("Hel", "lo")))
    async with client_for(upstream, telemetry, retries=0) as client:
        text = "".join([e.text async for e in client.stream("smart", "Hi") if e.type == "text"])
        assert text == "Hello"
        upstream.on("POST", CHAT, Reply(status=400, json={"error": {"message": "bad"}}))
        with pytest.raises(Exception, match="bad"):
            await client.chat("smart", "Hi")
    stream_call, failed_call = sorted(
        by_name(exporter.get_finished_spans())["chat smart"], key=lambda s: s.start_time or 0
    )
    assert (
        stream_call.attributes["llmrelay.stream"] is True and stream_call.attributes["gen_ai.usage.output_tokens"] == 2
    )
    attempts = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CLIENT]
    assert attempts[0].parent is not None and attempts[0].parent.span_id == stream_call.context.span_id
    assert upstream.requests[0].headers["traceparent"] == traceparent_of(attempts[0])
    assert (
        failed_call.status.status_code == StatusCode.ERROR and failed_call.attributes["error.type"] == "InvalidRequest"
    )


async def test_content_is_captured_only_when_asked(upstream: FakeServer) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    upstream.on("POST", CHAT, Reply(json=answer("Paris.")))
    async with client_for(upstream, Telemetry(provider, capture_content=True)) as client:
        await client.chat("smart", "Capital of France?")
    [call] = by_name(exporter.get_finished_spans())["chat smart"]
    assert "Capital of France?" in str(call.attributes["gen_ai.input.messages"])
    assert '"Paris."' in str(call.attributes["gen_ai.output.messages"])
    provider.shutdown()


# ---------------------------------------------------------------- the gateway


@pytest.fixture
async def traced_gw(exported: tuple[Telemetry, InMemorySpanExporter]) -> AsyncIterator[Served]:
    async for served in served_gateway(telemetry=exported[0]):
        yield served


async def test_the_gateway_continues_the_callers_trace(
    traced_gw: Served, exported: tuple[Telemetry, InMemorySpanExporter]
) -> None:
    gw, exporter = traced_gw, exported[1]
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
    await gw.sdk().chat.completions.create(  # type: ignore[call-overload]
        model="smart", messages=HI, extra_headers={"traceparent": CALLER}
    )
    spans = exporter.get_finished_spans()
    [server] = [s for s in spans if s.kind == SpanKind.SERVER]
    [call] = [s for s in spans if s.name == "chat smart"]
    [attempt] = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert server.name == "POST /v1/chat/completions" and f"{server.context.trace_id:032x}" == TRACE_ID
    assert server.parent is not None and f"{server.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert call.parent is not None and call.parent.span_id == server.context.span_id
    assert attempt.parent is not None and attempt.parent.span_id == call.context.span_id
    a = server.attributes
    assert a["http.response.status_code"] == 200 and a["http.route"] == "/v1/chat/completions"
    assert a["gen_ai.request.model"] == "smart" and call.attributes["llmrelay.deployment"] == "openai/gpt-4o-mini"
    assert a["gen_ai.usage.input_tokens"] == 9 and a["llmrelay.cost_usd"] > 0
    assert gw.upstream.requests[-1].headers["traceparent"].split("-")[1] == TRACE_ID
    assert all("sk-" not in str(s.attributes) for s in spans)  # no key in any span


# ---------------------------------------------------------------- a real OTLP receiver


async def test_spans_reach_an_otlp_http_receiver(upstream: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    async with FakeServer() as collector:
        collector.on("POST", "/v1/traces", Reply(status=200, body=b""))
        env = {
            "OPENAI_API_KEY": "sk-upstream-key-123456", "OPENAI_BASE_URL": upstream.url + "/v1",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_SERVICE_NAME": "relay-test",
        }  # fmt: skip
        for name, value in env.items():
            monkeypatch.setenv(name, value)  # the exporter reads the endpoint from the environment
        upstream.on("POST", CHAT, Reply(json=answer("ok")))
        client = AsyncClient(env=env, models=[ModelGroup("smart", ["openai/gpt-4o-mini"])])
        assert client.telemetry is not None
        await client.chat("smart", "Hi")
        await client.aclose()  # shuts its provider down: the batch goes now
        for _ in range(50):
            if collector.count("/v1/traces"):
                break
            await asyncio.sleep(0.1)
    received = []
    for request in collector.requests:
        message = ExportTraceServiceRequest()
        message.ParseFromString(request.body)
        received.append(message)
    names = {s.name for m in received for rs in m.resource_spans for ss in rs.scope_spans for s in ss.spans}
    assert names == {"chat smart", "chat gpt-4o-mini"}
    services = {
        a.value.string_value for m in received for rs in m.resource_spans for a in rs.resource.attributes
        if a.key == "service.name"
    }  # fmt: skip
    assert services == {"relay-test"}
