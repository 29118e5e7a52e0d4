"""The dashboard's server side over real HTTP: the page and its assets with a strict CSP,
signing in (the key only in the body, a session id in an HttpOnly SameSite=Strict cookie,
never the key), CSRF on writes, a tenant's session seeing only its tenant, sessions ending
with their key, signing out, the deployments and CSV admin routes. The page itself, in a
browser, is tested in test_dashboard_browser.py."""

from __future__ import annotations

import csv
import io
from typing import Any

import aiohttp
import pytest

from fakeserver import Reply
from gateways import MASTER, Served
from llmrelay.gateway.dashboard import ASSETS, CSP
from test_gateway_openai import CHAT, answer
from test_gateway_tenants import HI, call, new_key


class Browser:
    """An HTTP client that keeps cookies as a browser does, and sends the CSRF token it was given."""

    def __init__(self, gw: Served) -> None:
        self.gw = gw
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf: str | None = None

    async def __aenter__(self) -> Browser:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.close()

    async def request(
        self, method: str, path: str, body: Any = None, *, csrf: bool = True, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        sent = dict(headers or {})
        if csrf and self.csrf:
            sent["x-csrf-token"] = self.csrf
        async with self.http.request(method, self.gw.url + path, json=body, headers=sent) as r:
            raw = await r.read()
            try:
                data: Any = await r.json(content_type=None)
            except ValueError:
                data = raw
            return r.status, data, r

    async def sign_in(self, key: str | None) -> tuple[int, Any, aiohttp.ClientResponse]:
        status, body, r = await self.request("POST", "/ui/session", {"key": key})
        if status == 200:
            self.csrf = body["csrf"]
        return status, body, r


async def test_the_page_and_its_assets_come_with_a_strict_policy(gw: Served) -> None:
    async with Browser(gw) as b:
        status, page, r = await b.request("GET", "/ui")
        assert status == 200 and r.headers["content-type"].startswith("text/html")
        assert r.headers["content-security-policy"] == CSP
        assert "'unsafe-inline'" not in CSP and "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
        assert b'<script type="module" src="/ui/assets/app.js">' in page and b"<script>" not in page  # none inline
        scripts = ("app.js", "ui.js", "overview.js", "manage.js", "ledger.js", "vendor/uPlot.iife.min.js")
        for name, kind in (*((n, "text/javascript") for n in scripts), ("app.css", "text/css")):
            status, body, r = await b.request("GET", f"/ui/assets/{name}")
            assert status == 200 and r.headers["content-type"].startswith(kind), name
            assert body == (ASSETS / name).read_bytes()
        for bad in (
            "../dashboard.py",
            "..%2Fdashboard.py",
            "vendor/../../app.py",
            ".hidden",
            "vendor",
            "nope.js",
            "%00",
        ):
            status, body, _ = await b.request("GET", f"/ui/assets/{bad}")
            assert status == 404 and body["error"]["message"], bad


async def test_signing_in_sets_a_session_cookie_not_the_key(gw: Served) -> None:
    async with Browser(gw) as b:
        status, body, _ = await b.request("GET", "/ui/session")
        assert status == 401 and body["error"]["code"] == "session_ended"
        status, body, r = await b.sign_in(MASTER)
        assert status == 200 and body["admin"] is True and len(body["csrf"]) > 30
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie and MASTER not in cookie
        assert "Secure" not in cookie  # plain HTTP here; behind HTTPS it is Secure (next test)
        assert MASTER not in str(body)
        status, who, _ = await b.request("GET", "/ui/session")
        assert status == 200 and who["admin"] is True and who["csrf"] == body["csrf"]
        status, keys, _ = await b.request("GET", "/admin/keys")  # the cookie stands for the key
        assert status == 200 and keys["object"] == "list"
        stored = [v for k, v in gw.client.state._data.items() if k.startswith("ui-session:")]  # type: ignore[attr-defined]
        assert stored and all(MASTER not in str(v) for v in stored)

    async with Browser(gw) as b:
        status, _, r = await b.request("POST", "/ui/session", {"key": MASTER}, headers={"x-forwarded-proto": "https"})
        assert status == 200 and "Secure" in r.headers["set-cookie"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"key": "sk-wrong"}, 401),
        ({"key": "sk-relay-" + "0" * 40}, 401),
        ({}, 401),
        ({"key": 5}, 400),
        ({"key": "x" * 300}, 400),
        ({"key": "a\nb"}, 400),
        ({"key": MASTER, "admin": True}, 400),
        ([1], 400),
    ],
)
async def test_a_bad_sign_in_is_refused_with_no_cookie(gw: Served, body: Any, code: int) -> None:
    async with Browser(gw) as b:
        status, answer_, r = await b.request("POST", "/ui/session", body)
        assert status == code and answer_["error"]["message"] and "set-cookie" not in r.headers
        assert MASTER not in str(answer_)


