"""One failure, many callers: each raises its own copy."""

from __future__ import annotations

import copy


def own_copy(exc: BaseException, *, keep_traceback: bool = False) -> BaseException:
    """A copy of ``exc`` for one of several callers raising it at once (same type,
    message, fields and cause), so they do not all raise, and grow the traceback
    of, one object; ``keep_traceback`` carries the traceback so far. The original
    when it cannot be copied."""
    try:
        twin = copy.copy(exc)
    except Exception:
        return exc
    twin.__cause__, twin.__context__ = exc.__cause__, exc.__context__
    twin.__suppress_context__ = exc.__suppress_context__
    return twin.with_traceback(exc.__traceback__) if keep_traceback else twin


__all__ = ["own_copy"]
