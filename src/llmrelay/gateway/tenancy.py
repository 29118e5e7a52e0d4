"""Who is calling: the master key (the operator), a virtual key (one tenant), or
nobody at all in open mode.

Open mode (no master key, allowed on purpose: ``auth: {open: true}`` or
``llmrelay serve --insecure-open``) makes a request without a key the operator
only while the store holds no usable virtual key. Once it does, keys are what
bind requests to their tenant's limits and budgets, so a request without one (or
with a key that is no virtual key) is a 401: nobody escapes a budget by leaving
the key out. Administer such a gateway with ``llmrelay keys`` / ``tenants`` on the
store, or give it a master key.

Virtual keys are looked up by the hash of the secret (the store never holds a
secret) and remembered for ``cache_s`` seconds, so a busy key costs one database
read per interval, not per request. A key revoked, rotated or changed through
this process is forgotten at once; other processes see the change within
``cache_s``.
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from dataclasses import dataclass

from ..store.records import ApiKey, Tenant, hash_secret
from ..store.store import Store
from .http import HTTPError, Scope, header
from .storage import store_call
from .ui_sessions import Session, Sessions, check_csrf, session_id

KEY_CACHE_S = 5.0
_MAX_CACHED = 10_000
_MISSING = "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller. ``admin`` is the operator (master key, or anyone
    in open mode); a virtual key's caller is its tenant's and nothing more."""

    admin: bool
    key: ApiKey | None = None
    tenant: Tenant | None = None

    @property
    def tenant_id(self) -> str | None:
        return self.key.tenant if self.key is not None else None

    @property
    def key_id(self) -> str | None:
        return self.key.id if self.key is not None else None

    @property
    def has_budget(self) -> bool:
        """Whether a budget (the key's or its tenant's) applies to this caller's requests."""
        return (self.key is not None and self.key.budget_usd is not None) or (
            self.tenant is not None and self.tenant.budget_usd is not None
        )

    def may_use(self, model: str) -> bool:
        """Whether the key's allow-list (if any) has ``model``."""
        key = self.key
        return key is None or not key.models or model in key.models

    def check_model(self, model: str) -> None:
        """A key limited to some models may not ask for others (403)."""
        key = self.key
        if key is not None and not self.may_use(model):
            raise HTTPError(
                403, f"this API key may not use the model {model!r}; it may use: {', '.join(key.models)}",
                param="model", code="model_not_allowed",
            )  # fmt: skip


OPERATOR = Caller(admin=True)


def presented_key(scope: Scope) -> str | None:
    """The key as the OpenAI SDKs (``Authorization: Bearer``), the Anthropic SDKs
    (``x-api-key``) or Google's (``x-goog-api-key``; on the Gemini routes also ``?key=``,
    which Google's REST examples use: ``QUERY_KEY_PATHS``) send it."""
    given = header(scope, b"authorization")
    if given and given[:7].lower() == "bearer ":
        return given[7:].strip() or None
    found = header(scope, b"x-api-key") or header(scope, b"x-goog-api-key")
    if found is None and scope["path"].startswith(QUERY_KEY_PATHS):
        found = _query_key(scope.get("query_string", b""))
    return found or None


QUERY_KEY_PATHS = ("/v1beta/", "/v1/models")
"""Where ``?key=`` is read: the Gemini routes, under ``/v1beta/`` and the SDK's ``/v1/models``."""


def _query_key(query: bytes) -> str | None:
    from urllib.parse import parse_qs

    values = parse_qs(query.decode("latin-1"), keep_blank_values=True).get("key")
    return values[-1] if values else None


