"""Whether to trace, and how: read from the config's ``telemetry:`` section and the
standard ``OTEL_*`` variables, without importing OpenTelemetry (``spans.py`` does,
and is only imported when telemetry is on).

On when the config says ``telemetry: {enabled: true}``, or the environment names an
OTLP endpoint (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``);
never with ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``. Prompts and
answers go into spans only with ``capture_content: true`` or
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import errors
from .._install import install_hint

if TYPE_CHECKING:
    from .spans import Telemetry

CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    """Where spans go and what they hold."""

    service_name: str = "llmrelay"
    endpoint: str | None = None
    """The OTLP/HTTP traces URL (``http://collector:4318/v1/traces``); ``None``: the
    exporter's own from ``OTEL_EXPORTER_OTLP_*``, else ``http://localhost:4318/v1/traces``."""
    headers: Mapping[str, str] = field(default_factory=dict)
    capture_content: bool = False


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def wanted(entry: Any, env: Mapping[str, str]) -> TelemetrySettings | None:
    """The settings when telemetry is on (see the module's docstring), else ``None``.
    ``entry``: the config file's ``telemetry`` section, or ``None``."""
    if _true(env.get("OTEL_SDK_DISABLED")) or (env.get("OTEL_TRACES_EXPORTER") or "").strip().lower() == "none":
        return None
    from_env = bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    if not ((entry is not None and entry.enabled) or from_env):
        return None
    return TelemetrySettings(
        service_name=(entry.service_name if entry is not None else None) or env.get("OTEL_SERVICE_NAME") or "llmrelay",
        endpoint=entry.endpoint if entry is not None else None,
        headers=dict(entry.headers) if entry is not None else {},
        capture_content=_true(env.get(CONTENT_ENV)) or bool(entry is not None and entry.capture_content),
    )


def telemetry_for(entry: Any, env: Mapping[str, str]) -> Telemetry | None:
    """Spans when the config or the environment asks for them (imported only then), else
    ``None``; a ``ConfigError`` naming the command to run when the ``otel`` extra is missing."""
    asked = wanted(entry, env)
    if asked is None:
        return None
    try:
        from .spans import Telemetry
    except ImportError:
        raise errors.ConfigError(f"telemetry is on but OpenTelemetry is missing: {install_hint('otel')}") from None
    return Telemetry.from_settings(asked)


__all__ = ["CONTENT_ENV", "TelemetrySettings", "telemetry_for", "wanted"]
