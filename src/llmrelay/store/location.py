"""Where the store lives when nobody says: the URL rules, without a database driver.

Precedence: ``LLMRELAY_STORE_URL``, then ``store: {url: ...}`` in the config
file, then ``llmrelay.db`` next to the config file, then ``llmrelay.db`` in the
current directory. A relative SQLite path is relative to the config file's
directory when it comes from the config file, else to the current directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol


class Settings(Protocol):
    """What these rules read of the settings (``config.Settings`` has it)."""

    @property
    def store_url(self) -> str | None: ...
    @property
    def spool_dir(self) -> str | None: ...
    @property
    def path(self) -> Path | None: ...


ENV_VAR = "LLMRELAY_STORE_URL"
DEFAULT_FILE = "llmrelay.db"
SPOOL_DIR = "llmrelay-spool"

_SQLITE = re.compile(r"(sqlite(?:\+[A-Za-z0-9_]+)?):///(.*)", re.DOTALL)


def _sqlite_file_parts(url: str) -> tuple[str, str, str] | None:
    """``(scheme, path, "?query" or "")`` of a SQLite URL naming a file (``None``:
    another database, memory, or a ``file:`` URI)."""
    match = _SQLITE.fullmatch(url)
    if match is None:
        return None
    path, sep, query = match.group(2).partition("?")
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return match.group(1), path, sep + query


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL with an absolute path (``None``: another
    database, memory, a ``file:`` URI, or a relative path)."""
    parts = _sqlite_file_parts(url)
    if parts is None or not Path(parts[1]).is_absolute():
        return None
    return Path(parts[1])


def resolve_sqlite_path(url: str, base: str | os.PathLike[str]) -> str:
    """``url`` with a relative SQLite file path made absolute against ``base``
    (and ``~`` expanded); any other URL as it is."""
    parts = _sqlite_file_parts(url)
    if parts is None:
        return url
    scheme, path, query = parts
    resolved = Path(path).expanduser()
    if not resolved.is_absolute():
        resolved = Path(base).resolve() / resolved
    return f"{scheme}:///{resolved}{query}"


def default_store_url(settings: Settings, env: Mapping[str, str] | None = None) -> str:
    """The store URL for ``settings``: ``LLMRELAY_STORE_URL`` (from ``env``,
    default ``os.environ``), else the config's ``store.url``, else
    ``sqlite:///<config dir>/llmrelay.db``, else ``sqlite:///<cwd>/llmrelay.db``."""
    env = os.environ if env is None else env
    from_env = env.get(ENV_VAR)
    if from_env:
        return resolve_sqlite_path(from_env, Path.cwd())
    if settings.store_url:
        return settings.store_url
    base = Path(settings.path).resolve().parent if settings.path is not None else Path.cwd()
    return f"sqlite:///{base / DEFAULT_FILE}"


def default_spool_dir(settings: Settings, store_url: str) -> Path:
    """Where the gateway's usage ledger keeps what it cannot queue (gateway/spool.py):
    the config's ``store.spool_dir``, else ``llmrelay-spool`` beside a SQLite store,
    else beside the config file, else in the current directory. It must be on this
    machine's own disk: each host has its own."""
    if settings.spool_dir:
        return Path(settings.spool_dir)
    parts = _sqlite_file_parts(store_url)
    if parts is not None:
        return Path(parts[1]).expanduser().resolve().parent / SPOOL_DIR
    base = Path(settings.path).resolve().parent if settings.path is not None else Path.cwd()
    return base / SPOOL_DIR
