"""Database URLs and engines: SQLite (the default) and PostgreSQL (psycopg 3).

SQLite connections run in WAL mode with a 5 s busy timeout and foreign keys on.
The database file is private to its owner (mode 0600, made so when it is
created, and tightened when found readable by others); SQLite gives its WAL and
shared-memory files the same mode.
Python's sqlite3 module would open transactions on its own terms, so it is put
in autocommit mode and transactions are begun here: ``BEGIN`` for reads and
``BEGIN IMMEDIATE`` for writes (``write_transaction``), which takes the write
lock up front; a deferred transaction that reads and then writes can fail at
once with "database is locked" instead of waiting its turn.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from .records import StoreError

log = logging.getLogger("llmrelay.store")
SUPPORTED_SCHEMES = ("sqlite", "postgresql", "postgres")
BUSY_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 5

_DRIVERS = {
    "sqlite": "sqlite+pysqlite",
    "sqlite+pysqlite": "sqlite+pysqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}
_WRITE = "llmrelay_write"


def normalize_url(url: str | URL) -> URL:
    """``url`` with its driver chosen: ``sqlite+pysqlite`` or ``postgresql+psycopg``.

    ``postgres://`` (as Heroku and others write it) is PostgreSQL too. Any other
    scheme is a ``StoreError`` naming it and the supported ones.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"the store URL is not a database URL (supported: {', '.join(s + '://' for s in SUPPORTED_SCHEMES)})"
        ) from None
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise StoreError(
            f"unsupported store URL scheme {parsed.drivername!r} (supported: {', '.join(SUPPORTED_SCHEMES)})"
        )
    return parsed.set(drivername=driver)


def redact(url: str | URL) -> str:
    """``url`` as text with its password, if any, replaced by ``***``."""
    return make_url(url).render_as_string(hide_password=True)


def db_reason(exc: SQLAlchemyError) -> str:
    """The driver's message, first line (SQLAlchemy's own text adds the statement and a link)."""
    orig = getattr(exc, "orig", None)
    cause = orig if isinstance(orig, BaseException) else exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"


def is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def make_engine(url: str | URL) -> Engine:
    """An engine for ``url`` (normalised by ``normalize_url``), set up as this
    module describes. Creates the SQLite file's directory; connects lazily."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "postgresql":
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
        return create_engine(parsed, pool_pre_ping=True, hide_parameters=True, connect_args=connect_args)
    sqlite_args: dict[str, Any] = {"check_same_thread": False, "timeout": BUSY_TIMEOUT_S}
    if is_memory(parsed):
        # one connection shared by all threads (each new one would be an empty database);
        # the Store serialises its use
        engine = create_engine(parsed, hide_parameters=True, connect_args=sqlite_args, poolclass=StaticPool)
    else:
        assert parsed.database is not None
        path = Path(parsed.database).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store's directory {path.parent}: {exc.strerror}") from None
        private_file(path)
        engine = create_engine(parsed, hide_parameters=True, connect_args=sqlite_args)
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def private_file(path: Path) -> None:
    """Make ``path`` (created empty if absent) readable and writable by its owner only."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077 and path.stat().st_uid == os.getuid():
                path.chmod(mode & 0o700)
                log.warning("the store %s was readable by others (mode %o): made private (0600)", path, mode)
        except OSError:
            pass  # not ours to change: SQLite will say what is wrong, if anything
        return
    except OSError as exc:
        raise StoreError(f"cannot create the store {path}: {exc.strerror}") from None
    os.close(fd)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # autocommit: _sqlite_begin opens the transactions
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        # WAL's recommended level: a commit survives the process dying; only a power
        # cut may lose the last commits (no fsync on every commit of the ledger)
        cursor.execute("PRAGMA synchronous = NORMAL")
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            _switch_to_wal(cursor)
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """Put a new database in WAL mode (it stays so). This needs the database to
    itself, and SQLite answers "database is locked" at once rather than waiting
    when another connection is using it, so retry until the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01 + random.random() * 0.04)


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that will write: committed when the block
    ends, rolled back on an exception. On SQLite it holds the write lock from the
    start (``BEGIN IMMEDIATE``), waiting up to the busy timeout for it."""
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            yield conn
