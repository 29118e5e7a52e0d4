"""The spool: usage records kept on local disk while the ledger's queue cannot take them.

When the queue fails (its Redis is down, or the in-memory queue is at its bound),
``Ledger.record`` appends the record here instead, and the ledger's writer moves
spooled records straight to the store. Records a process left here when it died
are written by the next process that reads the directory.

Layout: a directory (created 0o700) of append-only JSON-lines files, one per
process (``spool-<host>-<pid>-<random>.jsonl``, created 0o600), one
``UsageRecord.to_json`` per line. Lines go out in one ``os.write`` of whole
lines, so a process killed mid-write leaves at most a torn last line, which
reading skips; a failed write is cut back off the file. Nothing is fsynced: a
spooled record survives the process dying, not the machine losing power.

Who reads what: a process holds an exclusive ``flock`` on its own file from its
creation (under a temporary name, then renamed) to its deletion. A reader takes
every file whose lock it can get -- its own, and those of processes that died
(the kernel dropped their locks) -- and keeps the lock while it works through
the file, so two live processes never write out the same file. Files are read
``take(limit)`` records at a time; once every record of a file is ``done`` the
file is deleted. A record is written at least once: a reader that dies between
the store's commit and ``done`` leaves the file to the next one, and the store
ignores a record id it already has.

Bound: ``append`` raises ``SpoolFull`` rather than let the directory pass
``max_bytes``, and ``full`` turns true ``headroom`` bytes before, so a gateway
that stops admitting requests then can still record the ones in flight. The
size is this process's view: other processes' files are counted at each
``take``.

Every method blocks on file I/O (call it from a worker thread), is thread-safe
(one lock), and raises nothing but ``OSError`` (``SpoolFull`` is one). The
reject file, where the ledger sets aside records the store refuses, lives here
too (``append_rejects``).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import logging
import os
import re
import secrets
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._json import dumps, loads
from ..store.records import UsageRecord

log = logging.getLogger("llmrelay.gateway.spool")

MiB = 1024 * 1024
DEFAULT_MAX_BYTES = 256 * MiB
PREFIX, SUFFIX = "spool-", ".jsonl"
_READ = 256 * 1024
"""Bytes read at a time (doubled for a line longer than that)."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class SpoolFull(OSError):
    """The spool would pass its ``max_bytes``: the records were not written."""


