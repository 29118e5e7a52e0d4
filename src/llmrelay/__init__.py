"""llmrelay: one typed API for every LLM provider."""

from __future__ import annotations

__version__ = "0.1.0"
