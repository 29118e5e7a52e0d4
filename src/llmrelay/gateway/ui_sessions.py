"""Dashboard sessions: a signed-in browser holds a random session id in a cookie, never a key.

Signing in (``POST /ui/session`` with the key in the JSON body) checks the key as any
request's would, then keeps server-side, in the state backend (so every worker of a
gateway sees it, and Redis when the gateway is configured with it), who signed in:
``admin`` for the master key (or open mode's operator), or the SHA-256 of a virtual
key's secret, which the store already holds; never the secret. The browser gets the
session id in an ``HttpOnly``, ``SameSite=Strict`` cookie (``Secure`` behind HTTPS),
and a CSRF token in the answer's body, which the page keeps in memory only.

A request carrying the cookie and no key is that caller's. Every request but ``GET``
and ``HEAD`` must also send the CSRF token in ``x-csrf-token`` (compared in constant
time): a page of another site cannot read it, and ``SameSite=Strict`` keeps the
cookie off its requests too. A virtual key's session ends when the key is revoked,
rotated or expires (it is looked up by its hash on every request, through the key
cache), and any session after ``SESSION_TTL_S`` idle, or on signing out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING

from .. import _json
from .http import HTTPError, Scope, header

if TYPE_CHECKING:
    from ..state.base import StateBackend

COOKIE = "llmrelay_session"
SESSION_TTL_S = 8 * 3600.0
"""A session not used for this long ends (each use starts it again)."""
MAX_SIGN_INS = 200
"""Sessions one key may open per ``SESSION_TTL_S``."""
_PREFIX = "ui-session:"
_SAFE_METHODS = frozenset(("GET", "HEAD"))
_ID_BYTES = 32


@dataclass(frozen=True, slots=True)
class Session:
    """Who signed in: ``admin``, or the virtual key whose secret hashes to ``key_hash``."""

    admin: bool
    key_hash: str | None
    csrf: str
    id_hash: str

    def to_json(self) -> str:
        return _json.dumps_str({"admin": self.admin, "key_hash": self.key_hash, "csrf": self.csrf})


def _hash(session_id: str) -> str:
    """Session ids are kept hashed too: whoever reads the state backend cannot sign in with them."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def session_id(scope: Scope) -> str | None:
    """The session id the request's cookie holds, if any (a malformed cookie header: none)."""
    raw = header(scope, b"cookie")
    if not raw or COOKIE not in raw:
        return None
    try:
        jar = SimpleCookie(raw)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    value = morsel.value if morsel is not None else ""
    return value if 20 <= len(value) <= 100 and value.replace("-", "").replace("_", "").isalnum() else None


def cookie(value: str, *, secure: bool, max_age: float = SESSION_TTL_S) -> str:
    """The ``set-cookie`` value that gives the browser ``value`` (``""`` with ``max_age=0``: removes it)."""
    flags = f"; Path=/; HttpOnly; SameSite=Strict; Max-Age={int(max_age)}"
    return f"{COOKIE}={value}{flags}{'; Secure' if secure else ''}"


def is_https(scope: Scope) -> bool:
    """Whether the browser reached the gateway over HTTPS (directly, or as a proxy says)."""
    forwarded = header(scope, b"x-forwarded-proto")
    return scope.get("scheme") == "https" or (forwarded or "").split(",")[0].strip().lower() == "https"


class Sessions:
    """Sessions in the state backend, by the hash of their id."""

    def __init__(self, state: StateBackend, *, ttl_s: float = SESSION_TTL_S) -> None:
        self._state = state
        self._ttl_s = ttl_s

    async def create(self, *, admin: bool, key_hash: str | None) -> tuple[str, Session]:
        """A new session; its id (for the cookie, and nowhere else) and what it holds. A key
        signs in at most ``MAX_SIGN_INS`` times per ``ttl_s`` (a 429 past it): a script signing
        in again and again cannot fill the state backend with sessions."""
        signer = f"{_PREFIX}count:{key_hash or 'admin'}"
        if await self._state.incr(signer, 1, ttl_s=self._ttl_s) > MAX_SIGN_INS:
            raise HTTPError(
                429, f"this key signed in {MAX_SIGN_INS} times lately: sign out elsewhere, or wait",
                code="too_many_sessions",
            )  # fmt: skip
        sid = secrets.token_urlsafe(_ID_BYTES)
        made = Session(admin=admin, key_hash=key_hash, csrf=secrets.token_urlsafe(_ID_BYTES), id_hash=_hash(sid))
        await self._state.set(_PREFIX + made.id_hash, made.to_json(), ttl_s=self._ttl_s)
        return sid, made

    async def find(self, sid: str) -> Session | None:
        """The session of id ``sid`` (its idle time starts again), or ``None``."""
        id_hash = _hash(sid)
        raw = await self._state.get(_PREFIX + id_hash)
        if raw is None:
            return None
        try:
            data = _json.loads(raw)
            found = Session(admin=data["admin"] is True, key_hash=data["key_hash"], csrf=data["csrf"], id_hash=id_hash)
        except (ValueError, KeyError, TypeError):
            return None
        await self._state.set(_PREFIX + id_hash, raw, ttl_s=self._ttl_s)
        return found

    async def end(self, session: Session) -> None:
        await self._state.delete(_PREFIX + session.id_hash)


def check_csrf(scope: Scope, session: Session) -> None:
    """A 403 for a request that changes something with the cookie but without the session's token."""
    if scope.get("method", "GET") in _SAFE_METHODS:
        return
    given = header(scope, b"x-csrf-token") or ""
    if not hmac.compare_digest(given.encode(), session.csrf.encode()):
        raise HTTPError(
            403, "this request needs the session's CSRF token in 'x-csrf-token' (sign in again)", code="csrf_failed"
        )


__all__ = [
    "COOKIE",
    "MAX_SIGN_INS",
    "SESSION_TTL_S",
    "Session",
    "Sessions",
    "check_csrf",
    "cookie",
    "is_https",
    "session_id",
]
