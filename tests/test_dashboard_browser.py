"""The dashboard in a real browser: Playwright driving Chromium (Debian's ``/usr/bin/chromium``,
or ``LLMRELAY_TEST_CHROMIUM``) against a gateway on 127.0.0.1 over fake upstreams. Signing
in, every chart drawn from real requests made here, creating and revoking a key, a deployment
going from healthy to cooling down after injected 429s, the usage table and its CSV, the
streamed playground, a tenant's key seeing nothing of another tenant's (pages and the API
behind them), a phone-sized screen and dark mode, and no Content-Security-Policy violation
anywhere. Skipped, saying why, without Playwright or Chromium (``.ci/run`` installs both)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from fakeserver import Reply
from gateways import MASTER, Served, served_gateway
from llmrelay.router import RoutingSettings
from llmrelay.store import Tenant
from test_gateway_openai import CHAT, answer, sse
from test_gateway_tenants import HI, new_key

CHROMIUM = os.environ.get("LLMRELAY_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
WAIT_MS = 10_000


def _skip_reason() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install playwright)"
    if not os.path.exists(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set LLMRELAY_TEST_CHROMIUM)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def cooling() -> AsyncIterator[Served]:
    """A gateway whose deployments rest after a 429 (the default ``gw`` has cooldowns off)."""
    async for served in served_gateway(routing=RoutingSettings(retries=0)):
        yield served


class Page:
    """A browser tab on the dashboard that records console errors and CSP violations."""

    def __init__(self, page: Any, url: str) -> None:
        self.page, self.url = page, url
        self.problems: list[str] = []
        page.on("console", lambda m: self.problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.problems.append(str(e)))

    async def open(self, key: str) -> None:
        await self.page.goto(self.url + "/ui")
        await self.page.fill("#key", key)
        await self.page.click("#sign-in-form button")
        await self.page.wait_for_selector("#nav:not([hidden])", timeout=WAIT_MS)

    async def go(self, name: str) -> None:
        await self.page.click(f"nav a[data-page={name}]")
        await self.page.wait_for_selector(f"#page[data-page={name}]", timeout=WAIT_MS)

    async def fetch_status(self, path: str) -> int:
        """What the page's own ``fetch`` (the session cookie, same origin) gets for ``path``."""
        return int(await self.page.evaluate("async (p) => (await fetch(p)).status", path))

    def clean(self) -> None:
        csp = [p for p in self.problems if "Content Security Policy" in p or "Refused to" in p]
        assert csp == [], csp


async def tab(browser: Any, gw: Served, **context: Any) -> Page:
    made = await browser.new_context(**context)
    return Page(await made.new_page(), gw.url)


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the page did not get there in time")


async def test_signing_in_shows_every_chart_from_real_requests(gw: Served, browser: Any) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")), Reply(json=answer("ok")), Reply(chunks=sse("Hi", "!")))
    _, secret = await new_key(gw, "acme", budget_usd=5.0)
    for _ in range(2):
        await gw.sdk(secret).chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    stream = await gw.sdk(secret).chat.completions.create(model="smart", messages=HI, stream=True)  # type: ignore[arg-type]
    assert [c async for c in stream]
    await gw.app.ledger.flush()  # type: ignore[union-attr]

    t = await tab(browser, gw, viewport={"width": 1280, "height": 900})
    await t.page.goto(gw.url + "/ui")
    await t.page.fill("#key", "sk-wrong")
    await t.page.click("#sign-in-form button")
    await t.page.wait_for_selector(
        "#sign-in-error:not(:empty)", timeout=WAIT_MS
    )  # (the CSP forbids eval: no wait_for_function)
    assert "invalid API key" in await t.page.inner_text("#sign-in-error")
    await t.open(MASTER)
    assert await t.page.input_value("#key") == ""  # the key does not stay in the form
    await t.page.wait_for_selector("[data-chart] canvas", timeout=WAIT_MS)
    titles = await t.page.eval_on_selector_all("[data-chart]", "els => els.map(e => e.dataset.chart)")
    assert titles == ["Requests and errors", "Latency", "Time to first token", "Tokens", "Cost (USD)"]
    assert await t.page.locator("[data-chart] canvas").count() == 5
    assert await t.page.inner_text("[data-tile=requests] .value") == "3"
    await t.page.wait_for_selector("#budget-table tr")
    assert "key" in await t.page.inner_text("#budget-table") and "of $5.00 / month" in await t.page.inner_text(
        "#budget-table"
    )
    assert "acme" in await t.page.inner_text("#spenders")
    await t.page.select_option("#split", "model")
    await t.page.wait_for_selector("[data-chart='Requests'] canvas", timeout=WAIT_MS)
    assert "smart" in await t.page.inner_text("#charts")  # the legend names the series
    for name in ("local storage", "session storage"):
        kind = "localStorage" if name == "local storage" else "sessionStorage"
        assert await t.page.evaluate(f"JSON.stringify(window.{kind})") == "{}", name
    cookies = await t.page.context.cookies()
    assert (
        [c["name"] for c in cookies] == ["llmrelay_session"] and cookies[0]["httpOnly"] and MASTER not in str(cookies)
    )
    assert cookies[0]["sameSite"] == "Strict"
    t.clean()


