"""The screenshots of docs/dashboard.md, from a seeded demo gateway, in Chromium.

    python scripts/dashboard_screenshots.py [--out docs/img] [--chromium /usr/bin/chromium] [--dark]

Starts, all on 127.0.0.1 and in a temporary folder: a stand-in OpenAI upstream (answers
every chat completion, streamed or not; the deployment ``flaky`` answers 429 with a
``retry-after`` of 10 minutes), and ``llmrelay serve``'s app on uvicorn with three tenants,
their keys and budgets, and a week of synthetic ledger rows written as the ledger writes
them. Then it makes a few real requests (so the router has records, and ``flaky`` cools
down), signs the dashboard in with the master key and saves ``dashboard-overview.png``,
``dashboard-deployments.png`` and ``dashboard-keys.png`` (1280 px wide) in ``--out``.
Needs the test extra (Playwright) and a Chromium. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from aiohttp import web

from llmrelay.gateway.factory import create_app
from llmrelay.gateway.server import GuardedHttpToolsProtocol
from llmrelay.store import Store, Tenant, UsageRecord

MASTER = "sk-demo-master-key-0123456789"
CONFIG = """\
providers:
  - {{name: steady, kind: openai, base_url: "{up}/steady/v1", api_key: sk-up}}
  - {{name: flaky, kind: openai, base_url: "{up}/flaky/v1", api_key: sk-up}}
models:
  - name: gpt-4o-mini
    deployments: [{{provider: steady, model: gpt-4o-mini}}, {{provider: flaky, model: gpt-4o-mini}}]
  - name: claude-haiku
    deployments: [{{provider: steady, model: claude-haiku-4-5}}]
  - name: embed
    deployments: [{{provider: steady, model: text-embedding-3-small}}]
