"""The file side of batches (``llmrelay batch``): an input JSONL read lazily,
what an output JSONL already holds, results appended as they come, and the
output compacted at the end.

Memory stays bounded by the number of custom_ids, never by the size of the
files: lines are read one at a time, and the output is indexed by byte offset
(compaction copies lines by seeking, in input order).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ._json import JSONDecodeError, dumps, loads
from .batch import BatchRequest, InvalidLine, error_line, parse_request

MAX_LISTED = 20
"""Malformed input lines and foreign output lines kept for the user to read (all are counted)."""


# ---- the input ------------------------------------------------------------------------


def read_lines(path: Path) -> Iterator[tuple[int, BatchRequest | InvalidLine]]:
    """Each non-blank line with its number (from 1): a request, or what is wrong with it."""
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            if raw.strip():
                yield number, _parse(raw)


def _parse(raw: bytes) -> BatchRequest | InvalidLine:
    try:
        item = loads(raw)
    except JSONDecodeError as exc:
        return InvalidLine(f"not valid JSON: {exc.msg} (column {exc.colno})", code="invalid_json")
    try:
        return parse_request(item)
    except InvalidLine as exc:
        return exc


@dataclass
class InputScan:
    """What a first pass over the input found, before anything is sent."""

    ids: dict[str, int] = field(default_factory=dict)  # custom_id -> line of its first use, in file order
    invalid_ids: set[str] = field(default_factory=set)  # custom_ids whose line is malformed
    duplicates: dict[int, int] = field(default_factory=dict)  # line -> line that used its custom_id first
    requests: int = 0  # well-formed lines with a custom_id of their own
    bad: int = 0  # malformed lines, duplicates included
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line, why): the first MAX_LISTED

    def note_problem(self, line: int, why: str) -> None:
        self.bad += 1
        if len(self.problems) < MAX_LISTED:
            self.problems.append((line, why))


def scan_input(path: Path) -> InputScan:
    """Check every line and collect the custom_ids (to compare with the output's)."""
    scan = InputScan()
    for number, item in read_lines(path):
        custom_id = item.custom_id
        first = scan.ids.get(custom_id) if custom_id is not None else None
        if first is not None:
            scan.duplicates[number] = first
            scan.note_problem(number, duplicate_message(custom_id, first))
            continue
        if custom_id is not None:
            scan.ids[custom_id] = number
        if isinstance(item, InvalidLine):
            scan.note_problem(number, item.message)
            if custom_id is not None:
                scan.invalid_ids.add(custom_id)
        else:
            scan.requests += 1
    return scan


def duplicate_message(custom_id: str | None, first: int) -> str:
    return f"duplicate custom_id {custom_id!r} (first used on line {first})"


def bad_line_result(number: int, item: BatchRequest | InvalidLine, scan: InputScan) -> dict[str, Any] | None:
    """The error line for a malformed input line (``None`` for a good one)."""
    first = scan.duplicates.get(number)
    if first is not None:
        message = duplicate_message(item.custom_id, first)
        return error_line(item.custom_id, "duplicate_custom_id", f"line {number}: {message}", line=number)
    if isinstance(item, InvalidLine):
        return error_line(item.custom_id, item.code, f"line {number}: {item.message}", line=number)
    return None


# ---- the output -----------------------------------------------------------------------


@dataclass
class OutputState:
    """What an output file already holds; offsets are bytes from its start."""

    latest: dict[str, tuple[int, bool]] = field(default_factory=dict)  # custom_id -> (offset, succeeded)
    loose: list[tuple[int, float]] = field(
        default_factory=list
    )  # (offset, input line): results with no id of their own
    foreign: list[int] = field(default_factory=list)  # numbers of lines that are not results: the first MAX_LISTED
    foreign_count: int = 0
    end: int = 0  # where the last whole line ends
    torn: bool = False  # the file ends in a partial line (a run was killed mid-write): dropped
    open_end: bool = False  # the last line is whole but has no newline

    def succeeded(self) -> set[str]:
        return {custom_id for custom_id, (_, ok) in self.latest.items() if ok}


def read_output(path: Path) -> OutputState:
    """Index an output file (a missing one is empty). The latest result of a
    custom_id counts; results of malformed or duplicate input lines are *loose*:
    they are made again by every run, so only the current run's are kept."""
    state = OutputState()
    if not path.exists():
        return state
    offset = 0
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            start, offset = offset, offset + len(raw)
            whole = raw.endswith(b"\n")
            if not raw.strip():
                state.end = offset
                continue
            result = _result(raw)
            if result is None and not whole:
                state.torn = True
                break
            state.end, state.open_end = offset, not whole
            if result is None:
                state.foreign_count += 1
                if len(state.foreign) < MAX_LISTED:
                    state.foreign.append(number)
            else:
                _index(state, start, result)
    return state


def _result(raw: bytes) -> dict[str, Any] | None:
    """The line as a result object, or ``None`` when it is not one."""
    try:
        item = loads(raw)
    except JSONDecodeError:
        return None
    if not isinstance(item, dict) or "custom_id" not in item or not ("response" in item or "error" in item):
        return None
    custom_id = item["custom_id"]
    return item if custom_id is None or isinstance(custom_id, str) else None


def _index(state: OutputState, offset: int, result: dict[str, Any]) -> None:
    error = result.get("error")
    custom_id = result["custom_id"]
    if custom_id is None or (isinstance(error, dict) and error.get("code") == "duplicate_custom_id"):
        line = error.get("line") if isinstance(error, dict) else None
        state.loose.append((offset, float(line) if isinstance(line, int) else math.inf))
        return
    response = result.get("response")
    ok = error is None and isinstance(response, dict) and response.get("status_code") == 200
    state.latest[custom_id] = (offset, ok)


class ResultWriter:
    """Appends result lines to the output, flushed one by one, so an interrupted
    run keeps everything it finished. A partial last line left by a killed run
    is cut off first."""

    def __init__(self, path: Path, state: OutputState) -> None:
        self._file: BinaryIO = path.open("ab")
        if state.torn:
            self._file.truncate(state.end)
        elif state.open_end:
            self._file.write(b"\n")
        self._file.flush()
        self.start = self._file.seek(0, os.SEEK_END)  # this run's lines begin here

    def write(self, line: dict[str, Any]) -> None:
        try:
            data = dumps(line)
        except TypeError as exc:  # an answer that is not JSON: the line says so instead
            data = dumps(error_line(line.get("custom_id"), "internal_error", f"unwritable result: {exc}"))
        self._file.write(data + b"\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def compact(path: Path, scan: InputScan, run_start: int) -> int:
    """Rewrite the output with each custom_id's latest result once, in input order
    (then results for ids the input lacks, kept under ``--force``), plus this run's
    loose results; atomically (a temporary file renamed over it). Returns the lines kept."""
    state = read_output(path)
    offsets = list(_in_order(state, scan, run_start))
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, path.open("rb") as src:
            for offset in offsets:
                src.seek(offset)
                line = src.readline()
                out.write(line if line.endswith(b"\n") else line + b"\n")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, path.stat().st_mode & 0o7777)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return len(offsets)


def _in_order(state: OutputState, scan: InputScan, run_start: int) -> Iterator[int]:
    loose = sorted((line, offset) for offset, line in state.loose if offset >= run_start)
    i = 0
    for custom_id, number in scan.ids.items():
        while i < len(loose) and loose[i][0] < number:
            yield loose[i][1]
            i += 1
        found = state.latest.get(custom_id)
        if found is not None:
            yield found[0]
    yield from (offset for _, offset in loose[i:])
    yield from (offset for custom_id, (offset, _) in state.latest.items() if custom_id not in scan.ids)


__all__ = [
    "InputScan",
    "OutputState",
    "ResultWriter",
    "bad_line_result",
    "compact",
    "read_lines",
    "read_output",
    "scan_input",
]
