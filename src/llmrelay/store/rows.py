"""Rows to records and back, and the small checks the store's methods share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Connection, Insert, Row, Table, select

from .. import _json
from .records import ApiKey, NotFoundError, Tenant, limits_from_json, limits_to_json
from .schema import api_keys

MAX_CONVERSATION_ID = 128


def insert_ignore(conn: Connection, table: Table) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` in ``conn``'s dialect."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


@cache
def bulk_insert_ignore(dialect: str, table: str, columns: Sequence[str], rows: int, *, returning: str = "") -> str:
    """One DB-API ``INSERT`` of ``rows`` rows of ``columns`` (multi-row ``VALUES``, in the
    parameter style of ``dialect``'s driver) that skips rows whose key exists, and gives back
    the ``returning`` column of the rows it added."""
    mark = "%s" if dialect == "postgresql" else "?"
    one = f"({', '.join([mark] * len(columns))})"
    values = ", ".join([one] * rows)
    names = ", ".join(columns)
    back = f" RETURNING {returning}" if returning else ""
    if dialect == "postgresql":
        return f"INSERT INTO {table} ({names}) VALUES {values} ON CONFLICT DO NOTHING{back}"
    return f"INSERT OR IGNORE INTO {table} ({names}) VALUES {values}{back}"


def check_changes(what: str, changes: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ValueError(f"cannot change a {what}'s {', '.join(unknown)} (can change: {', '.join(sorted(allowed))})")


def check_conversation_id(conversation_id: object) -> None:
    if not isinstance(conversation_id, str) or not conversation_id or len(conversation_id) > MAX_CONVERSATION_ID:
        raise ValueError(f"conversation id must be 1 to {MAX_CONVERSATION_ID} characters, not {conversation_id!r}")


def encode_message(index: int, message: Mapping[str, Any]) -> str:
    if not isinstance(message, Mapping):
        raise ValueError(f"message {index} must be a mapping (an OpenAI message), not {type(message).__name__}")
    try:
        return _json.dumps_str(dict(message))
    except TypeError as exc:
        raise ValueError(f"message {index} is not JSON-serialisable: {exc}") from None


def tenant_row(tenant: Tenant) -> dict[str, Any]:
    return {
        "id": tenant.id,
        "rpm": tenant.rpm,
        "tpm": tenant.tpm,
        "budget_usd": tenant.budget_usd,
        "budget_period": tenant.budget_period,
        "model_limits": _json.dumps_str(limits_to_json(tenant.model_limits)),
        "created_at": tenant.created_at,
        "max_parallel": tenant.max_parallel,
        "self_keys": tenant.self_keys,
    }


def tenant_from_row(row: Row[Any]) -> Tenant:
    return Tenant(
        id=row.id,
        rpm=row.rpm,
        tpm=row.tpm,
        budget_usd=row.budget_usd,
        budget_period=row.budget_period,
        model_limits=limits_from_json(_json.loads(row.model_limits)),
        created_at=row.created_at,
        max_parallel=row.max_parallel,
        self_keys=bool(row.self_keys),
    )


def key_row(key: ApiKey, secret_hash: str) -> dict[str, Any]:
    return {
        "id": key.id,
        "tenant": key.tenant,
        "name": key.name,
        "prefix": key.prefix,
        "secret_hash": secret_hash,
        "models": _json.dumps_str(list(key.models)),
        "expires_at": key.expires_at,
        "rpm": key.rpm,
        "tpm": key.tpm,
        "budget_usd": key.budget_usd,
        "budget_period": key.budget_period,
        "model_limits": _json.dumps_str(limits_to_json(key.model_limits)),
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
        "rotated_at": key.rotated_at,
        "max_parallel": key.max_parallel,
    }


def key_from_row(row: Row[Any]) -> ApiKey:
    return ApiKey(
        id=row.id,
        tenant=row.tenant,
        name=row.name,
        prefix=row.prefix,
        models=tuple(_json.loads(row.models)),
        expires_at=row.expires_at,
        rpm=row.rpm,
        tpm=row.tpm,
        budget_usd=row.budget_usd,
        budget_period=row.budget_period,
        model_limits=limits_from_json(_json.loads(row.model_limits)),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        rotated_at=row.rotated_at,
        max_parallel=row.max_parallel,
    )


def locked_key(conn: Connection, id: str) -> ApiKey:  # noqa: A002
    """The key ``id``, its row locked for this transaction; ``NotFoundError`` if absent."""
    row = conn.execute(select(api_keys).where(api_keys.c.id == id).with_for_update()).first()
    if row is None:
        raise NotFoundError(f"no key {id!r}")
    return key_from_row(row)
