"""The dashboard: ``/ui`` and its assets, signing in and out, and the admin routes only it needed.

The page is static (``dashboard_assets/``: HTML, one script, one style sheet, and uPlot
for the charts, vendored with its license), served from the package: no CDN, works
offline. Everything it shows comes from the admin API, called with the session's
cookie (``ui_sessions.py``), so the page can see exactly what the signed-in key may.

Every answer of these routes carries a strict Content-Security-Policy (scripts, styles
and connections from the gateway itself only, no inline script, no framing) and the
other headers that keep a page from being framed, sniffed or leaking its address.
"""

from __future__ import annotations

import csv
import io
import mimetypes
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._json import dumps
from ..store.records import UsageQuery, UsageRecord, hash_secret
from .admin_api import USAGE_PARAMS, operator_only, own_tenant, query_number, refuse_unknown
from .exchange import Exchange
from .http import HTTPError
from .storage import store_call
from .tenancy import Caller
from .ui_sessions import COOKIE, Session, Sessions, check_csrf, cookie, is_https, session_id

if TYPE_CHECKING:
    from .app import Gateway
    from .routes import RouteTable

ASSETS = Path(__file__).with_name("dashboard_assets")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cache-control": "no-store",
}
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
MAX_CSV_ROWS = 10_000


@cache
def _assets() -> dict[str, tuple[bytes, str]]:
    """Every file of ``dashboard_assets`` by its path there (``vendor/uPlot.min.css``), and its
    type, read once: a request can name only these (no ``..``, no hidden files, no folders)."""
    found: dict[str, tuple[bytes, str]] = {}
    for path in ASSETS.rglob("*"):
        name = path.relative_to(ASSETS).as_posix()
        if not path.is_file() or any(part.startswith((".", "_")) for part in name.split("/")):
            continue
        kind = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if kind.startswith("text/") and "charset" not in kind:
            kind += "; charset=utf-8"
        found[name] = (path.read_bytes(), kind)
    return found


def _asset(name: str) -> tuple[bytes, str] | None:
    return _assets().get(name)


