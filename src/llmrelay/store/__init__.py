"""The store: what must survive a restart (tenants, virtual keys, the usage
ledger, conversations), in SQLite by default or PostgreSQL, with migrations.

``Store`` needs SQLAlchemy (the ``gateway`` extra; ``postgres`` adds psycopg)
and is imported on first use, so the records and ``default_store_url`` are
available without it. See docs/store.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .location import default_spool_dir, default_store_url
from .records import (
    ApiKey,
    Conflict,
    Conversation,
    ConversationInfo,
    Limits,
    NotFoundError,
    Period,
    StoredResponse,
    StoreError,
    StoreUnavailable,
    Tenant,
    UsageQuery,
    UsageRecord,
    hash_secret,
    new_secret,
)

if TYPE_CHECKING:
    from .store import Store

__all__ = [
    "ApiKey",
    "Conflict",
    "Conversation",
    "ConversationInfo",
    "Limits",
    "NotFoundError",
    "Period",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoredResponse",
    "Tenant",
    "UsageQuery",
    "UsageRecord",
    "default_spool_dir",
    "default_store_url",
    "hash_secret",
    "new_secret",
]


def __getattr__(name: str) -> Any:
    if name == "Store":
        from .store import Store

        return Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
