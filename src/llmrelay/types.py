"""Canonical, provider-neutral types.

Every provider codec translates between its wire format and these classes, so
the router, the gateway and user code only ever see one shape. Classes are
plain slotted dataclasses: cheap to build on the hot path, easy to read.
Fields a provider sends that have no canonical home are kept in ``raw`` (the
whole wire object) or ``extra`` (per item), never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

if TYPE_CHECKING:
    from .errors import LLMError

Role: TypeAlias = Literal["system", "user", "assistant", "tool"]
FinishReason: TypeAlias = Literal["stop", "length", "tool_calls", "content_filter", "error"]
CacheStatus: TypeAlias = Literal["hit", "miss"]
ROLES: frozenset[str] = frozenset(("system", "user", "assistant", "tool"))


# --------------------------------------------------------------------------- content


@dataclass(slots=True)
class TextPart:
    text: str
    type: Literal["text"] = "text"


@dataclass(slots=True)
class ImagePart:
    """An image given by URL or by base64 data (exactly one of the two).

    ``media_type`` is required with ``data`` (e.g. ``image/png``). ``detail`` is
    OpenAI's ``low``/``high``/``auto`` hint; other providers ignore it.
    ``width``/``height`` (pixels), when known, make token estimates exact.
    """

    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    detail: str | None = None
    width: int | None = None
    height: int | None = None
    type: Literal["image"] = "image"

    @property
    def data_url(self) -> str:
        """The image as a URL: the URL itself or a ``data:`` URL."""
        if self.url is not None:
            return self.url
        return f"data:{self.media_type};base64,{self.data}"


ContentPart: TypeAlias = TextPart | ImagePart


# --------------------------------------------------------------------------- tools


@dataclass(slots=True)
class ToolSpec:
    """A function the model may call; ``parameters`` is a JSON schema object."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


@dataclass(slots=True)
class ToolCall:
    """A call the model asked for. ``arguments`` is parsed JSON; ``raw_arguments``
    is the text as sent (kept when it is not valid JSON, e.g. cut by max_tokens).
    ``extra`` keeps provider data that must be sent back (Gemini thought signatures)."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    raw_arguments: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- messages


@dataclass(slots=True)
class Message:
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    reasoning: str | None = None
    reasoning_signature: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The message's text parts joined (images left out)."""
        content = self.content
        if content is None:
            return ""
        if isinstance(content, str):
            return content
        return "".join(p.text for p in content if isinstance(p, TextPart))

    @property
    def parts(self) -> list[ContentPart]:
        content = self.content
        if content is None:
            return []
        if isinstance(content, str):
            return [TextPart(content)] if content else []
        return content


# --------------------------------------------------------------------------- request


@dataclass(slots=True)
class ResponseFormat:
    """What shape the answer must have.

    ``json_schema`` asks for JSON matching ``schema``; ``model`` (a pydantic
    model class), when set, is what ``ChatResponse.parsed`` is validated into.
    """

    type: Literal["text", "json_object", "json_schema"] = "json_schema"
    schema: dict[str, Any] | None = None
    name: str = "response"
    strict: bool = True
    model: Any = None


@dataclass(slots=True)
class ChatRequest:
    """One chat call, addressed to a model name the provider knows."""

    model: str
    messages: list[Message]
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: str | dict[str, Any] | None = None
    response_format: ResponseFormat | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Provider-specific fields, merged into the wire body as given."""


@dataclass(slots=True)
class EmbeddingRequest:
    model: str
    inputs: list[str]
    dimensions: int | None = None
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class Usage:
    """Token counts, normalised across providers.

    ``prompt_tokens`` counts every input token, including ``cached_tokens``
    (read from the provider's prompt cache) and ``cache_write_tokens``.
    ``completion_tokens`` counts every output token, including
    ``reasoning_tokens``.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_tokens + other.cached_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )


_REPLAYED_EXTRA = frozenset(("redacted_thinking", "tool_plan"))
"""Provider data a conversation must send back with the assistant turn."""


@dataclass(frozen=True, slots=True)
class Route:
    """Where an answer came from: the model group asked for, the group and
    deployment that answered (a fallback group when they differ), how many
    attempts the call took, the deployments whose streams were cut and
    continued by the next (``stream_resume``), in order, and those whose
    attempts lost a hedged race and were cancelled (``hedge``)."""

    requested: str
    group: str
    deployment: str
    attempts: int = 1
    resumed: tuple[str, ...] = ()
    hedged: tuple[str, ...] = ()

    @property
    def fallback(self) -> bool:
        return self.group != self.requested


