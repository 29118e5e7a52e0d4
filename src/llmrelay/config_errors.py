"""Every mistake in one config file, reported together in one ``ConfigError``.

Each stage of loading (YAML, ``${VAR}``, the schema, references between
entries) adds what it finds to a ``Problems``; the loader raises once, with one
line per problem, sorted by line::

    invalid config (2 problems):
      llmrelay.yaml:4: providers.openai.api_kye: unknown key (did you mean 'api_key'?)
      llmrelay.yaml:9: models.smart.strategy: unknown strategy 'fastest' (known: cost, health, ...)
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from . import errors

Loc = tuple[Any, ...]
"""Where an entry is: keys and list indexes from the top (``("providers", 0, "api_key")``)."""

MAX_SHOWN = 50
"""Problems listed in one message; a file with more gets the count of the rest."""
MAX_KEPT = 1000
"""Problems kept to choose the first lines from; past it they are only counted."""
MAX_LINE = 400
"""Characters of one problem's line (a name or key from the file may be any length)."""
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The one of ``choices`` close enough to ``word`` to be what was meant."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.65)  # retry -> retries, not nope -> openai
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when one of ``choices`` is close to ``word``, else ``""``."""
    close = closest(word, choices)
    return f" (did you mean {close!r}?)" if close else ""


@dataclass(frozen=True, slots=True)
class _Problem:
    loc: Loc | None  # None: a position in the text (a YAML syntax error), not an entry
    message: str
    line: int = 0
    column: int | None = None


@dataclass(slots=True)
class Problems:
    """The problems found so far in the file at ``path``. ``lines`` maps each entry
    to its line (the loader fills it); ``data`` (the parsed file or the loaded
    ``ConfigFile``) lets a list item be named by its ``name:`` in messages."""

    path: str | os.PathLike[str]
    lines: dict[Loc, int] = field(default_factory=dict)
    data: Any = None
    unread: set[Loc] = field(default_factory=set)
    """Values that could not be read (an unset variable...): the schema's complaints about them are noise."""
    hidden: dict[str, str] = field(default_factory=dict)
    """Values that came from the environment (``${VAR}``), never shown: each by its ``${VAR}``."""
    _found: list[_Problem] = field(default_factory=list)
    _more: int = 0

    def add(self, loc: Loc, message: str) -> None:
        """A problem with the entry at ``loc``."""
        self._keep(_Problem(loc, message))

    def add_unread(self, loc: Loc, message: str) -> None:
        """A value that could not be read; the schema's complaints about it will be left out."""
        self.unread.add(loc)
        self.add(loc, message)

    def at(self, line: int, message: str, column: int | None = None) -> None:
        """A problem at a place in the text (1-based line)."""
        self._keep(_Problem(None, message, line, column))

    @property
    def full(self) -> bool:
        """Past ``MAX_KEPT``: a new problem's message will not be read (spare the work of writing it)."""
        return len(self._found) >= MAX_KEPT

    def _keep(self, problem: _Problem) -> None:
        if self.full:
            self._more += 1
        else:
            self._found.append(problem)

    def __bool__(self) -> bool:
        return bool(self._found)

    def raise_if_any(self) -> None:
        if self._found:
            raise self.error()

    def error(self) -> errors.ConfigError:
        found = sorted(self._found, key=self._line)  # stable: same line keeps the order found
        total = len(found) + self._more
        shown = [f"  {self._shown(self._format(p))}" for p in found[:MAX_SHOWN]]
        if total > MAX_SHOWN:
            shown.append(f"  ... and {total - MAX_SHOWN} more")
        count = f"{total} problem{'s' if total > 1 else ''}"
        return errors.ConfigError(f"invalid config ({count}):\n" + "\n".join(shown))

    def _line(self, problem: _Problem) -> int:
        if problem.loc is None:
            return problem.line
        loc = problem.loc
        while loc and loc not in self.lines:
            loc = loc[:-1]
        return self.lines.get(loc, 1)

    def _shown(self, line: str) -> str:
        """``line`` safe to print: environment values by name (a secret in a misplaced
        ``${VAR}`` stays hidden), control characters escaped, its length bounded."""
        for value, name in sorted(self.hidden.items(), key=lambda item: -len(item[0])):
            line = line.replace(value, name)
        line = line.translate(_CONTROL)
        return line if len(line) <= MAX_LINE else f"{line[: MAX_LINE - 3]}..."

    def _format(self, problem: _Problem) -> str:
        where = f"{self.path}:{self._line(problem)}"
        if problem.column is not None:
            where += f":{problem.column}"
        if problem.loc:
            where += f": {entry_path(problem.loc, self.data)}"
        return f"{where}: {problem.message}"


def entry_path(loc: Loc, data: Any) -> str:
    """``loc`` written for people: list items that have a ``name`` go by it
    (``providers.openai.api_kye``), others by their index (``deployments.0``)."""
    parts: list[str] = []
    node = data
    for part in loc:
        node = _child(node, part)
        name = _child(node, "name") if isinstance(part, int) else None
        parts.append(name if isinstance(name, str) and name else str(part))
    return ".".join(parts)


def _child(node: Any, part: Any) -> Any:
    """``node[part]`` for parsed YAML or ``node.part`` for a loaded model; ``None`` when absent."""
    if isinstance(node, list):
        return node[part] if isinstance(part, int) and 0 <= part < len(node) else None
    if isinstance(node, dict):
        return node.get(part)
    return getattr(node, part, None) if isinstance(node, BaseModel) and isinstance(part, str) else None
