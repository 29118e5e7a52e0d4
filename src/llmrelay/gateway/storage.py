"""Calling the store from a handler: off the event loop, its failures as HTTP answers.

A missing record is a 404, a duplicate a 409, a bad value a 400; a database that
is down or broken is a 503 with ``retry-after``, never a 500.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from ..store.records import Conflict, NotFoundError, StoreError, StoreUnavailable
from .http import HTTPError, unavailable

T = TypeVar("T")
log = logging.getLogger("llmrelay.gateway")


async def store_call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` (a ``Store`` method) in a worker thread."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except NotFoundError as exc:
        raise HTTPError(404, str(exc)) from None
    except Conflict as exc:
        raise HTTPError(409, str(exc)) from None
    except (StoreError, ValueError) as exc:
        if not isinstance(exc, StoreUnavailable):
            raise HTTPError(400, str(exc)) from None
        log.warning("the store failed: %s", exc)
        raise unavailable("the store is unavailable right now; retry shortly", "store_unavailable") from None
    except Exception as exc:  # the database driver itself failed: down or broken
        log.warning("the store failed: %s: %s", type(exc).__name__, exc)
        raise unavailable("the store is unavailable right now; retry shortly", "store_unavailable") from None


__all__ = ["store_call"]
