"""``Store``: tenants, virtual keys, the usage ledger and conversations in SQLite
or PostgreSQL.

Synchronous and thread-safe (a connection pool underneath; an in-memory SQLite
database is shared by one connection and serialised by a lock). Async callers
run its methods in ``asyncio.to_thread``. Every database failure is a
``StoreError``; bad arguments are a ``ValueError`` naming the field.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from typing import Any, Literal

from sqlalchemy import Connection, Engine, delete, func, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from .. import _json
from . import rollup
from .engine import db_reason, is_memory, make_engine, redact, write_transaction
from .ledger import COLUMNS as USAGE_COLUMNS
from .ledger import check_group_by, records_statement, totals_rows, totals_statement, usage_params, usage_record
from .ledger import conditions as usage_conditions
from .migrations import migrate
from .records import (
    PREFIX_CHARS,
    ApiKey,
    Conflict,
    Conversation,
    ConversationInfo,
    Limits,
    NotFoundError,
    Period,
    SeriesQuery,
    StoreError,
    StoreUnavailable,
    Tenant,
    UsageQuery,
    UsageRecord,
    check_new_tenant,
    check_slug,
    hash_secret,
    new_secret,
)
from .responses import ResponseTable
from .rows import (
    bulk_insert_ignore,
    check_changes,
    check_conversation_id,
    encode_message,
    insert_ignore,
    key_from_row,
    key_row,
    locked_key,
    tenant_from_row,
    tenant_row,
)
from .schema import api_keys, conversation_messages, conversations, tenants, usage
from .series import UsageSeries, series_result, series_statement

TENANT_CHANGES = frozenset(("rpm", "tpm", "budget_usd", "budget_period", "model_limits", "max_parallel", "self_keys"))
KEY_CHANGES = frozenset(
    ("name", "models", "expires_at", "rpm", "tpm", "budget_usd", "budget_period", "model_limits", "max_parallel")
)


_ROWS_PER_INSERT = 100
"""Rows per multi-row ``INSERT`` of the ledger (2,000 parameters)."""


class Store:
    """What must survive a restart. ``Store.open(url)`` connects and migrates;
    ``Store(engine)`` wraps an engine from ``engine.make_engine`` as it is."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock = clock
        self._lock = threading.RLock() if is_memory(engine.url) else None
        self.responses = ResponseTable(self)
        """Stored Responses API answers (responses.py)."""

    @classmethod
    def open(cls, url: str) -> Store:
        """The store at ``url`` (``sqlite:///path`` or ``postgresql://...``), its
        schema brought up to date. ``StoreError`` when it cannot be reached, its
        scheme is not supported, or its schema is newer than this code."""
        engine = make_engine(url)
        try:
            migrate(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @property
    def url(self) -> str:
        """The database URL, its password replaced by ``***``."""
        return redact(self._engine.url)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def close(self) -> None:
        """Close the pooled connections (the store reconnects if used again)."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def ping(self) -> None:
        """Return when the database answers a query; ``StoreError`` when it does not."""
        try:
            with self._guard(), self._engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"the database at {self.url} does not answer: {db_reason(exc)}") from exc

    # ------------------------------------------------------------ plumbing

    def _guard(self) -> AbstractContextManager[Any]:
        return self._lock if self._lock is not None else nullcontext()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._guard():
            try:
                with self._engine.connect() as conn:
                    yield conn
            except SQLAlchemyError as exc:
                raise StoreUnavailable(f"store read failed: {db_reason(exc)}") from exc

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._guard():
            try:
                with write_transaction(self._engine) as conn:
                    yield conn
            except SQLAlchemyError as exc:
                raise StoreUnavailable(f"store write failed: {db_reason(exc)}") from exc

    # ------------------------------------------------------------ tenants

    def create_tenant(self, tenant: Tenant) -> Tenant:
        """Add ``tenant`` (its ``created_at`` set now); ``Conflict`` if the id exists."""
        check_new_tenant(tenant.id)
        created = replace(tenant, created_at=self._clock())
        with self._write() as conn:
            added = conn.execute(insert_ignore(conn, tenants).values(tenant_row(created)).returning(tenants.c.id))
            if added.first() is None:
                raise Conflict(f"tenant {tenant.id!r} already exists")
        return created

    def get_tenant(self, id: str) -> Tenant | None:  # noqa: A002 - the API's name
        with self._read() as conn:
            row = conn.execute(select(tenants).where(tenants.c.id == id)).first()
        return None if row is None else tenant_from_row(row)

    def list_tenants(self) -> list[Tenant]:
        with self._read() as conn:
            return [tenant_from_row(row) for row in conn.execute(select(tenants).order_by(tenants.c.id))]

    def update_tenant(self, id: str, **changes: Any) -> Tenant:  # noqa: A002
        """Change some of ``rpm``, ``tpm``, ``budget_usd``, ``budget_period``,
        ``model_limits``; ``NotFoundError`` if there is no such tenant."""
        check_changes("tenant", changes, TENANT_CHANGES)
        with self._write() as conn:
            row = conn.execute(select(tenants).where(tenants.c.id == id).with_for_update()).first()
            if row is None:
                raise NotFoundError(f"no tenant {id!r}")
            updated = replace(tenant_from_row(row), **changes)
            values = tenant_row(updated)
            conn.execute(update(tenants).where(tenants.c.id == id).values({k: values[k] for k in TENANT_CHANGES}))
        return updated

    # ------------------------------------------------------------ keys

    def create_key(
        self,
        tenant: str,
        *,
        name: str = "",
        models: Sequence[str] = (),
        expires_at: float | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        budget_usd: float | None = None,
        budget_period: Period = "month",
        model_limits: Mapping[str, Limits] | None = None,
        max_parallel: int | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key for ``tenant`` (created if absent) and its secret. The
        secret is returned this once: the store keeps only its hash."""
        if isinstance(models, str):
            raise ValueError(f"models must be a list of model names, not the string {models!r}")
        check_new_tenant(tenant)
        now = self._clock()
        secret = new_secret()
        key = ApiKey(
            id="key_" + secrets.token_hex(8),
            tenant=tenant,
            name=name,
            prefix=secret[:PREFIX_CHARS],
            models=tuple(models),
            expires_at=expires_at,
            rpm=rpm,
            tpm=tpm,
            budget_usd=budget_usd,
            budget_period=budget_period,
            model_limits=model_limits or {},
            created_at=now,
            max_parallel=max_parallel,
        )
        with self._write() as conn:
            conn.execute(insert_ignore(conn, tenants).values(tenant_row(Tenant(tenant, created_at=now))))
            conn.execute(insert(api_keys).values(key_row(key, hash_secret(secret))))
        return key, secret

    def key_by_secret(self, secret: str) -> ApiKey | None:
        """The key whose secret this is, revoked and expired ones included (see ``ApiKey.usable``)."""
        return self.key_by_hash(hash_secret(secret))

    def key_by_hash(self, secret_hash: str) -> ApiKey | None:
        """The key whose secret hashes (``hash_secret``) to ``secret_hash``, as ``key_by_secret``."""
        with self._read() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.secret_hash == secret_hash)).first()
        return None if row is None else key_from_row(row)

    def has_keys(self) -> bool:
        """Whether any key that is not revoked exists (expired ones count: they were meant to be needed)."""
        with self._read() as conn:
            found = conn.execute(select(api_keys.c.id).where(api_keys.c.revoked_at.is_(None)).limit(1)).first()
        return found is not None

    def get_key(self, id: str) -> ApiKey | None:  # noqa: A002
        with self._read() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == id)).first()
        return None if row is None else key_from_row(row)

    def list_keys(self, tenant: str | None = None, include_revoked: bool = False) -> list[ApiKey]:
        """Keys, oldest first; of ``tenant`` only when given; revoked ones only on request."""
        stmt = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if tenant is not None:
            stmt = stmt.where(api_keys.c.tenant == tenant)
        if not include_revoked:
            stmt = stmt.where(api_keys.c.revoked_at.is_(None))
        with self._read() as conn:
            return [key_from_row(row) for row in conn.execute(stmt)]

    def revoke_key(self, id: str) -> ApiKey:  # noqa: A002
        """Revoke the key (its secret stops working); revoking again changes nothing."""
        with self._write() as conn:
            key = locked_key(conn, id)
            if key.revoked_at is not None:
                return key
            now = self._clock()
            conn.execute(update(api_keys).where(api_keys.c.id == id).values(revoked_at=now))
        return replace(key, revoked_at=now)

    def rotate_key(self, id: str) -> tuple[ApiKey, str]:  # noqa: A002
        """Give the key a new secret (returned, as at creation); the old one stops
        working at once. A revoked key cannot be rotated (``StoreError``)."""
        with self._write() as conn:
            key = locked_key(conn, id)
            if key.revoked_at is not None:
                raise StoreError(f"key {id} is revoked and cannot be rotated: create a new key")
            secret, now = new_secret(), self._clock()
            prefix = secret[:PREFIX_CHARS]
            conn.execute(
                update(api_keys)
                .where(api_keys.c.id == id)
                .values(secret_hash=hash_secret(secret), prefix=prefix, rotated_at=now)
            )
        return replace(key, prefix=prefix, rotated_at=now), secret

    def update_key(self, id: str, **changes: Any) -> ApiKey:  # noqa: A002
        """Change some of ``name``, ``models``, ``expires_at``, ``rpm``, ``tpm``,
        ``budget_usd``, ``budget_period``, ``model_limits``."""
        check_changes("key", changes, KEY_CHANGES)
        if isinstance(changes.get("models"), str):
            raise ValueError(f"models must be a list of model names, not the string {changes['models']!r}")
        with self._write() as conn:
            updated = replace(locked_key(conn, id), **changes)
            values = key_row(updated, "")
            conn.execute(update(api_keys).where(api_keys.c.id == id).values({k: values[k] for k in KEY_CHANGES}))
        return updated

    # ------------------------------------------------------------ usage ledger

    def add_usage(self, records: Sequence[UsageRecord]) -> int:
        """Write ``records`` in one transaction, and their sums to the per-minute, per-hour and
        per-day rollups (``rollup.py``); a record whose id is already stored is skipped (and not summed
        again). Returns how many rows were added."""
        params = usage_params(records, self._clock())
        if not params:
            return 0
        with self._write() as conn:
            # straight to the driver, in multi-row INSERTs of at most a fixed size (prepared
            # once per size, reused): the database works in few long steps without the GIL,
            # not one per row; RETURNING names the rows added, the ones the rollups sum
            dialect = conn.dialect.name
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                added: set[str] = set()
                for start in range(0, len(params), _ROWS_PER_INSERT):
                    chunk = params[start : start + _ROWS_PER_INSERT]
                    cursor.execute(
                        bulk_insert_ignore(dialect, usage.name, USAGE_COLUMNS, len(chunk), returning="id"),
                        [value for row in chunk for value in row],
                    )
                    added.update(row[0] for row in cursor.fetchall())
                rollup.write(cursor, dialect, [row for row in params if row[0] in added])
            finally:
                cursor.close()
            return len(added)

    def usage(self, query: UsageQuery) -> list[UsageRecord]:
        """The records ``query`` matches, newest first, ``query.limit`` from ``query.offset``."""
        with self._read() as conn:
            return [usage_record(row) for row in conn.execute(records_statement(query))]

    def usage_totals(
        self, query: UsageQuery, group_by: Sequence[Literal["tenant", "key", "model", "day"]]
    ) -> list[dict[str, Any]]:
        """Sums over the records ``query`` matches (its limit and offset do not
        apply), one dict per group: the ``group_by`` fields (``key`` is given as
        ``key_id``, ``day`` as ``YYYY-MM-DD`` in UTC) and ``requests``, ``errors``
        (status >= 400), ``prompt_tokens``, ``completion_tokens``,
        ``cached_tokens``, ``reasoning_tokens``, ``cost_usd``. No ``group_by``:
        one overall row, zeros when nothing matches."""
        fields = check_group_by(group_by)
        with self._read() as conn:
            rows = conn.execute(totals_statement(query, fields)).all()
        return totals_rows(rows, fields)

    def usage_series(self, query: SeriesQuery) -> UsageSeries:
        """The ledger per time bucket and series (see series.py), in one query; every
        bucket of the range is there, those without records as zeros."""
        with self._read() as conn:
            rows = conn.execute(series_statement(query, conn.dialect.name)).all()
        return series_result(query, rows)

    def spend(self, *, tenant: str | None = None, key_id: str | None = None, since: float | None = None) -> float:
        """The sum of ``cost_usd`` (records without a cost count 0)."""
        query = UsageQuery(tenant=tenant, key_id=key_id, since=since)
        stmt = select(func.coalesce(func.sum(usage.c.cost_usd), 0.0)).select_from(usage).where(*usage_conditions(query))
        with self._read() as conn:
            return float(conn.execute(stmt).scalar_one())

    def count_usage(self, query: UsageQuery) -> int:
        """How many records ``query`` matches (its limit and offset do not apply)."""
        with self._read() as conn:
            return int(
                conn.execute(select(func.count()).select_from(usage).where(*usage_conditions(query))).scalar_one()
            )

    # ------------------------------------------------------------ conversations

    def append_messages(self, tenant: str, conversation_id: str, messages: Sequence[Mapping[str, Any]]) -> None:
        """Add ``messages`` at the end of the conversation, creating it if absent."""
        check_slug(tenant)
        check_conversation_id(conversation_id)
        encoded = [encode_message(i, message) for i, message in enumerate(messages)]
        now = self._clock()
        where = (conversations.c.tenant == tenant) & (conversations.c.id == conversation_id)
        with self._write() as conn:
            conn.execute(
                insert_ignore(conn, conversations).values(
                    tenant=tenant, id=conversation_id, created_at=now, updated_at=now, messages=0
                )
            )
            count = int(conn.execute(select(conversations.c.messages).where(where).with_for_update()).scalar_one())
            if encoded:
                conn.execute(
                    insert(conversation_messages),
                    [
                        {"tenant": tenant, "conversation_id": conversation_id, "seq": count + i, "message": m}
                        for i, m in enumerate(encoded)
                    ],
                )
            conn.execute(update(conversations).where(where).values(updated_at=now, messages=count + len(encoded)))

    def conversation(self, tenant: str, conversation_id: str) -> Conversation | None:
        """The conversation and its messages in order; ``None`` if ``tenant`` has none by that id."""
        where = (conversations.c.tenant == tenant) & (conversations.c.id == conversation_id)
        with self._read() as conn:
            head = conn.execute(select(conversations).where(where)).first()
            if head is None:
                return None
            messages = conn.execute(
                select(conversation_messages.c.message)
                .where(conversation_messages.c.tenant == tenant)
                .where(conversation_messages.c.conversation_id == conversation_id)
                .order_by(conversation_messages.c.seq)
            ).scalars()
            return Conversation(
                id=conversation_id,
                tenant=tenant,
                created_at=head.created_at,
                updated_at=head.updated_at,
                messages=[_json.loads(m) for m in messages],
            )

    def list_conversations(self, tenant: str, limit: int = 100, offset: int = 0) -> list[ConversationInfo]:
        """``tenant``'s conversations, the most recently updated first."""
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be >= 0, not {limit} and {offset}")
        stmt = (
            select(conversations)
            .where(conversations.c.tenant == tenant)
            .order_by(conversations.c.updated_at.desc(), conversations.c.id)
            .limit(limit)
            .offset(offset)
        )
        with self._read() as conn:
            return [
                ConversationInfo(
                    id=row.id,
                    tenant=row.tenant,
                    created_at=row.created_at,
                    updated_at=row.updated_at,
                    messages=row.messages,
                )
                for row in conn.execute(stmt)
            ]

    def delete_conversation(self, tenant: str, conversation_id: str) -> bool:
        """Delete the conversation and its messages; ``False`` if there was none."""
        with self._write() as conn:
            conn.execute(
                delete(conversation_messages)
                .where(conversation_messages.c.tenant == tenant)
                .where(conversation_messages.c.conversation_id == conversation_id)
            )
            result = conn.execute(
                delete(conversations)
                .where(conversations.c.tenant == tenant)
                .where(conversations.c.id == conversation_id)
                .returning(conversations.c.id)
            )
            return result.first() is not None
