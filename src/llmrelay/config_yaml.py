"""The config file's YAML as Python data, with each entry's line, ``${VAR}`` read
from the environment, and limits that make a hostile file an error, not a hang.

Limits: the file's size (``MAX_BYTES``), nesting (``MAX_DEPTH``) and the number
of values once aliases are expanded (``MAX_VALUES``: a "billion laughs" file
expands nine aliases nine times over). Mistakes that leave the rest readable (an
unset variable, a value YAML cannot construct, a key that is not text) are added
to ``Problems``; the others (syntax, limits) end the reading there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import errors
from .config_errors import Loc, Problems

MAX_BYTES = 1_000_000
MAX_DEPTH = 40
MAX_VALUES = 100_000
MIN_HIDDEN = 4
"""Environment values this long or longer are never shown in a message (shorter ones say nothing)."""

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def read_config(path: Path, env: Mapping[str, str], problems: Problems) -> Any:
    """The file's data (``None`` when empty); fills ``problems.lines`` and ``problems.data``."""
    text = _read_text(path, problems)
    try:
        loader = _Loader(text)  # checks the characters first
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        line, column, message = _syntax_error(exc, text)
        problems.at(line, message, column)
        raise problems.error() from None
    if node is None:
        return None
    problems.data = _to_python(node, (), _Walk(loader, env, problems))
    return problems.data


def _read_text(path: Path, problems: Problems) -> str:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise errors.ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise errors.ConfigError(f"{path}: larger than {MAX_BYTES:,} bytes; refusing to read it as a config")
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        problems.at(raw[: exc.start].count(b"\n") + 1, "not UTF-8 text")
        raise problems.error() from None


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing nesting deeper than ``MAX_DEPTH`` (its composer recurses)."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self._depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]  # untyped in types-PyYAML
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _syntax_error(exc: yaml.YAMLError, text: str) -> tuple[int, int | None, str]:
    """(line, column, message) of a YAML error, without PyYAML's ``"<unicode string>"``."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark, message = exc.problem_mark, f"not valid YAML: {exc.problem}"
        if exc.context and exc.context_mark is not None:
            message += f" ({exc.context} at line {exc.context_mark.line + 1})"
        return mark.line + 1, mark.column + 1, message
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        return line, None, f"not valid YAML: character #x{exc.character:04x}: {exc.reason}"
    return 1, None, f"not valid YAML: {exc}"


@dataclass(slots=True)
class _Walk:
    loader: _Loader
    env: Mapping[str, str]
    problems: Problems
    values: int = 0


def _to_python(node: yaml.Node, loc: Loc, walk: _Walk) -> Any:
    """The YAML node as Python data, recording each entry's line and expanding ``${VAR}``."""
    walk.problems.lines.setdefault(loc, node.start_mark.line + 1)  # a key's own line when it has one
    walk.values += 1
    if walk.values > MAX_VALUES:  # aliases of aliases of ... ("billion laughs")
        walk.problems.at(node.start_mark.line + 1, f"more than {MAX_VALUES:,} values (aliases expanded)")
        raise walk.problems.error()
    if len(loc) > MAX_DEPTH:  # an alias inside itself
        walk.problems.at(node.start_mark.line + 1, f"aliases nest deeper than {MAX_DEPTH} levels")
        raise walk.problems.error()
    if isinstance(node, yaml.MappingNode):
        return _mapping(node, loc, walk)
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*loc, i), walk) for i, item in enumerate(node.value)]
    try:
        value = walk.loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        walk.problems.add_unread(loc, f"cannot read this value: {getattr(exc, 'problem', exc)}")
        return None
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError):  # a tag's own parser: !!int abc
        walk.problems.add_unread(loc, f"cannot read this value as {node.tag.rpartition(':')[2]}")
        return None
    return _expand(value, loc, walk) if isinstance(value, str) and "${" in value else value


def _mapping(node: yaml.MappingNode, loc: Loc, walk: _Walk) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            walk.problems.at(key_node.start_mark.line + 1, "a key must be plain text, not a list or a mapping")
            continue
        key = key_node.value
        line = key_node.start_mark.line + 1
        if key in out:  # YAML forbids it; a loader that keeps the last one hides a mistake
            first = walk.problems.lines.get((*loc, key))
            walk.problems.add((*loc, key), f"given twice (lines {first} and {line}): keep one")
            continue
        walk.problems.lines[(*loc, key)] = line
        out[key] = _to_python(value_node, (*loc, key), walk)
    return out


def _expand(value: str, loc: Loc, walk: _Walk) -> str:
    """``${VAR}`` and ``${VAR:-default}`` replaced; an unset variable is a problem (read as "")."""
    unset: list[str] = []

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in walk.env:
            found = walk.env[name]
            if len(found) >= MIN_HIDDEN:
                walk.problems.hidden[found] = f"${{{name}}}"
            return found
        if default is None:
            unset.append(name)
        return default or ""

    value = _VAR.sub(sub, value)
    names = list(dict.fromkeys(unset))
    if len(names) == 1:
        walk.problems.add_unread(loc, f"environment variable {names[0]} is not set")
    elif names:
        walk.problems.add_unread(loc, f"environment variables {', '.join(names)} are not set")
    return value