async def test_creating_editing_and_revoking_tenants_and_keys(gw: Served, browser: Any) -> None:
    t = await tab(browser, gw)
    await t.open(MASTER)
    await t.go("keys")
    await t.page.fill("#new-tenant-id", "acme")
    await t.page.click("#new-tenant-form button")
    await t.page.wait_for_selector("#tenants tr[data-tenant=acme]", timeout=WAIT_MS)
    await t.page.locator("#tenants tr[data-tenant=acme] button", has_text="Edit").click()
    await t.page.fill("#edit-tenant-budget", "9")
    await t.page.check("#edit-tenant-self-keys")
    await t.page.locator("#tenants tr.editing button", has_text="Save").click()
    await t.page.wait_for_selector("#tenants tr.editing", state="detached", timeout=WAIT_MS)
    edited = gw.store.get_tenant("acme")
    assert edited is not None and edited.budget_usd == 9 and edited.self_keys
    await t.page.fill("#new-key-tenant", "acme")
    await t.page.fill("#new-key-name", "from-the-page")
    await t.page.fill("#new-key-budget", "2.5")
    await t.page.click("#new-key-form button")
    await t.page.wait_for_selector("#new-secret", timeout=WAIT_MS)
    secret = await t.page.inner_text("#new-secret")
    assert secret.startswith("sk-relay-")
    [made] = gw.store.list_keys()
    assert made.name == "from-the-page" and made.budget_usd == 2.5
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
    assert (await gw.sdk(secret).chat.completions.create(model="smart", messages=HI)).choices  # type: ignore[arg-type]

    t.page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
    row = t.page.locator(f"#keys tr[data-key={made.id}]")
    await row.locator("button.danger").click()
    await t.page.wait_for_selector(f"#keys tr[data-key={made.id}]", state="detached", timeout=WAIT_MS)
    await t.page.check("#include-revoked")
    await t.page.wait_for_selector(f"#keys tr[data-key={made.id}] .badge.revoked", timeout=WAIT_MS)
    with pytest.raises(Exception, match="401"):
        await gw.sdk(secret).chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    assert secret not in await t.page.content() or await t.page.locator("#new-secret").count() == 1
    t.clean()


async def test_a_deployment_goes_from_healthy_to_cooling_down_and_back_by_hand(cooling: Served, browser: Any) -> None:
    gw = cooling
    t = await tab(browser, gw)
    await t.open(MASTER)
    await t.go("deployments")
    row = "#deployments tr[data-deployment='openai/gpt-4o-mini']"
    await t.page.wait_for_selector(f"{row} .badge.healthy", timeout=WAIT_MS)
    gw.upstream.on(
        "POST", CHAT, Reply(status=429, json={"error": {"message": "slow down"}}, headers={"retry-after": "60"})
    )
    with pytest.raises(Exception, match=r"429|503"):
        await gw.sdk().chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    await t.page.wait_for_selector(f"{row} .badge:not(.healthy)", timeout=WAIT_MS)  # the page refreshes itself
    assert "cooling down" in await t.page.inner_text(row)
    assert "RateLimited" in await t.page.inner_text(f"{row} td.errors")  # its latest errors, with their time
    await t.page.locator(f"{row} button", has_text="Take out").click()
    await t.page.wait_for_selector(f"{row} .badge.disabled", timeout=WAIT_MS)
    assert (await gw.client.health("smart"))[0].manual is False
    await t.page.locator(f"{row} button", has_text="Clear").click()
    await until(lambda: _manual_cleared(gw))
    t.clean()


async def _manual_cleared(gw: Served) -> bool:
    return (await gw.client.health("smart"))[0].manual is None


async def test_usage_table_csv_and_the_streamed_playground(gw: Served, browser: Any) -> None:
    gw.upstream.on("POST", CHAT, Reply(chunks=sse("Bon", "jour", "!"), chunk_delay_s=0.05))
    t = await tab(browser, gw, accept_downloads=True)
    await t.open(MASTER)
    await t.go("playground")
    await t.page.wait_for_selector("#play-model option[value=smart]", state="attached", timeout=WAIT_MS)
    await t.page.select_option("#play-model", "smart")
    await t.page.fill("#play-prompt", "Say hello in French")
    await t.page.click("#play-send")
    await t.page.wait_for_selector("#play-facts [data-fact=deployment]:not(:has-text('…'))", timeout=WAIT_MS)
    assert await t.page.inner_text("#play-answer") == "Bonjour!"
    facts = await t.page.inner_text("#play-facts")
    assert "openai/gpt-4o-mini" in facts and "5 in, 3 out" in facts and "first token" in facts and "cost: $" in facts
    assert gw.upstream.requests[-1].json["messages"][-1]["content"] == "Say hello in French"

    await gw.app.ledger.flush()  # type: ignore[union-attr]
    await t.go("usage")
    await t.page.wait_for_selector("#usage tbody tr", timeout=WAIT_MS)
    assert await t.page.locator("#usage tbody tr").count() == 1
    assert "1\u20131 of 1" in await t.page.inner_text("#usage-count")  # 1-1 with an en dash
    async with t.page.expect_download() as download:
        await t.page.click("#usage-csv")
    path = await (await download.value).path()
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert lines[0].startswith("id,request_id,tenant") and len(lines) == 2 and ",smart," in lines[1]
    t.clean()


