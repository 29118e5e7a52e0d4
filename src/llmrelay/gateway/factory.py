"""Building the gateway from the environment and the config file: what
``llmrelay serve`` runs in each worker (``uvicorn --factory
llmrelay.gateway.factory:create_app``), and the config's answers to "who may
use it" (master key, open mode) and "how much a client may hold" (server limits).
"""

from __future__ import annotations

import os

from .. import errors
from ..client import AsyncClient
from ..store.store import Store
from . import gc_tuning
from .app import MAX_BODY, Gateway, check_access
from .ledger import RecordQueue
from .logs import JsonLines
from .server import ServerLimits
from .spool import Spool


def create_app() -> Gateway:
    """The gateway for ``LLMRELAY_CONFIG`` (uvicorn's factory; each worker calls it),
    logging JSON lines (``LLMRELAY_LOG_LEVEL``, INFO by default)."""
    from .logs import configure

    level = (os.environ.get("LLMRELAY_LOG_LEVEL") or "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise errors.ConfigError(f"LLMRELAY_LOG_LEVEL is {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL")
    configure(level)
    client = AsyncClient(os.environ.get("LLMRELAY_CONFIG") or None)
    key, opened = master_key(client), open_access(client)
    check_access(key, opened)  # before anything is opened
    sink = JsonLines() if level in ("DEBUG", "INFO") else None
    from ..store import default_spool_dir, default_store_url

    settings = client.settings
    store_url = default_store_url(settings)
    store = Store.open(store_url)
    spool = Spool(default_spool_dir(settings, store_url))
    queue: RecordQueue | None = None
    state = client.state
    if client.settings.state_url:
        from ..state.redis import RedisState
        from .ledger import RedisQueue

        assert isinstance(state, RedisState)
        queue = RedisQueue(state.redis, state.prefix)
    return Gateway(
        client,
        master_key=key,
        store=store,
        ledger_queue=queue,
        access_log=sink,
        gc_threshold=gc_tuning.threshold_from_env(),
        open_access=opened,
        spool=spool,
        server_limits=server_limits(client),
        max_body=max_body(client),
        dashboard=settings.file.server.dashboard if settings.file is not None else True,
    )


def server_limits(client: AsyncClient) -> ServerLimits:
    """The config's ``server:`` section (its defaults without a config file)."""
    file = client.settings.file
    if file is None:
        return ServerLimits()
    s = file.server
    return ServerLimits(
        header_timeout_s=s.header_timeout_s, body_timeout_s=s.body_timeout_s, max_connections=s.max_connections,
        write_timeout_s=s.write_timeout_s, max_header_bytes=s.max_header_kb * 1024,
    )  # fmt: skip


def max_body(client: AsyncClient) -> int:
    file = client.settings.file
    return MAX_BODY if file is None else int(file.server.max_body_mb * 1024 * 1024)


def master_key(client: AsyncClient) -> str | None:
    file = client.settings.file
    configured = file.auth.master_key if file is not None else None
    if configured is not None:
        return configured.get_secret_value() or None
    return os.environ.get("LLMRELAY_MASTER_KEY") or None


INSECURE_OPEN_ENV = "LLMRELAY_INSECURE_OPEN"
"""Set to ``1`` by ``llmrelay serve --insecure-open`` for its workers."""


def open_access(client: AsyncClient) -> bool:
    """Whether open mode was asked for on purpose: ``auth: {open: true}`` or ``--insecure-open``."""
    file = client.settings.file
    return (file is not None and file.auth.open) or os.environ.get(INSECURE_OPEN_ENV) == "1"


__all__ = ["INSECURE_OPEN_ENV", "create_app", "master_key", "max_body", "open_access", "server_limits"]
