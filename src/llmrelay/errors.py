"""The error tree. Catch ``LLMError`` for everything, or any branch of it.

Every error carries what a retry policy and a user need: ``retryable``,
``status_code``, ``provider``, ``retry_after`` (seconds) and the raw ``body``.
Messages never contain an API key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .types import ChatResponse


class LLMError(Exception):
    """Base of every llmrelay error."""

    retryable: bool = False
    default_status: int | None = None
    code: str = "llm_error"

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        body: Any = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.status_code = status_code if status_code is not None else self.default_status
        self.retry_after = retry_after
        self.body = body
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        where = f"{self.provider}: " if self.provider else ""
        return f"{where}{self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, provider={self.provider!r}, status_code={self.status_code!r})"


class InvalidRequest(LLMError):
    """The request is wrong (bad input, unsupported feature); fix it, don't retry."""

    default_status = 400
    code = "invalid_request"


class ContextWindowExceeded(InvalidRequest):
    """The prompt (plus the asked output) does not fit the model's context window."""

    code = "context_length_exceeded"


class AuthenticationError(LLMError):
    default_status = 401
    code = "authentication_error"


class PermissionDenied(LLMError):
    default_status = 403
    code = "permission_denied"


class NotFound(LLMError):
    """Unknown model, deployment or route."""

    default_status = 404
    code = "not_found"


class ContentFiltered(LLMError):
    """The provider's safety system blocked the prompt or the answer."""

    default_status = 400
    code = "content_filter"


class RateLimited(LLMError):
    retryable = True
    default_status = 429
    code = "rate_limited"


class Overloaded(LLMError):
    """The provider is over capacity (Anthropic 529, Gemini 503 UNAVAILABLE)."""

    retryable = True
    default_status = 529
    code = "overloaded"


class ProviderError(LLMError):
    """The provider failed (5xx) or sent something that is not a valid answer."""

    retryable = True
    default_status = 502
    code = "provider_error"


class Timeout(LLMError):
    retryable = True
    default_status = 504
    code = "timeout"


class ConnectionError(LLMError):  # noqa: A001 - the name DESIGN.md gives it
    """The provider could not be reached, or the connection broke."""

    retryable = True
    default_status = 502
    code = "connection_error"


class StreamInterrupted(LLMError):
    """A stream broke after it began; ``partial`` holds what was received. It is never
    retried (that would repeat text); ``transient`` says whether its cause would have
    been (a dropped connection, a 5xx: the answer could go on elsewhere, which a group
    with ``stream_resume`` does)."""

    retryable = False
    default_status = 502
    code = "stream_interrupted"

    def __init__(
        self, message: str, *, partial: ChatResponse | None = None, transient: bool = False, **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.partial = partial
        self.transient = transient


class StructuredOutputError(LLMError):
    """The answer is not valid JSON or does not match the schema; ``raw_text`` holds it."""

    default_status = 502
    code = "structured_output_error"

    def __init__(self, message: str, *, raw_text: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.raw_text = raw_text


class BudgetExceeded(LLMError):
    default_status = 429
    code = "insufficient_quota"


class CircuitOpen(LLMError):
    retryable = True
    default_status = 503
    code = "circuit_open"


class StateUnavailable(LLMError):
    """The shared state backend (Redis) cannot be reached or did not answer in time."""

    retryable = True
    default_status = 503
    code = "state_unavailable"


class NoHealthyDeployment(LLMError):
    """No deployment of the model group (or its fallbacks) could answer.

    ``tried`` lists ``(deployment, why)`` for every deployment considered, in
    order; ``last_error`` is the last provider error seen (also the ``__cause__``);
    ``retry_after`` is when the earliest deployment is expected back, if known."""

    retryable = False
    default_status = 503
    code = "no_healthy_deployment"

    def __init__(
        self,
        message: str,
        *,
        tried: list[tuple[str, str]] | None = None,
        last_error: LLMError | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.tried = list(tried or [])
        self.last_error = last_error


class CapabilityUnavailable(NoHealthyDeployment):
    """No deployment of the model group (or its fallbacks) can take this request: each
    lacks something it needs (tool calling, image or audio input, JSON-schema output,
    a context window or output limit large enough). The request's own matter, not an
    outage: a 400, whose message and ``tried`` say what each deployment lacks."""

    default_status = 400
    code = "capability_unavailable"


class ConfigError(LLMError):
    """The configuration is wrong; the message names the entry (and line)."""

    code = "config_error"


class ProviderNotConfigured(ConfigError, AuthenticationError):
    """A known provider kind was asked for, but it has no key (or endpoint) here:
    the message names the environment variable to set. At the gateway it is a 400:
    the request names a model this gateway cannot reach (another model may do), not
    a bad key of the caller's (401) nor a model that does not exist (404). Also an
    ``AuthenticationError``, which it was reported as before."""

    default_status = 400
    code = "provider_not_configured"

    def __str__(self) -> str:
        return self.message  # it names the provider itself


_BY_STATUS: dict[int, type[LLMError]] = {
    400: InvalidRequest,
    401: AuthenticationError,
    402: BudgetExceeded,
    403: PermissionDenied,
    404: NotFound,
    408: Timeout,
    409: ProviderError,
    413: ContextWindowExceeded,
    422: InvalidRequest,
    429: RateLimited,
    503: Overloaded,
    529: Overloaded,
}


def class_for_status(status: int) -> type[LLMError]:
    """The default error class of an HTTP status (provider mappings refine it)."""
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls
    if status >= 500:
        return ProviderError
    return InvalidRequest


__all__ = [
    "AuthenticationError",
    "BudgetExceeded",
    "CapabilityUnavailable",
    "CircuitOpen",
    "ConfigError",
    "ConnectionError",
    "ContentFiltered",
    "ContextWindowExceeded",
    "InvalidRequest",
    "LLMError",
    "NoHealthyDeployment",
    "NotFound",
    "Overloaded",
    "PermissionDenied",
    "ProviderError",
    "ProviderNotConfigured",
    "RateLimited",
    "StateUnavailable",
    "StreamInterrupted",
    "StructuredOutputError",
    "Timeout",
    "class_for_status",
]