@dataclass(slots=True)
class CacheInfo:
    """What the cache did for an answer (``ChatResponse.cache``).

    ``status``: ``hit`` (answered from the cache: nothing was spent) or ``miss``
    (asked upstream, and stored unless told not to). ``coalesced``: the answer
    was shared with an identical request in flight (nothing was spent for this
    one either). ``similarity``: for a semantic hit, how close the question was.
    ``stored_at``: when the answer was first made (Unix time)."""

    status: CacheStatus
    key: str
    stored_at: float
    similarity: float | None = None
    coalesced: bool = False

    @property
    def free(self) -> bool:
        """Nothing was spent upstream for this answer."""
        return self.status == "hit" or self.coalesced


@dataclass(slots=True)
class ChatResponse:
    content: str
    finish_reason: FinishReason
    usage: Usage
    model: str
    provider: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    id: str = ""
    refusal: str | None = None
    reasoning: str | None = None
    reasoning_signature: str | None = None
    native_finish_reason: str | None = None
    cost_usd: float | None = None
    latency_s: float = 0.0
    route: Route | None = None
    parsed: Any = None
    raw: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    cache: CacheInfo | None = None
    """What the response cache did (``None``: not used): ``cache.status`` is
    ``hit`` or ``miss``; ``cache.free`` says nothing was spent upstream."""

    @property
    def message(self) -> Message:
        """The answer as an assistant message, ready to append to a conversation."""
        return Message(
            role="assistant",
            content=self.content or None,
            tool_calls=list(self.tool_calls),
            reasoning=self.reasoning,
            reasoning_signature=self.reasoning_signature,
            extra={k: v for k, v in self.extra.items() if k in _REPLAYED_EXTRA},
        )


@dataclass(slots=True)
class EmbeddingResponse:
    vectors: list[list[float]]
    usage: Usage
    model: str
    provider: str
    cost_usd: float | None = None
    latency_s: float = 0.0
    route: Route | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ModelInfo:
    """What is known about a model; ``None`` means unknown, never a guess."""

    id: str
    provider: str
    context_window: int | None = None
    max_output_tokens: int | None = None
    input_modalities: tuple[str, ...] = ("text",)
    output_modalities: tuple[str, ...] = ("text",)
    supports_tools: bool | None = None
    supports_structured_output: bool | None = None
    supports_streaming: bool = True
    input_price_per_mtok: float | None = None
    output_price_per_mtok: float | None = None
    cached_input_price_per_mtok: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def supports_vision(self) -> bool:
        return "image" in self.input_modalities


@dataclass(slots=True)
class ConnectionCheck:
    """The verdict of ``test_connection``: ``ok`` and one line of detail (what was
    seen when it worked, what failed when not)."""

    provider: str
    ok: bool
    detail: str
    latency_s: float = 0.0
    error: LLMError | None = None


# --------------------------------------------------------------------------- stream events


@dataclass(slots=True)
class TextDelta:
    text: str
    type: Literal["text"] = "text"


@dataclass(slots=True)
class ReasoningDelta:
    text: str = ""
    signature: str | None = None
    type: Literal["reasoning"] = "reasoning"


@dataclass(slots=True)
class ToolCallDelta:
    """A piece of tool call ``index``: ``id`` and ``name`` come with the first
    piece, ``arguments`` is a fragment of the JSON text to append."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    extra: dict[str, Any] | None = None
    type: Literal["tool_call"] = "tool_call"


@dataclass(slots=True)
class UsageEvent:
    """Usage so far (cumulative, replaces any earlier figure)."""

    usage: Usage
    type: Literal["usage"] = "usage"


@dataclass(slots=True)
class Finish:
    """The last event of a successful stream; ``response`` is the whole answer."""

    reason: FinishReason
    response: ChatResponse
    type: Literal["finish"] = "finish"


@dataclass(slots=True)
class ErrorEvent:
    """A stream that failed after it started; ``partial`` is what arrived before."""

    error: LLMError
    partial: ChatResponse | None = None
    type: Literal["error"] = "error"


StreamEvent: TypeAlias = TextDelta | ReasoningDelta | ToolCallDelta | UsageEvent | Finish | ErrorEvent