class Authenticator:
    """Master key and virtual keys -> ``Caller``."""

    def __init__(self, store: Store | None, master_key: str | None, *, cache_s: float = KEY_CACHE_S) -> None:
        self.store = store
        self._master = master_key.encode() if master_key else None
        self._cache_s = cache_s
        self._keys: OrderedDict[str, tuple[float, ApiKey | None, Tenant | None]] = OrderedDict()
        self._any_key: tuple[float, bool] = (0.0, False)  # open mode: (until, the store holds a usable key)
        self.sessions: Sessions | None = None
        """The dashboard's sessions, when it is served (their cookie then stands for a key)."""

    @property
    def open(self) -> bool:
        return self._master is None

    async def caller(self, scope: Scope) -> Caller:
        """The caller of a request; 401 for a missing, unknown, revoked or expired key. A request
        without a key may carry a dashboard session's cookie (``ui_sessions.py``) instead."""
        secret = presented_key(scope)
        if secret is None and self.sessions is not None:
            sid = session_id(scope)
            if sid is not None:
                session = await self.sessions.find(sid)
                if session is None:
                    raise HTTPError(401, "the dashboard session has ended: sign in again", code="session_ended")
                return await self.session_caller(scope, session)
        return await self.caller_for(secret)

    async def caller_for(self, secret: str | None) -> Caller:
        """The caller a key makes (``None``: no key); 401 as for ``caller``."""
        if secret is None:
            if self._master is None:
                return await self._open_operator(_MISSING)
            raise HTTPError(401, _MISSING, code="missing_api_key")
        if self._master is not None and hmac.compare_digest(secret.encode(), self._master):
            return OPERATOR
        key, tenant = await self._lookup(hash_secret(secret))
        if key is None:
            if self._master is None and not secret.startswith("sk-relay-"):
                # open mode: SDKs insist on sending some key; only a virtual key means a tenant
                return await self._open_operator("invalid API key")
            raise HTTPError(401, "invalid API key", code="invalid_api_key")
        return self._usable(key, tenant)

    async def session_caller(self, scope: Scope, session: Session) -> Caller:
        """The caller a dashboard session stands for (a 403 for a write without its CSRF token,
        a 401 when its key no longer works)."""
        check_csrf(scope, session)
        if session.admin:
            return OPERATOR if self._master is not None else await self._open_operator(_MISSING)
        key, tenant = await self._lookup(session.key_hash or "")
        if key is None:  # rotated (its secret is another now) or deleted
            raise HTTPError(401, "the key this session signed in with is no longer valid", code="session_ended")
        return self._usable(key, tenant)

    @staticmethod
    def _usable(key: ApiKey, tenant: Tenant | None) -> Caller:
        reason = key.usable(time.time())
        if reason is not None:
            raise HTTPError(401, f"this API key is {reason} (key id {key.id})", code=f"{reason}_api_key")
        return Caller(admin=False, key=key, tenant=tenant)

    async def _lookup(self, digest: str) -> tuple[ApiKey | None, Tenant | None]:
        if self.store is None:
            return None, None
        now = time.monotonic()
        hit = self._keys.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        key, tenant = await store_call(self._read, digest)
        self._keys[digest] = (now + self._cache_s, key, tenant)
        self._keys.move_to_end(digest)
        while len(self._keys) > _MAX_CACHED:
            self._keys.popitem(last=False)
        return key, tenant

    async def _open_operator(self, why: str) -> Caller:
        """Open mode's operator, unless virtual keys exist (see the module docstring)."""
        until, exists = self._any_key
        now = time.monotonic()
        if until <= now and self.store is not None:
            exists = await store_call(self.store.has_keys)
            self._any_key = (now + self._cache_s, exists)
        if exists:
            raise HTTPError(
                401, f"{why}: this gateway has virtual keys, so every request needs one", code="missing_api_key"
            )
        return OPERATOR

    def _read(self, digest: str) -> tuple[ApiKey | None, Tenant | None]:
        assert self.store is not None
        key = self.store.key_by_hash(digest)
        return key, (self.store.get_tenant(key.tenant) if key is not None else None)

    def forget(self, key_id: str | None = None, tenant: str | None = None) -> None:
        """Drop cached keys (of ``key_id``, of ``tenant``, or all) after a change."""
        self._any_key = (0.0, False)
        for digest, (_, key, _tenant) in list(self._keys.items()):
            if key is None or (key_id is None and tenant is None) or key.id == key_id or key.tenant == tenant:
                del self._keys[digest]


__all__ = ["OPERATOR", "Authenticator", "Caller", "presented_key"]