if sys.platform == "win32":  # pragma: no cover - no flock: one process per spool directory

    def _try_lock(fd: int) -> bool:
        return True

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        """Take the exclusive lock of the open file ``fd``; ``False`` when another holds it."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


@dataclass(eq=False)
class _File:
    """A spool file this process holds the lock of."""

    name: str
    fd: int
    offset: int = 0
    """Bytes read so far (whole lines)."""
    pending: dict[int, UsageRecord] = field(default_factory=dict)
    """Records taken and not yet done, by the offset of their line."""
    exhausted: bool = False
    """The last read found no whole line after ``offset`` (what is left, if anything, is a torn line)."""


class Spool:
    """Usage records in the directory ``directory``, at most ``max_bytes`` of them."""

    def __init__(self, directory: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError(f"the spool's max_bytes must be positive, not {max_bytes!r}")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.headroom = min(MiB, max_bytes // 16)
        """How much room ``full`` keeps for the records of requests already admitted."""
        self.skipped = 0
        """Lines read that were not usage records (torn or corrupt)."""
        self._lock = threading.Lock()
        self._files: dict[str, _File] = {}
        self._active: _File | None = None
        self._used = 0
        self._counted = False

    def __repr__(self) -> str:
        return f"Spool({str(self.directory)!r}, max_bytes={self.max_bytes})"

    @property
    def used(self) -> int:
        """Bytes in the directory's spool files, as this process last saw them."""
        return self._used

    @property
    def full(self) -> bool:
        """Less than ``headroom`` bytes left: time to stop admitting new requests."""
        return self._used > self.max_bytes - self.headroom

    def rejects_file(self) -> Path:
        """Today's (UTC) reject file, in the spool's directory."""
        day = time.strftime("%Y-%m-%d", time.gmtime())
        return self.directory / f"rejected-{day}.jsonl"

    # ------------------------------------------------------------ writing

    def append(self, records: Sequence[UsageRecord]) -> None:
        """Write ``records`` to this process's file; ``SpoolFull`` when they would not fit."""
        data = b"".join(_dumps(record.to_json(), record.id) for record in records)
        if not data:
            return
        with self._lock:
            if not self._counted:
                self._scan()
            if self._used + len(data) > self.max_bytes:
                raise SpoolFull(
                    errno.ENOSPC,
                    f"the spool {self.directory} holds {self._used} bytes; {len(data)} more would pass "
                    f"its max_bytes of {self.max_bytes}",
                )
            active = self._active or self._create()
            active.exhausted = False
            try:
                _write_all(active.fd, data)
            except OSError:
                self._active = None  # if it could not be cut back, no line may follow a torn one
                raise
            self._used += len(data)

    def _create(self) -> _File:
        """A new file of this process's, locked before it is visible under its name."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        host = _UNSAFE.sub("_", socket.gethostname())[:64] or "host"
        name = f"{PREFIX}{host}-{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"
        temp = self.directory / f".{name}.new"
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(temp, flags, 0o600)
        try:
            if not _try_lock(fd):
                raise OSError(errno.EAGAIN, f"cannot lock the new spool file {temp}")
            os.rename(temp, self.directory / name)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        file = self._files[name] = self._active = _File(name, fd)
        return file

    # ------------------------------------------------------------ reading

    def take(self, limit: int) -> list[tuple[str, UsageRecord]]:
        """Up to ``limit`` records not yet done, with receipts for ``done``: those taken
        before and not done come first, then unread ones, from every file nobody else holds."""
        with self._lock:
            self._scan()
            out: list[tuple[str, UsageRecord]] = []
            for file in list(self._files.values()):
                room = limit - len(out)
                if room <= 0:
                    break
                out.extend((f"{file.name}:{at}", record) for at, record in itertools.islice(file.pending.items(), room))
                if len(out) < limit:
                    out.extend(self._read(file, limit - len(out)))
                self._settle(file)
            return out

    def done(self, receipts: Sequence[str]) -> None:
        """The records are in the store; a file whose records are all done is deleted."""
        with self._lock:
            touched: dict[str, _File] = {}
            for receipt in receipts:
                name, _, at = receipt.rpartition(":")
                file = self._files.get(name)
                if file is not None and at.isdigit() and file.pending.pop(int(at), None) is not None:
                    touched[name] = file
            for file in touched.values():
                self._settle(file)

    def close(self) -> None:
        """Let go of this process's files (what is in them stays for the next reader)."""
        with self._lock:
            for file in self._files.values():
                with contextlib.suppress(OSError):
                    os.close(file.fd)
            self._files.clear()
            self._active = None

    def _scan(self) -> None:
        """Count the directory's spool files and claim those nobody holds."""
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            entries = []
        used = 0
        for entry in entries:
            if not (entry.name.startswith(PREFIX) and entry.name.endswith(SUFFIX)):
                continue
            try:
                used += entry.stat().st_size
            except FileNotFoundError:  # its reader just finished it
                continue
            if entry.name not in self._files:
                self._claim(entry.name)
        self._used, self._counted = used, True

    def _claim(self, name: str) -> None:
        """Hold the file ``name`` if no live process does."""
        path = self.directory / name
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return
        try:
            # its holder may have finished and deleted it between the open and the lock
            held = _try_lock(fd) and os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            held = False
        except OSError:
            os.close(fd)
            raise
        if not held:
            os.close(fd)
            return
        self._files[name] = _File(name, fd)

    def _read(self, file: _File, want: int) -> list[tuple[str, UsageRecord]]:
        """Up to ``want`` more records of ``file``, from ``file.offset`` on (torn and corrupt lines skipped)."""
        out: list[tuple[str, UsageRecord]] = []
        size = _READ
        file.exhausted = False
        while len(out) < want:
            data = os.pread(file.fd, size, file.offset)
            last = data.rfind(b"\n")
            if last < 0:
                if len(data) < size:  # the end: nothing more, or a torn line
                    file.exhausted = True
                    break
                size *= 2  # one line longer than what was read
                continue
            pos = 0
            while pos <= last and len(out) < want:
                end = data.index(b"\n", pos)
                at = file.offset + pos
                record = self._parse(file.name, at, data[pos:end])
                pos = end + 1
                if record is not None:
                    file.pending[at] = record
                    out.append((f"{file.name}:{at}", record))
            file.offset += pos
            if pos > last and len(data) < size:
                file.exhausted = True
                break
        return out

    def _parse(self, name: str, at: int, line: bytes) -> UsageRecord | None:
        try:
            data = _loads(line)
            if not isinstance(data, dict):
                raise TypeError(f"a JSON {type(data).__name__}, not an object")
            return UsageRecord.from_json(data)
        except (ValueError, TypeError) as exc:  # never the line itself in the log: it may hold tenant data
            self.skipped += 1
            kind = type(exc).__name__
            log.warning("spool file %s: the line at byte %d is not a usage record (%s); skipped", name, at, kind)
            return None

    def _settle(self, file: _File) -> None:
        """Delete ``file`` if nothing of it is left to write."""
        if file.pending:
            return
        if file is self._active:
            if file.offset < os.fstat(file.fd).st_size:  # appended since it was read
                return
            self._active = None
        elif not file.exhausted:
            return
        del self._files[file.name]
        try:
            size = os.fstat(file.fd).st_size
            with contextlib.suppress(FileNotFoundError):
                (self.directory / file.name).unlink()
            self._used = max(self._used - size, 0)
        finally:
            os.close(file.fd)  # the lock goes with it


def append_rejects(path: Path, rejects: Sequence[tuple[UsageRecord, str]]) -> None:
    """Append ``rejects`` -- a record the store refused and the error's first line -- to the
    JSON-lines file ``path`` (created 0o600, its directory 0o700)."""
    now = time.time()
    data = b"".join(
        _dumps({"rejected_at": now, "error": error, "record": record.to_json()}, record.id) for record, error in rejects
    )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    """Append ``data`` to ``fd``; when that fails, cut the file back to where it ended, then raise."""
    start = os.lseek(fd, 0, os.SEEK_END)
    view = memoryview(data)
    try:
        while view:
            written = os.write(fd, view)
            if written <= 0:
                raise OSError(errno.ENOSPC, "the spool file takes no more bytes")
            view = view[written:]
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, start)
        raise


def _dumps(data: dict[str, Any], record_id: str) -> bytes:
    """``data`` as one JSON line. A value orjson refuses (a lone surrogate, an object) is
    written the standard library's way: escaped, or as its ``repr``."""
    try:
        return dumps(data) + b"\n"
    except TypeError:
        pass
    try:
        return json.dumps(data, default=repr).encode() + b"\n"
    except ValueError as exc:
        raise OSError(errno.EINVAL, f"usage record {record_id} cannot be written as JSON ({exc})") from None


def _loads(line: bytes) -> Any:
    try:
        return loads(line)
    except ValueError:  # a lone surrogate, escaped by _dumps' fallback, which orjson does not read
        return json.loads(line)


__all__ = ["DEFAULT_MAX_BYTES", "Spool", "SpoolFull", "append_rejects"]