async def test_a_tenants_key_sees_nothing_of_another_tenant(gw: Served, browser: Any) -> None:
    gw.upstream.on("POST", CHAT, Reply(json=answer("ok")))
    a_id, a = await new_key(gw, "tenant-a", name="alpha")
    b_id, b = await new_key(gw, "tenant-b", name="beta")
    await gw.sdk(a).chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    for _ in range(3):
        await gw.sdk(b).chat.completions.create(model="smart", messages=HI)  # type: ignore[arg-type]
    await gw.app.ledger.flush()  # type: ignore[union-attr]

    t = await tab(browser, gw)
    await t.open(a)
    assert "tenant tenant-a" in await t.page.inner_text("#who")
    assert await t.page.locator("nav a[data-page=deployments]").is_hidden()
    await t.page.wait_for_selector("[data-tile=requests] .value", timeout=WAIT_MS)
    await until(lambda: _tile_says(t, "1"))
    await t.go("keys")
    await t.page.wait_for_selector(f"#keys tr[data-key={a_id}]", timeout=WAIT_MS)
    assert await t.page.locator("#keys tbody tr").count() == 1 and b_id not in await t.page.content()
    assert await t.page.locator("#new-key-form").count() == 0  # read-only for a tenant
    await t.go("usage")
    await t.page.wait_for_selector("#usage tbody tr", timeout=WAIT_MS)
    assert await t.page.locator("#usage tbody tr").count() == 1 and b_id not in await t.page.content()
    for path, status in (
        ("/admin/usage?tenant=tenant-b", 403),
        ("/admin/usage/series?tenant=tenant-b", 403),
        (f"/admin/keys/{b_id}", 404),
        ("/admin/tenants", 403),
        ("/admin/deployments", 403),
        ("/admin/usage.csv?tenant=tenant-b", 403),
    ):
        assert await t.fetch_status(path) == status, path
    t.page.on("dialog", lambda d: asyncio.ensure_future(d.dismiss()))
    await t.page.goto(gw.url + "/ui#/deployments")  # typed in: the overview instead
    await t.page.wait_for_selector("#page[data-page=overview]", timeout=WAIT_MS)
    t.clean()


async def _tile_says(t: Page, value: str) -> bool:
    return (await t.page.inner_text("[data-tile=requests] .value")) == value


async def test_a_phone_screen_and_dark_mode(gw: Served, browser: Any) -> None:
    t = await tab(browser, gw, viewport={"width": 390, "height": 844}, color_scheme="dark", is_mobile=True)
    await t.open(MASTER)
    for name in ("overview", "keys", "usage", "deployments"):
        await t.go(name)
        await t.page.wait_for_timeout(300)
        wide = await t.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 1, (name, wide)  # wide tables scroll inside their card, the page does not
    background = await t.page.evaluate("getComputedStyle(document.body).backgroundColor")
    red, green, blue = (int(v) for v in background[background.index("(") + 1 : -1].split(",")[:3])
    assert red + green + blue < 150, background
    await t.page.click("#sign-out")
    await t.page.wait_for_selector("#sign-in:not([hidden])", timeout=WAIT_MS)
    assert await t.fetch_status("/admin/keys") == 401
    t.clean()


async def test_a_tenant_managing_its_own_keys_makes_one_from_the_page(gw: Served, browser: Any) -> None:
    gw.store.create_tenant(Tenant(id="selfie", self_keys=True))
    _, own = await new_key(gw, "selfie", name="first")
    t = await tab(browser, gw)
    await t.open(own)
    await t.go("keys")
    await t.page.wait_for_selector("#new-key-form", timeout=WAIT_MS)
    assert await t.page.input_value("#new-key-tenant") == "selfie"  # its own tenant, fixed
    assert await t.page.locator("#new-tenant-form").count() == 0  # tenants stay the master key's
    await t.page.fill("#new-key-name", "second")
    await t.page.click("#new-key-form button")
    await t.page.wait_for_selector("#new-secret", timeout=WAIT_MS)
    assert sorted(k.name for k in gw.store.list_keys("selfie")) == ["first", "second"]
    t.clean()
