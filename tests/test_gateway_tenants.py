"""Virtual keys, tenants and their isolation, limits and budgets at the gateway,
with the official SDKs as clients (the SDK must raise its own exception class)."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from fakeserver import Reply
from gateways import MASTER, Served
from llmrelay.router import Deployment
from llmrelay.types import ChatRequest, Message, Usage
from test_gateway_openai import CHAT, answer, sse

HI = [{"role": "user", "content": "Hi"}]


async def call(
    gw: Served, method: str, path: str, body: Any = None, key: str | None = MASTER
) -> tuple[int, Any, dict[str, str]]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as http, http.request(method, gw.url + path, json=body, headers=headers) as r:
        return r.status, await r.json(), dict(r.headers)


async def new_key(gw: Served, tenant: str, **fields: Any) -> tuple[str, str]:
    status, body, _ = await call(gw, "POST", "/admin/keys", {"tenant": tenant, **fields})
    assert status == 201, body
    return body["id"], body["key"]


async def test_key_is_shown_once_and_works_with_both_sdks(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("Paris.")))
    status, made, _ = await call(gw, "POST", "/admin/keys", {"tenant": "acme", "name": "ci"})
    assert status == 201 and made["key"].startswith("sk-relay-") and made["status"] == "active"
    secret = made["key"]
    status, listed, _ = await call(gw, "GET", "/admin/keys")
    assert status == 200 and [k["id"] for k in listed["data"]] == [made["id"]]
    assert secret not in str(listed) and all("key" not in k for k in listed["data"])
    status, one, _ = await call(gw, "GET", f"/admin/keys/{made['id']}")
    assert status == 200 and secret not in str(one) and one["prefix"] == secret[: len(one["prefix"])]

    r = await gw.sdk(secret).chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    assert r.choices[0].message.content == "Paris."
    assert (await gw.sdk(secret).models.list()).data  # Bearer
    with pytest.raises(anthropic.NotFoundError):  # x-api-key is accepted: the model is the problem
        await gw.claude(secret).messages.create(model="nope", max_tokens=5, messages=HI)  # type: ignore[arg-type]


async def test_unknown_revoked_expired_and_rotated_keys(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
    with pytest.raises(openai.AuthenticationError, match="invalid API key"):
        await gw.sdk("sk-relay-not-a-key").chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]

    key_id, secret = await new_key(gw, "acme")
    status, rotated, _ = await call(gw, "POST", f"/admin/keys/{key_id}/rotate")
    assert status == 200 and rotated["id"] == key_id and rotated["key"] != secret
    with pytest.raises(openai.AuthenticationError):
        await gw.sdk(secret).chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    ok = await gw.sdk(rotated["key"]).chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    assert ok.choices[0].message.content == "ok"

    status, revoked, _ = await call(gw, "POST", f"/admin/keys/{key_id}/revoke")
    assert status == 200 and revoked["status"] == "revoked"
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        await gw.sdk(rotated["key"]).chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]

    _, soon = await new_key(gw, "acme", expires_in_s=0.3)
    await gw.sdk(soon).models.list()
    await asyncio.sleep(0.4)
    gw.app.auth.forget()  # the key cache would otherwise keep a just-expired key for up to 5 s
    with pytest.raises(openai.AuthenticationError, match="expired"):
        await gw.sdk(soon).models.list()


async def test_model_allow_list(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
    _, secret = await new_key(gw, "acme", models=["smart"])
    listed = await gw.sdk(secret).models.list()
    assert [m.id for m in listed.data] == ["smart"]
    with pytest.raises(openai.PermissionDeniedError, match="may not use the model 'claude'"):
        await gw.sdk(secret).chat.completions.create(model="claude", messages=HI)  # type: ignore[arg-type]
    with pytest.raises(anthropic.PermissionDeniedError):
        await gw.claude(secret).messages.create(model="claude", max_tokens=5, messages=HI)  # type: ignore[arg-type]
    with pytest.raises(openai.PermissionDeniedError):
        await gw.sdk(secret).embeddings.create(model="claude", input="x")
    assert (await gw.sdk(secret).chat.completions.create(model="smart", messages=HI)).choices  # type: ignore[arg-type]


async def test_tenants_never_see_each_other(gw: Served) -> None:
    """Endpoint by endpoint: usage, keys, conversations, admin."""
    gw.upstream.on("POST", CHAT, Reply(json=answer("hello")))
    a_id, a = await new_key(gw, "tenant-a")
    b_id, b = await new_key(gw, "tenant-b")
    for secret, conv in ((a, "shared-name"), (b, "shared-name")):
        await gw.sdk(secret).chat.completions.create(
            model="smart",
            messages=HI,
            extra_body={"conversation_id": conv},  # type: ignore[arg-type]
        )
    await gw.app.ledger.flush()  # type: ignore[union-attr]

    status, usage, _ = await call(gw, "GET", "/admin/usage", key=a)
    assert status == 200 and usage["total_count"] == 1
    assert {row["tenant"] for row in usage["data"]} == {"tenant-a"} and usage["data"][0]["key_id"] == a_id
    status, body, _ = await call(gw, "GET", "/admin/usage?tenant=tenant-b", key=a)
    assert status == 403 and body["error"]["code"] == "other_tenant"
    status, everything, _ = await call(gw, "GET", "/admin/usage?group_by=tenant")
    assert status == 200 and {t["tenant"] for t in everything["totals"]} == {"tenant-a", "tenant-b"}

    status, keys, _ = await call(gw, "GET", "/admin/keys", key=a)
    assert status == 200 and [k["id"] for k in keys["data"]] == [a_id]
    status, _, _ = await call(gw, "GET", f"/admin/keys/{b_id}", key=a)
    assert status == 404
    status, _, _ = await call(gw, "GET", "/admin/keys?tenant=tenant-b", key=a)
    assert status == 403

    status, convs, _ = await call(gw, "GET", "/v1/conversations", key=a)
    assert status == 200 and [c["id"] for c in convs["data"]] == ["shared-name"]
    status, conv, _ = await call(gw, "GET", "/v1/conversations/shared-name", key=b)
    assert status == 200 and conv["tenant"] == "tenant-b" and len(conv["messages"]) == 2
    status, _, _ = await call(gw, "DELETE", "/v1/conversations/shared-name", key=b)
    assert status == 200
    status, _, _ = await call(gw, "GET", "/v1/conversations/shared-name", key=b)
    assert status == 404
    status, still, _ = await call(gw, "GET", "/v1/conversations/shared-name", key=a)
    assert status == 200 and still["tenant"] == "tenant-a"

    for method, path, body in (
        ("POST", "/admin/keys", {"tenant": "tenant-a"}), ("GET", "/admin/tenants", None),
        ("POST", f"/admin/keys/{b_id}/revoke", None), ("POST", f"/admin/keys/{a_id}/rotate", None),
        ("PATCH", "/admin/tenants/tenant-b", {"rpm": 1}),
    ):  # fmt: skip
        status, err, _ = await call(gw, method, path, body, key=a)
        assert status == 403 and err["error"]["code"] == "admin_only", (method, path)
    assert gw.store.get_key(b_id).usable(time.time()) is None  # type: ignore[union-attr]


async def test_conversation_history_is_sent_upstream(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("Paris.")), Reply(chunks=sse("It ", "is ", "big.")))
    _, secret = await new_key(gw, "acme")
    sdk = gw.sdk(secret)
    first = [{"role": "user", "content": "Capital of France?"}]
    await sdk.chat.completions.create(model="smart", messages=first, extra_body={"conversation_id": "trip"})  # type: ignore[arg-type]
    follow = [{"role": "user", "content": "How big is it?"}]
    stream = await sdk.chat.completions.create(
        model="smart",
        messages=follow,
        stream=True,
        extra_headers={"x-llmrelay-conversation-id": "trip"},  # type: ignore[arg-type]
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "It is big."
    sent = gw.upstream.requests[-1].json["messages"]
    assert [m["content"] for m in sent] == ["Capital of France?", "Paris.", "How big is it?"]
    stored = gw.store.conversation("acme", "trip")
    assert stored is not None and [m["content"] for m in stored.messages] == [
        "Capital of France?", "Paris.", "How big is it?", "It is big."
    ]  # fmt: skip
    status, err, _ = await call(gw, "POST", CHAT, {"model": "smart", "messages": HI, "conversation_id": "no spaces"})
    assert status == 400 and err["error"]["param"] == "conversation_id"
    with pytest.raises(anthropic.BadRequestError, match="conversation_id"):
        await gw.claude(secret).messages.create(
            model="claude",
            max_tokens=5,
            messages=HI,
            extra_body={"conversation_id": "trip"},  # type: ignore[arg-type]
        )


async def test_rpm_limit_is_a_429_with_ratelimit_headers(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
    _, secret = await new_key(gw, "acme", rpm=3)
    raw = await gw.sdk(secret).chat.completions.with_raw_response.create(model="smart", messages=HI)  # type: ignore[arg-type]
    assert raw.headers["x-ratelimit-limit-requests"] == "3" and raw.headers["x-ratelimit-remaining-requests"] == "2"
    for _ in range(2):
        await gw.sdk(secret).chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError, match="3 requests per minute") as caught:
        await gw.sdk(secret).chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    headers = caught.value.response.headers
    assert int(headers["retry-after"]) >= 1 and headers["x-ratelimit-remaining-requests"] == "0"
    assert gw.upstream.count(CHAT) == 3
    _, other = await new_key(gw, "acme")  # another key of the tenant has its own window
    assert (await gw.sdk(other).chat.completions.create(model="smart", messages=HI)).choices  # type: ignore[arg-type]


async def test_tenant_and_per_model_limits(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
    status, _, _ = await call(
        gw, "POST", "/admin/tenants", {"id": "small", "rpm": 2, "model_limits": {"smart": {"tpm": 100_000}}}
    )
    assert status == 201
    _, one = await new_key(gw, "small")
    _, two = await new_key(gw, "small")
    await gw.sdk(one).chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    await gw.sdk(two).chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError, match="tenant 'small'"):
        await gw.sdk(two).chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    _, tight = await new_key(gw, "acme", model_limits={"smart": {"tpm": 50}})
    with pytest.raises(openai.RateLimitError, match="exceed the key for model 'smart'"):
        await gw.sdk(tight).chat.completions.create(model="smart", messages=HI, max_tokens=100)  # type: ignore[arg-type]
    ok = await gw.sdk(tight).chat.completions.create(model="smart", messages=HI, max_tokens=20)  # type: ignore[arg-type]
    assert ok.choices


async def test_budget_overshoots_by_at_most_one_estimate_under_50_concurrent(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok"), delay_s=0.02))
    budget = 0.0005
    key_id, secret = await new_key(gw, "acme", budget_usd=budget, budget_period="day")
    sdk = gw.sdk(secret)

    async def one() -> str:
        try:
            await sdk.chat.completions.create(model="smart", messages=HI, max_tokens=200)  # type: ignore[arg-type]
            return "ok"
        except openai.RateLimitError as exc:
            assert exc.code == "insufficient_quota" and exc.type == "insufficient_quota"
            assert exc.response.headers["x-should-retry"] == "false"
            return "over"

    outcomes: list[str] = []
    for _ in range(20):  # until the budget is spent, 50 at a time
        outcomes += await asyncio.gather(*(one() for _ in range(50)))
        if outcomes[-50:].count("ok") == 0:
            break
    await gw.app.ledger.flush()  # type: ignore[union-attr]
    spent = gw.store.spend(key_id=key_id)
    estimate = gw.app.prices.reservation("smart", ChatRequest("smart", [Message("user", "Hi")], max_tokens=200))
    assert outcomes.count("ok") >= 2 and "over" in outcomes
    assert spent <= budget + estimate, (spent, budget, estimate)
    per_answer = gw.app.prices.cost(Deployment("openai", "gpt-4o-mini"), Usage(9, 3))
    assert per_answer is not None and spent == pytest.approx(outcomes.count("ok") * per_answer, rel=0.01)


async def test_ledger_records_streams_errors_and_totals(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(chunks=sse("a", "b")), Reply(status=400, json={"error": {"message": "bad"}}))
    key_id, secret = await new_key(gw, "acme")
    stream = await gw.sdk(secret).chat.completions.create(
        model="smart",
        messages=HI,
        stream=True,
        stream_options={"include_usage": True},  # type: ignore[arg-type]
    )
    rid = stream.response.headers["x-request-id"]
    assert [c async for c in stream]
    with pytest.raises(openai.BadRequestError):
        await gw.sdk(secret).chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    await gw.app.ledger.flush()  # type: ignore[union-attr]
    status, usage, _ = await call(gw, "GET", "/admin/usage?group_by=key,model,day", key=secret)
    assert status == 200 and usage["total_count"] == 2
    bad, good = usage["data"]  # newest first
    assert good["request_id"] == rid and good["status"] == 200 and good["route"] == CHAT
    assert (good["prompt_tokens"], good["completion_tokens"]) == (5, 2) and good["deployment"] == "openai/gpt-4o-mini"
    assert good["cost_usd"] > 0 and good["latency_ms"] >= good["upstream_ms"] > 0
    assert bad["status"] == 400 and bad["error"]
    [total] = usage["totals"]
    assert (total["key_id"], total["model"], total["requests"], total["errors"]) == (key_id, "smart", 2, 1)
    assert total["prompt_tokens"] == 5 and total["cost_usd"] == pytest.approx(good["cost_usd"])


async def test_admin_input_errors_are_4xx_naming_the_field(gw: Served) -> None:
    cases = [
        ("POST", "/admin/keys", {"tenant": "acme", "rpm": -1}, 400, "rpm"),
        ("POST", "/admin/keys", {"tenant": "bad tenant!"}, 400, "tenant"),
        ("POST", "/admin/keys", {"tenant": "acme", "colour": "red"}, 400, "colour"),
        ("POST", "/admin/tenants", {"id": "acme", "budget_period": "week"}, 400, "budget_period"),
        ("GET", "/admin/usage?since=yesterday", None, 400, "since"),
        ("GET", "/admin/usage?group_by=planet", None, 400, "group_by"),
        ("POST", "/admin/keys/key_0000000000000000/revoke", None, 404, None),
        ("PATCH", "/admin/tenants/nobody", {"rpm": 5}, 404, None),
    ]
    for method, path, body, want, param in cases:
        status, err, _ = await call(gw, method, path, body)
        assert status == want, (path, body, err)
        if param:
            assert err["error"]["param"] == param or param in err["error"]["message"], err
    assert (await call(gw, "POST", "/admin/tenants", {"id": "acme"}))[0] == 201
    assert (await call(gw, "POST", "/admin/tenants", {"id": "acme"}))[0] == 409
    assert (await call(gw, "GET", "/admin/keys", key=None))[0] == 401


async def test_limits_that_cannot_be_checked_are_a_503_not_a_500(gw: Served) -> None:
    """The state backend failing (Redis down) makes a keyed request a 503 the SDK retries, never a 500."""
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
    _, secret = await new_key(gw, "acme", rpm=10)

    from llmrelay.state.redis import RedisState

    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there: a Redis that is down
    down = RedisState(f"redis://127.0.0.1:{port}/0")
    gw.app.admission.state = down
    try:
        with pytest.raises(openai.InternalServerError) as caught:
            await gw.sdk(secret).chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    finally:
        await down.aclose()
    assert caught.value.status_code == 503 and caught.value.code == "state_unavailable"
    assert gw.upstream.count(CHAT) == 0


async def test_keys_that_cannot_be_looked_up_are_a_503_not_a_500(gw: Served) -> None:
    """The store's database gone (here: its file made unreadable as a database) is a 503."""
    _, secret = await new_key(gw, "acme")
    gw.app.auth.forget()
    path = gw.store.url.split(":///", 1)[1]
    gw.store.close()
    with open(path, "r+b") as db:  # overwrite the header: SQLite will refuse the file
        db.write(b"not a database at all, sorry.." * 4)
    with pytest.raises(openai.InternalServerError) as caught:
        await gw.sdk(secret).models.list()
    assert caught.value.status_code == 503 and caught.value.code == "store_unavailable"


async def test_admin_and_conversations_with_the_store_down_are_a_503(gw: Served) -> None:
    path = gw.store.url.split(":///", 1)[1]
    gw.store.close()
    with open(path, "r+b") as db:
        db.write(b"not a database at all, sorry.." * 4)
    for method, path_ in (("GET", "/admin/keys"), ("GET", "/admin/usage"), ("GET", "/v1/conversations")):
        status, err, headers = await call(gw, method, path_)
        assert status == 503 and err["error"]["code"] == "store_unavailable", (path_, err)
        assert {k.lower(): v for k, v in headers.items()}["retry-after"] == "1", headers