async def test_signing_in_again_and_again_is_capped_per_key(gw: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmrelay.gateway import ui_sessions

    monkeypatch.setattr(ui_sessions, "MAX_SIGN_INS", 3)
    _, secret = await new_key(gw, "acme")
    async with Browser(gw) as b:
        for _ in range(3):
            assert (await b.sign_in(secret))[0] == 200
        status, body, r = await b.sign_in(secret)
        assert status == 429 and body["error"]["code"] == "too_many_sessions" and "set-cookie" not in r.headers
        assert (await b.sign_in(MASTER))[0] == 200  # another key's count


async def test_writes_need_the_csrf_token(gw: Served) -> None:
    async with Browser(gw) as b:
        await b.sign_in(MASTER)
        status, body, _ = await b.request("POST", "/admin/keys", {"tenant": "acme"}, csrf=False)
        assert status == 403 and body["error"]["code"] == "csrf_failed"
        status, body, _ = await b.request(
            "POST", "/admin/keys", {"tenant": "acme"}, headers={"x-csrf-token": "guess"}, csrf=False
        )
        assert status == 403 and body["error"]["code"] == "csrf_failed"
        assert gw.store.list_keys() == []  # nothing was made
        status, made, _ = await b.request("POST", "/admin/keys", {"tenant": "acme"})
        assert status == 201 and made["key"].startswith("sk-relay-")
        gw.upstream.on("POST", CHAT, Reply(json=answer("hi")))
        status, _, _ = await b.request("POST", "/v1/chat/completions", {"model": "smart", "messages": HI}, csrf=False)
        assert status == 403  # a model request is a write too


async def test_a_tenants_session_sees_only_its_tenant(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
    a_id, a = await new_key(gw, "tenant-a", name="alpha")
    b_id, b_secret = await new_key(gw, "tenant-b")
    await gw.sdk(b_secret).chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    await gw.app.ledger.flush()  # type: ignore[union-attr]
    async with Browser(gw) as b:
        status, who, _ = await b.sign_in(a)
        assert status == 200 and who["admin"] is False and who["tenant"] == "tenant-a" and who["key_name"] == "alpha"
        status, keys, _ = await b.request("GET", "/admin/keys")
        assert status == 200 and [k["id"] for k in keys["data"]] == [a_id]
        for path, code in (
            ("/admin/keys?tenant=tenant-b", 403),
            (f"/admin/keys/{b_id}", 404),
            ("/admin/tenants", 403),
            ("/admin/usage?tenant=tenant-b", 403),
            ("/admin/usage/series?tenant=tenant-b", 403),
            ("/admin/usage.csv?tenant=tenant-b", 403),
            ("/admin/deployments", 403),
        ):
            status, body, _ = await b.request("GET", path)
            assert status == code, (path, body)
        status, rows, _ = await b.request("GET", "/admin/usage")
        assert status == 200 and rows["data"] == []  # tenant-b's request is not there
        status, series, _ = await b.request("GET", "/admin/usage/series?split=tenant")
        assert status == 200 and series["series"] == []
        status, body, _ = await b.request("POST", "/admin/keys", {"tenant": "tenant-a"})
        assert status == 403 and body["error"]["code"] == "admin_only"


async def test_a_session_ends_with_its_key_and_on_signing_out(gw: Served) -> None:
    key_id, secret = await new_key(gw, "acme")
    async with Browser(gw) as b:
        assert (await b.sign_in(secret))[0] == 200
        assert (await b.request("GET", "/admin/keys"))[0] == 200
        status, _, _ = await call(gw, "POST", f"/admin/keys/{key_id}/rotate")
        assert status == 200
        status, body, _ = await b.request("GET", "/admin/keys")
        assert status == 401 and body["error"]["code"] == "session_ended"

    _, other = await new_key(gw, "acme")
    async with Browser(gw) as b:
        await b.sign_in(other)
        status, _, _ = await b.request("DELETE", "/ui/session", csrf=False)
        assert (await b.request("GET", "/admin/keys"))[0] == 200  # no token: still signed in
        status, _, r = await b.request("DELETE", "/ui/session")
        assert status == 200 and "Max-Age=0" in r.headers["set-cookie"]
        status, body, _ = await b.request("GET", "/admin/keys")
        assert status == 401  # the cookie is gone, and the session with it


async def test_a_forged_or_malformed_session_cookie_is_a_401(gw: Served) -> None:
    async with Browser(gw) as b:
        await b.sign_in(MASTER)
        forged = {"cookie": "llmrelay_session=" + "A" * 43}
        async with aiohttp.ClientSession() as http:
            for headers in (forged, {"cookie": 'llmrelay_session="unterminated; x'}, {"cookie": "llmrelay_session"}):
                async with http.get(gw.url + "/admin/keys", headers=headers) as r:
                    assert r.status == 401, headers


async def test_deployments_report_and_take_a_manual_override(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(status=500, json={"error": {"message": "boom-xyz"}}))
    for _ in range(2):
        with pytest.raises(Exception, match=r"500|boom"):
            await gw.sdk().chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    async with Browser(gw) as b:
        await b.sign_in(MASTER)
        status, body, _ = await b.request("GET", "/admin/deployments")
        [failing] = [d for d in body["data"] if d["deployment"] == "openai/gpt-4o-mini"]
        assert len(failing["recent_errors"]) == 2 and failing["calls"] == failing["failures"] == 2
        newest = failing["recent_errors"][0]
        assert "ProviderError" in newest["error"] and "boom-xyz" in newest["error"], newest
        assert newest["at"] >= failing["recent_errors"][1]["at"] and gw.upstream.url not in str(failing)
        gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
        status, body, _ = await b.request("GET", "/admin/deployments")
        assert status == 200
        names = {d["deployment"]: d for d in body["data"]}
        target = "openai/gpt-4o-mini"
        assert target in names and names[target]["status"] != "disabled" and names[target]["manual"] is None
        status, done, _ = await b.request("PUT", f"/admin/deployments/{target}/health", {"healthy": False})
        assert status == 200 and done == {"deployment": target, "manual": False}
        status, body, _ = await b.request("GET", "/admin/deployments")
        row = next(d for d in body["data"] if d["deployment"] == target)
        assert row["manual"] is False and row["status"] == "disabled"
        for bad in ({"healthy": "yes"}, {}, {"healthy": True, "x": 1}):
            status, err, _ = await b.request("PUT", f"/admin/deployments/{target}/health", bad)
            assert status == 400 and err["error"]["param"] == "healthy", bad
        status, err, _ = await b.request("PUT", "/admin/deployments/nope/x/health", {"healthy": True})
        assert status == 404
        status, _, _ = await b.request("PUT", f"/admin/deployments/{target}/health", {"healthy": None})
        status, body, _ = await b.request("GET", "/admin/deployments")
        assert next(d for d in body["data"] if d["deployment"] == target)["manual"] is None


async def test_usage_exports_as_csv_that_no_spreadsheet_runs(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
    key_id, secret = await new_key(gw, "acme", name="=HYPERLINK(1)")
    for _ in range(3):
        await gw.sdk(secret).chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    await gw.app.ledger.flush()  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as http:
        headers = {"authorization": f"Bearer {MASTER}"}
        async with http.get(gw.url + f"/admin/usage.csv?key_id={key_id}&limit=2", headers=headers) as r:
            assert r.status == 200 and r.headers["content-type"].startswith("text/csv")
            assert "attachment" in r.headers["content-disposition"]
            rows = list(csv.DictReader(io.StringIO(await r.text())))
    assert len(rows) == 2 and {row["key_id"] for row in rows} == {key_id} and rows[0]["route"] == "/v1/chat/completions"
    assert "ttft_ms" in rows[0] and rows[0]["status"] == "200"
    status, err, _ = await call(gw, "GET", "/admin/usage.csv?group_by=tenant")
    assert status == 400 and err["error"]["param"] == "group_by"
    status, err, _ = await call(gw, "GET", "/admin/usage.csv?limit=20000")
    assert status == 400 and err["error"]["param"] == "limit"


async def test_a_request_id_finds_its_usage_record(gw: Served) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
    raw = await gw.sdk().chat.completions.with_raw_response.create(
        model="smart",
        messages=HI,
        extra_headers={"x-request-id": "play-123"},  # type: ignore[arg-type]
    )
    assert raw.headers["x-request-id"] == "play-123"
    await gw.app.ledger.flush()  # type: ignore[union-attr]
    status, body, _ = await call(gw, "GET", "/admin/usage?request_id=play-123")
    assert status == 200 and [r["request_id"] for r in body["data"]] == ["play-123"]
    assert body["data"][0]["cost_usd"] is not None


async def test_a_session_made_by_one_worker_serves_on_another_through_redis(redis_url: str) -> None:
    """Workers share sessions through Redis: signed in on one, the cookie works on the other,
    and signing out on either ends it for both."""
    import uuid

    from llmrelay.gateway.ui_sessions import Sessions
    from llmrelay.state.redis import RedisState

    prefix = f"llmrelay-test-{uuid.uuid4().hex[:8]}:"
    one, two = RedisState(redis_url, prefix=prefix), RedisState(redis_url, prefix=prefix)
    try:
        first, second = Sessions(one), Sessions(two)
        sid, made = await first.create(admin=False, key_hash="ab" * 32)
        found = await second.find(sid)
        assert found == made and found.key_hash == "ab" * 32 and found.csrf == made.csrf
        raw = [v for k in await one.redis.keys(prefix + "*") if (v := await one.redis.get(k)) is not None]
        assert raw and all(sid not in str(v) for v in raw)  # the id itself is nowhere in Redis
        await second.end(found)
        assert await first.find(sid) is None
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_tenant_allowed_manages_its_own_keys_and_nothing_else(
    gw: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmrelay.gateway import admin_api

    status, _, _ = await call(gw, "POST", "/admin/tenants", {"id": "selfie", "self_keys": True})
    assert status == 201
    status, _, _ = await call(gw, "POST", "/admin/tenants", {"id": "locked"})
    assert status == 201
    own_id, own = await new_key(gw, "selfie")
    other_id, _ = await new_key(gw, "acme")
    _, locked = await new_key(gw, "locked")
    async with Browser(gw) as b:
        status, who, _ = await b.sign_in(own)
        assert status == 200 and who["self_keys"] is True
        status, made, _ = await b.request("POST", "/admin/keys", {"tenant": "selfie", "name": "made-by-tenant"})
        assert status == 201 and made["tenant"] == "selfie" and made["key"].startswith("sk-relay-")
        status, body, _ = await b.request("POST", "/admin/keys", {"tenant": "acme"})
        assert status == 403 and body["error"]["code"] == "other_tenant"
        for path in (f"/admin/keys/{other_id}/revoke", f"/admin/keys/{other_id}/rotate"):
            status, _, _ = await b.request("POST", path)
            assert status == 404, path
        status, _, _ = await b.request("PATCH", f"/admin/keys/{other_id}", {"name": "x"})
        assert status == 404
        assert gw.store.get_key(other_id).revoked_at is None  # type: ignore[union-attr]
        status, body, _ = await b.request("PATCH", f"/admin/keys/{made['id']}", {"budget_usd": 1.5})
        assert status == 200 and body["budget_usd"] == 1.5
        status, body, _ = await b.request("POST", f"/admin/keys/{made['id']}/revoke")
        assert status == 200 and body["status"] == "revoked"
        status, body, _ = await b.request("PATCH", "/admin/tenants/selfie", {"self_keys": False})
        assert status == 403  # a tenant cannot change its own standing
        monkeypatch.setattr(admin_api, "MAX_SELF_KEYS", 2)
        assert (await b.request("POST", "/admin/keys", {"tenant": "selfie"}))[0] == 201
        status, body, _ = await b.request("POST", "/admin/keys", {"tenant": "selfie"})
        assert status == 409 and body["error"]["code"] == "too_many_keys"
    async with Browser(gw) as b:
        await b.sign_in(locked)
        status, body, _ = await b.request("POST", "/admin/keys", {"tenant": "locked"})
        assert status == 403 and body["error"]["code"] == "admin_only"
    status, tenant, _ = await call(gw, "GET", "/admin/tenants/selfie")
    assert tenant["self_keys"] is True
    assert own_id in {k.id for k in gw.store.list_keys("selfie")}


async def test_a_tenant_patch_with_self_keys_null_is_refused_and_changes_nothing(gw: Served) -> None:
    status, _, _ = await call(gw, "POST", "/admin/tenants", {"id": "nullish", "self_keys": True})
    assert status == 201
    status, body, _ = await call(gw, "PATCH", "/admin/tenants/nullish", {"self_keys": None, "rpm": 5})
    assert status == 400 and "self_keys" in body["error"]["message"]
    status, tenant, _ = await call(gw, "GET", "/admin/tenants/nullish")
    assert tenant["self_keys"] is True and tenant["rpm"] is None
    status, tenant, _ = await call(gw, "PATCH", "/admin/tenants/nullish", {"rpm": 5})
    assert status == 200 and tenant["self_keys"] is True and tenant["rpm"] == 5
