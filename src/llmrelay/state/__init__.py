"""Shared state: what several processes must agree on (breakers, health,
cooldowns, rate-limit windows, spend counters).

``StateBackend`` is the interface; ``MemoryState`` the in-process default. A
Redis backend (atomic Lua scripts) implements the same operations.
"""

from __future__ import annotations

from .base import StateBackend, WindowResult
from .memory import MemoryState

__all__ = ["MemoryState", "StateBackend", "WindowResult"]