async def send_bytes(ex: Exchange, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
    """An answer of ``body`` as ``kind``, with the page's security headers (and ``headers``)."""
    fields = {**PAGE_HEADERS, "content-type": kind, "content-length": str(len(body)), **(headers or {})}
    await ex.send({
        "type": "http.response.start", "status": status,
        "headers": [(k.encode(), v.encode()) for k, v in fields.items()],
    })  # fmt: skip
    await ex.send({"type": "http.response.body", "body": body})


async def page(gw: Gateway, ex: Exchange) -> None:
    """``GET /ui``: the page (it asks ``/ui/session`` who is signed in, and shows the sign-in form if nobody)."""
    found = _asset("index.html")
    assert found is not None, "the package lacks llmrelay/gateway/dashboard_assets/index.html"
    await send_bytes(ex, 200, *found)


async def asset(gw: Gateway, ex: Exchange) -> None:
    """``GET /ui/assets/{name:path}``."""
    found = _asset(ex.params["name"])
    if found is None:
        raise HTTPError(404, f"no dashboard asset {ex.params['name'][:100]!r}")
    await send_bytes(ex, 200, *found, {"cache-control": "no-cache"})


def _who(gw: Gateway, caller: Caller) -> dict[str, Any]:
    return {
        "admin": caller.admin, "tenant": caller.tenant_id, "key_id": caller.key_id,
        "key_name": caller.key.name if caller.key is not None else None,
        "self_keys": caller.admin or (caller.tenant is not None and caller.tenant.self_keys),
        "open": gw.auth.open,
    }  # fmt: skip


def _sessions(gw: Gateway) -> Sessions:
    sessions = gw.auth.sessions
    assert sessions is not None, "the dashboard's routes are only served with its sessions"
    return sessions


async def _session(gw: Gateway, ex: Exchange) -> Session | None:
    """The session the request's cookie names, if it holds one that has not ended."""
    sid = session_id(ex.scope)
    return await _sessions(gw).find(sid) if sid is not None else None


async def sign_in(gw: Gateway, ex: Exchange) -> None:
    """``POST /ui/session`` with ``{"key": "..."}``: a session for that key, in a cookie."""
    body = await gw.json_request(ex)
    secret = body.get("key")
    if set(body) - {"key"} or not (secret is None or isinstance(secret, str)):
        raise HTTPError(400, 'send {"key": "<master key or virtual key>"} and nothing else', param="key")
    if secret is not None and (len(secret) > 256 or not secret.isprintable() or secret.strip() != secret):
        raise HTTPError(400, "the key must be up to 256 printable characters, without spaces around", param="key")
    caller = await gw.auth.caller_for(secret or None)
    key_hash = hash_secret(secret) if caller.key is not None and secret else None
    sid, session = await _sessions(gw).create(admin=caller.admin, key_hash=key_hash)
    answer = {**_who(gw, caller), "csrf": session.csrf}
    await send_bytes(ex, 200, dumps(answer), "application/json", {"set-cookie": cookie(sid, secure=is_https(ex.scope))})


async def whoami(gw: Gateway, ex: Exchange) -> None:
    """``GET /ui/session``: who the cookie's session is, and its CSRF token (401 without one)."""
    session = await _session(gw, ex)
    if session is None:
        raise HTTPError(401, "not signed in", code="session_ended")
    caller = await gw.auth.session_caller(ex.scope, session)
    await send_bytes(ex, 200, dumps({**_who(gw, caller), "csrf": session.csrf}), "application/json")


async def sign_out(gw: Gateway, ex: Exchange) -> None:
    """``DELETE /ui/session``: the session ends, the cookie goes (its CSRF token is needed)."""
    session = await _session(gw, ex)
    if session is not None:
        check_csrf(ex.scope, session)
        await _sessions(gw).end(session)
    gone = cookie("", secure=is_https(ex.scope), max_age=0)
    await send_bytes(ex, 200, dumps({"signed_out": True}), "application/json", {"set-cookie": gone})


# ---- admin routes the dashboard reads ----------------------------------------------------


async def deployments(gw: Gateway, ex: Exchange) -> None:
    """``GET /admin/deployments``: every configured deployment's health as the router sees it, with
    its latest errors, newest first (upstream addresses hidden, as in any answer)."""
    operator_only(ex.caller)
    rows = []
    for h in await gw.health():
        check = h.check
        rows.append({
            "group": h.group, "deployment": h.deployment, "status": h.status, "reason": h.reason,
            "score": h.score, "breaker": h.breaker, "cooldown_s": h.cooldown_s, "in_flight": h.in_flight,
            "calls": h.calls, "failures": h.failures,
            "success_rate": None if not h.calls else round(1 - h.failures / h.calls, 4),
            "latency_ms": h.latency_ms, "ttft_ms": h.ttft_ms, "last_error": h.last_error, "manual": h.manual,
            "recent_errors": [{"at": at, "error": gw.scrub(text)} for at, text in reversed(h.recent_errors)],
            "check": None if check is None else {"ok": check.ok, "at": check.at, "error": check.error},
        })  # fmt: skip
    await ex.reply(200, {"object": "list", "data": rows})


async def set_deployment_health(gw: Gateway, ex: Exchange) -> None:
    """``PUT /admin/deployments/{deployment}/health`` with ``{"healthy": true | false | null}``:
    a manual override (``null`` clears it), as ``AsyncClient.set_health``."""
    operator_only(ex.caller)
    body = await gw.json_request(ex)
    healthy = body.get("healthy", "missing")
    if set(body) != {"healthy"} or healthy not in (True, False, None):
        raise HTTPError(400, 'send {"healthy": true, false or null} and nothing else', param="healthy")
    known = {h.deployment for h in await gw.health()}
    name = ex.params["deployment"]
    if name not in known:
        raise HTTPError(404, f"no deployment {name[:200]!r}")
    await gw.client.set_health(name, healthy)
    await ex.reply(200, {"deployment": name, "manual": healthy})


async def usage_csv(gw: Gateway, ex: Exchange) -> None:
    """``GET /admin/usage.csv``: the ledger records ``/admin/usage``'s filters match, as CSV
    (newest first, ``limit`` up to 10,000), a file the browser saves."""
    query = ex.query
    refuse_unknown(query, USAGE_PARAMS - {"group_by"})
    asked = UsageQuery(
        tenant=own_tenant(ex.caller, query.get("tenant")), key_id=query.get("key_id"), model=query.get("model"),
        since=query_number(query, "since"), until=query_number(query, "until"),
        limit=int(query_number(query, "limit", MAX_CSV_ROWS, 1, MAX_CSV_ROWS)),
        offset=int(query_number(query, "offset", 0, 0, 1e12)),
    )  # fmt: skip
    rows = await store_call(gw.store_().usage, asked)
    out = io.StringIO()
    names = [f for f in UsageRecord.__dataclass_fields__]
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(names)
    for row in rows:
        writer.writerow(_cell(getattr(row, n)) for n in names)
    headers = {"content-disposition": 'attachment; filename="llmrelay-usage.csv"'}
    await send_bytes(ex, 200, out.getvalue().encode(), "text/csv; charset=utf-8", headers)


def _cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not run as a formula (``=``, ``+``, ``-``, ``@`` lead)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def add_page_routes(routes: RouteTable) -> None:
    """The page, its assets and its sessions (the admin routes above are in the gateway's table)."""
    routes.add("GET", "/ui", page, auth=False)
    routes.add("GET", "/ui/", page, auth=False)
    routes.add("GET", "/ui/assets/{name:path}", asset, auth=False)
    routes.add("POST", "/ui/session", sign_in, auth=False)
    routes.add("GET", "/ui/session", whoami, auth=False)
    routes.add("DELETE", "/ui/session", sign_out, auth=False)


__all__ = ["ASSETS", "COOKIE", "CSP", "add_page_routes", "deployments", "set_deployment_health", "usage_csv"]
