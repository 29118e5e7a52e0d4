"""The gateway: an OpenAI-compatible HTTP server in front of the router (``llmrelay serve``)."""

from __future__ import annotations

from .app import Gateway
from .factory import create_app

__all__ = ["Gateway", "create_app"]