auth: {{master_key: {master}}}
store: {{url: "sqlite:///{db}"}}
routing: {{retries: 1}}
"""
MODELS = ["gpt-4o-mini", "claude-haiku", "embed"]
TENANTS = {"acme": 40.0, "globex": 15.0, "initech": None}


async def upstream(request: web.Request) -> web.StreamResponse:
    """A chat completion from the stand-in provider (the ``flaky`` one is always rate limited)."""
    if request.match_info["who"] == "flaky":
        return web.json_response({"error": {"message": "rate limited"}}, status=429, headers={"retry-after": "600"})
    body = await request.json()
    words = ["Here", " is", " a", " short", " answer", "."]
    usage = {"prompt_tokens": 12, "completion_tokens": len(words), "total_tokens": 12 + len(words)}
    if not body.get("stream"):
        message = {"role": "assistant", "content": "".join(words)}
        return web.json_response({
            "id": "c1", "object": "chat.completion", "created": int(time.time()), "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}], "usage": usage,
        })  # fmt: skip
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    for word in words:
        chunk = {"id": "c1", "object": "chat.completion.chunk", "model": body["model"],
                 "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}  # fmt: skip
        await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await asyncio.sleep(0.03)
    end = {"id": "c1", "object": "chat.completion.chunk", "model": body["model"], "usage": usage,
           "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}  # fmt: skip
    await response.write(b"data: " + json.dumps(end).encode() + b"\n\ndata: [DONE]\n\n")
    return response


@contextlib.asynccontextmanager
async def serving_upstream() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/{who}/v1/chat/completions", upstream)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def seed(db: Path, days: int = 7, seed: int = 5) -> None:
    """Tenants, keys (with budgets) and ``days`` of ledger rows ending now."""
    rnd = random.Random(seed)
    now = time.time()
    with Store.open(f"sqlite:///{db}") as store:
        keys = []
        for tenant, budget in TENANTS.items():
            store.create_tenant(Tenant(id=tenant, budget_usd=budget, budget_period="month", rpm=600))
            for name in ("backend", "batch-jobs"):
                key, _ = store.create_key(tenant, name=f"{tenant}-{name}", budget_usd=budget and budget / 4)
                keys.append(key)
        records = []
        for n in range(days * 24 * 60):
            t = now - days * 86400 + n * 60
            busy = 6 + 5 * (1 + math.sin(t / 86400 * 6.283))
            for i in range(rnd.randint(0, int(busy))):
                key = rnd.choice(keys)
                model = rnd.choices(MODELS, [6, 3, 1])[0]
                status = 200 if rnd.random() > 0.03 else rnd.choice((429, 500, 502))
                latency = rnd.lognormvariate(6.3, 0.5)
                prompt, completion = rnd.randint(50, 3000), rnd.randint(0 if model == "embed" else 20, 600)
                records.append(UsageRecord(
                    id=f"seed-{n}-{i}", request_id=f"seed-{n}-{i}", tenant=key.tenant, key_id=key.id,
                    route="/v1/chat/completions", model=model, deployment=f"steady/{model}", status=status,
                    prompt_tokens=prompt, completion_tokens=completion if model != "embed" else 0,
                    cost_usd=(prompt * 0.15 + completion * 0.6) / 1e6 * (8 if model == "claude-haiku" else 1),
                    latency_ms=latency, upstream_ms=latency * 0.95, created_at=t + rnd.random() * 60,
                    ttft_ms=latency * rnd.uniform(0.2, 0.5) if rnd.random() < 0.6 else None,
                    error=None if status < 400 else "upstream_error",
                ))  # fmt: skip
        for start in range(0, len(records), 500):
            store.add_usage(records[start : start + 500])


async def shoot(base: str, out: Path, chromium: str, dark: bool) -> list[Path]:
    from playwright.async_api import async_playwright

    saved = []
    suffix = "-dark" if dark else ""
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        context = await browser.new_context(
            viewport={"width": 1280, "height": 900}, color_scheme="dark" if dark else "light", device_scale_factor=1
        )
        page = await context.new_page()
        await page.goto(base + "/ui")
        await page.fill("#key", MASTER)
        await page.click("#sign-in-form button")
        await page.wait_for_selector("#nav:not([hidden])", timeout=10_000)
        await page.select_option("#range", "7d")
        await page.select_option("#split", "model")
        await page.wait_for_selector("[data-chart='Requests'] canvas", timeout=10_000)
        await page.wait_for_selector("#budget-table tr", timeout=10_000)
        await page.wait_for_timeout(500)
        for name, ready in (("overview", None), ("deployments", "#deployments tbody tr"), ("keys", "#keys tbody tr")):
            if ready is not None:
                await page.click(f"nav a[data-page={name}]")
                await page.wait_for_selector(ready, timeout=10_000)
                await page.wait_for_timeout(300)
            path = out / f"dashboard-{name}{suffix}.png"
            await page.screenshot(path=str(path), full_page=True)
            saved.append(path)
        await browser.close()
    return saved


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "img")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--dark", action="store_true", help="in dark mode (files end in -dark)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "demo.db"
        async with serving_upstream() as up:
            config = Path(folder) / "llmrelay.yaml"
            config.write_text(CONFIG.format(up=up, master=MASTER, db=db))
            seed(db)
            os.environ["LLMRELAY_CONFIG"] = str(config)
            app = create_app()
            server = uvicorn.Server(uvicorn.Config(
                app, host="127.0.0.1", port=0, lifespan="on", log_level="warning", http=GuardedHttpToolsProtocol,
            ))  # fmt: skip
            task = asyncio.create_task(server.serve())
            for _ in range(200):
                if server.started:
                    break
                await asyncio.sleep(0.05)
            base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
            try:
                from openai import AsyncOpenAI

                sdk = AsyncOpenAI(base_url=base + "/v1", api_key=MASTER, max_retries=0)
                for i in range(12):
                    model = "gpt-4o-mini" if i % 3 else "claude-haiku"
                    with contextlib.suppress(Exception):
                        await sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}])
                await sdk.close()
                for path in await shoot(base, args.out, args.chromium, args.dark):
                    print(path)
            finally:
                server.should_exit = True
                await asyncio.wait_for(task, 20)


if __name__ == "__main__":
    asyncio.run(main())
