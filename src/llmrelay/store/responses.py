"""Stored Responses API answers (``store: true``), per tenant: saved as they are
answered, read back by id, walked back through ``previous_response_id`` to give a
continued response its history, and deleted. Another tenant's id reads as absent."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from sqlalchemy import Connection, delete, insert, select

from .. import _json
from .records import StoredResponse, check_slug
from .schema import responses

MAX_ID = 64
MAX_CHAIN = 1000
"""The most responses one history walks back through (a longer chain is an error)."""
MAX_HISTORY_BYTES = 16_000_000
"""The most items (as stored JSON) one history holds: about the gateway's body limit."""


class _Tables(Protocol):
    def _read(self) -> AbstractContextManager[Connection]: ...

    def _write(self) -> AbstractContextManager[Connection]: ...


class ResponseTable:
    """``store.responses``: the stored responses of every tenant."""

    def __init__(self, store: _Tables) -> None:
        self._store = store

    def save(self, response: StoredResponse) -> None:
        check_slug(response.tenant)
        if not response.id or len(response.id) > MAX_ID:
            raise ValueError(f"a response id is 1 to {MAX_ID} characters, not {response.id!r}")
        row = {
            "tenant": response.tenant, "id": response.id, "previous_id": response.previous_id,
            "model": response.model, "created_at": response.created_at,
            "input_items": _json.dumps_str(response.input_items),
            "output_items": _json.dumps_str(response.output_items), "body": _json.dumps_str(response.body),
        }  # fmt: skip
        with self._store._write() as conn:
            conn.execute(insert(responses).values(**row))

    def get(self, tenant: str, response_id: str) -> StoredResponse | None:
        """The response, or ``None`` when ``tenant`` has none by that id."""
        if not response_id or len(response_id) > MAX_ID:
            return None
        with self._store._read() as conn:
            row = conn.execute(
                select(responses).where(responses.c.tenant == tenant).where(responses.c.id == response_id)
            ).first()
        return None if row is None else _record(row._mapping)

    def history(self, tenant: str, response_id: str) -> list[dict[str, Any]] | None:
        """The items a response continuing ``response_id`` goes on from: each response of
        the chain, oldest first, its input items then its output items. ``None`` when
        ``tenant`` has no response by that id (or a link of the chain is gone); a
        ``ValueError`` naming the limit for a chain longer than ``MAX_CHAIN`` responses
        or ``MAX_HISTORY_BYTES`` of items."""
        links: list[tuple[str, str]] = []
        size, seen = 0, set()
        next_id: str | None = response_id
        while next_id is not None:
            if len(links) == MAX_CHAIN:
                raise ValueError(f"previous_response_id: the conversation is over {MAX_CHAIN} responses long")
            if next_id in seen or not next_id or len(next_id) > MAX_ID:  # no loop can be made through the API
                return None
            seen.add(next_id)
            with self._store._read() as conn:
                row = conn.execute(
                    select(responses.c.previous_id, responses.c.input_items, responses.c.output_items)
                    .where(responses.c.tenant == tenant)
                    .where(responses.c.id == next_id)
                ).first()
            if row is None:
                return None
            size += len(row.input_items) + len(row.output_items)
            if size > MAX_HISTORY_BYTES:
                raise ValueError(
                    f"previous_response_id: the conversation holds over {MAX_HISTORY_BYTES / 1e6:g} MB of items"
                )
            links.append((row.input_items, row.output_items))
            next_id = row.previous_id
        items: list[dict[str, Any]] = []
        for input_items, output_items in reversed(links):
            items.extend(_json.loads(input_items))
            items.extend(_json.loads(output_items))
        return items

    def delete(self, tenant: str, response_id: str) -> bool:
        """Delete the response; ``False`` if ``tenant`` had none by that id."""
        with self._store._write() as conn:
            result = conn.execute(
                delete(responses)
                .where(responses.c.tenant == tenant)
                .where(responses.c.id == response_id)
                .returning(responses.c.id)
            )
            return result.first() is not None


def _record(row: Any) -> StoredResponse:
    return StoredResponse(
        id=row["id"], tenant=row["tenant"], created_at=row["created_at"], model=row["model"],
        previous_id=row["previous_id"], input_items=_json.loads(row["input_items"]),
        output_items=_json.loads(row["output_items"]), body=_json.loads(row["body"]),
    )  # fmt: skip
