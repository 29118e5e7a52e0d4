"""Capability-aware routing: what a deployment accepts, what a request needs.

A deployment's ``Accepts`` says whether it takes tools, parallel tool calls,
images, audio and JSON-schema output, and the largest context window and
output it allows. ``None`` is unknown, and unknown always counts as accepted:
a request is never refused on a guess. The facts come from the catalogue's
capability table (``catalog.capabilities``), the deployment's
``max_output_tokens``, and the deployment's own ``accepts`` (YAML
``capabilities:``), which wins over both.

``needs(request)``, a pure function, says what a chat request asks for.
The router drops the deployments that lack something a request needs before
it picks one (``skip_unfit``): no upstream request, no breaker or health
record. When every deployment of the group and its fallbacks is left out for
the request's own sake, the call fails with ``CapabilityUnavailable`` (a 400)
naming what each one lacks (``refusal``).

The catalogue's context windows are not repeated here: ``validation.check_fits``
already refuses a prompt that cannot fit one, counting exactly when it is near
the edge. An ``accepts.context_window`` is checked here, against a low estimate
of the prompt (``LOW_CHARS_PER_TOKEN``), so no tokens are counted on the hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Final

from .. import errors
from ..catalog import capabilities
from ..types import ChatRequest, ImagePart, TextPart

if TYPE_CHECKING:
    from ..providers.base import Provider
    from .calls import Call
    from .groups import Deployment

LOW_CHARS_PER_TOKEN: Final = 6
"""Characters of text per token in the low prompt estimate. Real text runs about 3.5
to 5 characters a token (English prose, code; other scripts fewer), so a prompt this
estimate puts over a window surely cannot fit; one nearer the edge is left to the
provider, whose "too long" answer moves the call on without counting against it."""

FORCED_TOOL_KINDS: Final = frozenset(("anthropic", "bedrock"))
"""Provider kinds that ask for JSON-schema output through a forced tool call
(``structured.py``): there it needs tool calling, not native structured output."""

_AUDIO_PARTS: Final = frozenset(("audio", "input_audio"))
_MAX_REMEMBERED: Final = 4096


@dataclass(frozen=True, slots=True)
class Accepts:
    """What a deployment accepts. Each field is ``None`` when unknown (then accepted),
    else the fact: ``tools`` (tool definitions), ``parallel_tool_calls`` (a request
    setting ``parallel_tool_calls: true``), ``images`` and ``audio`` (input parts),
    ``json_schema`` (``response_format`` of the ``json_schema`` kind),
    ``context_window`` and ``max_output_tokens`` (tokens)."""

    tools: bool | None = None
    parallel_tool_calls: bool | None = None
    images: bool | None = None
    audio: bool | None = None
    json_schema: bool | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None

    def __post_init__(self) -> None:
        for name in ("tools", "parallel_tool_calls", "images", "audio", "json_schema"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise errors.ConfigError(f"capabilities: {name} must be true or false, not {value!r}")
        for name in ("context_window", "max_output_tokens"):
            value = getattr(self, name)
            if value is not None and not (type(value) is int and value > 0):
                raise errors.ConfigError(f"capabilities: {name} must be a whole number > 0, not {value!r}")

    @classmethod
    def of(cls, spec: Accepts | Mapping[str, Any]) -> Accepts:
        """An ``Accepts`` from itself or a mapping of its fields (unknown keys are a ``ConfigError``)."""
        if isinstance(spec, Accepts):
            return spec
        if not isinstance(spec, Mapping):
            raise errors.ConfigError(f"capabilities must be a mapping of facts, not {spec!r}")
        unknown = sorted(set(spec) - set(ACCEPTS_KEYS))
        if unknown:
            raise errors.ConfigError(
                f"capabilities: unknown key {', '.join(map(repr, unknown))} (known: {', '.join(ACCEPTS_KEYS)})"
            )
        return cls(**spec)

    def over(self, base: Accepts) -> Accepts:
        """These facts, and ``base``'s where these are unknown."""
        known = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        return replace(base, **known)


UNKNOWN: Final = Accepts()
ACCEPTS_KEYS: Final = tuple(f.name for f in fields(Accepts))


@dataclass(slots=True)
class Needs:
    """What a chat request needs of a deployment: ``prompt_tokens`` is a low estimate.
    (Not frozen: a frozen dataclass costs more to build, and one is built per call.)"""

    tools: bool = False
    parallel_tool_calls: bool = False
    images: bool = False
    audio: bool = False
    json_schema: bool = False
    prompt_tokens: int = 0
    max_tokens: int | None = None


def needs(request: ChatRequest) -> Needs:
    """What ``request`` needs: tools (declared, and ``tool_choice`` not ``"none"``),
    parallel tool calls (asked for explicitly with ``parallel_tool_calls: true``),
    image and audio parts, JSON-schema output, its prompt's size and ``max_tokens``."""
    chars, images, audio = 0, False, False
    for message in request.messages:
        content = message.content
        if content is None:
            continue
        if isinstance(content, str):
            chars += len(content)
            continue
        for part in content:
            if isinstance(part, TextPart):
                chars += len(part.text)
            elif isinstance(part, ImagePart):
                images = True
            elif getattr(part, "type", None) in _AUDIO_PARTS:
                audio = True
    tools = bool(request.tools) and request.tool_choice != "none"
    fmt = request.response_format
    return Needs(
        tools=tools,
        parallel_tool_calls=tools and request.extra.get("parallel_tool_calls") is True,
        images=images,
        audio=audio,
        json_schema=fmt is not None and fmt.type == "json_schema",
        prompt_tokens=chars // LOW_CHARS_PER_TOKEN,
        max_tokens=request.max_tokens,
    )


def lacking(accepts: Accepts, need: Needs, *, windows: bool = True) -> list[str]:
    """What ``accepts`` lacks of ``need``, one phrase each (empty: it can take the request).
    ``windows=False`` leaves the context window unchecked."""
    missing: list[str] = []
    if need.tools and accepts.tools is False:
        missing.append("no tool calling")
    if need.parallel_tool_calls and accepts.parallel_tool_calls is False:
        missing.append("no parallel tool calls")
    if need.images and accepts.images is False:
        missing.append("no image input")
    if need.audio and accepts.audio is False:
        missing.append("no audio input")
    if need.json_schema and accepts.json_schema is False:
        missing.append("no JSON-schema output")
    window = accepts.context_window
    if windows and window is not None and need.prompt_tokens > window:
        missing.append(f"a prompt of over {need.prompt_tokens:,} tokens, past its {window:,}-token context window")
    limit = accepts.max_output_tokens
    if need.max_tokens is not None and limit is not None and need.max_tokens > limit:
        missing.append(f"max_tokens {need.max_tokens:,}, past its {limit:,}-token output limit")
    return missing


def catalogue_accepts(model: str, kind: str | None = None) -> Accepts:
    """What the capability table knows of ``model`` served by a provider of ``kind``
    (``None``: not known). The table's context window is left out (``check_fits`` has it)."""
    facts = capabilities(model)
    modalities = facts.get("input_modalities")
    tools = facts.get("supports_tools")
    structured = tools if kind in FORCED_TOOL_KINDS else facts.get("supports_structured_output")
    return Accepts(
        tools=tools,
        images=None if modalities is None else "image" in modalities,
        audio=None if modalities is None else "audio" in modalities,
        json_schema=structured,
        max_output_tokens=facts.get("max_output_tokens"),
    )


def resolve(dep: Deployment, kind: str | None) -> Accepts:
    """What ``dep`` accepts when its provider is of ``kind``: its own ``accepts`` over its
    ``max_output_tokens`` over the catalogue's facts."""
    found = catalogue_accepts(dep.model, kind)
    if dep.max_output_tokens is not None:
        found = replace(found, max_output_tokens=dep.max_output_tokens)
    return found if dep.accepts is None else dep.accepts.over(found)


_resolved: dict[int, tuple[Deployment, str | None, Accepts]] = {}
"""``resolve``'s answers by ``id(dep)``; the entry holds ``dep``, so its id is not reused meanwhile."""


def accepted(dep: Deployment, kind: str | None) -> Accepts:
    """``resolve(dep, kind)``, worked out once per deployment (this is on every request's path)."""
    hit = _resolved.get(id(dep))
    if hit is not None and hit[0] is dep and hit[1] == kind:
        return hit[2]
    if len(_resolved) >= _MAX_REMEMBERED:
        _resolved.clear()
    found = resolve(dep, kind)
    if found == UNKNOWN:
        found = UNKNOWN  # one object: ``skip_unfit`` passes it over by identity
    _resolved[id(dep)] = (dep, kind, found)
    return found


def _kind(provider_for: Callable[[str], Provider], name: str) -> str | None:
    try:
        return provider_for(name).config.kind
    except errors.LLMError:  # not configured: the router says so when it tries it
        return None


def skip_unfit(
    members: Iterable[Deployment],
    call: Call,
    request: ChatRequest,
    provider_for: Callable[[str], Provider],
    *,
    windows: bool = True,
) -> None:
    """Leave out, for this call, the deployments of ``members`` that lack something
    ``request`` needs: each is skipped (no attempt, nothing recorded against it) and noted
    with what it lacks. The request's needs are worked out only when a deployment has a
    fact to hold them to."""
    need: Needs | None = None
    for dep in members:
        if dep.id in call.skipped:
            continue
        accepts = accepted(dep, _kind(provider_for, dep.provider))
        if accepts is UNKNOWN:
            continue
        if need is None:
            need = needs(request)
        missing = lacking(accepts, need, windows=windows)
        if missing:
            why = ", ".join(missing)
            call.skipped.add(dep.id)
            call.note(dep.id, why)
            call.errors.append(errors.CapabilityUnavailable(f"{dep.id}: {why}", tried=[(dep.id, why)]))


_REQUEST_OWN = (errors.CapabilityUnavailable, errors.ContextWindowExceeded)


def refusal(call: Call) -> errors.CapabilityUnavailable | None:
    """The error for a call every deployment of the chain left out for the request's own
    sake (a capability it lacks, or a prompt too long for it), at least one of them for a
    capability; ``None`` for any other call (an outage, a failure, a deployment resting)."""
    members = [dep.id for group in call.chain for dep in group.members]
    if not call.errors or not set(members) <= call.skipped:
        return None
    if not all(isinstance(e, _REQUEST_OWN) for e in call.errors):
        return None
    if not any(isinstance(e, errors.CapabilityUnavailable) for e in call.errors):
        return None  # every prompt too long: ``ContextWindowExceeded`` says it
    tried = [(dep, call.notes.get(dep, "left out")) for dep in dict.fromkeys(members)]
    listing = "; ".join(f"{dep}: {why}" for dep, why in tried)
    return errors.CapabilityUnavailable(
        f"no deployment of {call.requested!r} can take this request: {listing}", tried=tried
    )


__all__ = [
    "ACCEPTS_KEYS",
    "LOW_CHARS_PER_TOKEN",
    "UNKNOWN",
    "Accepts",
    "Needs",
    "accepted",
    "catalogue_accepts",
    "lacking",
    "needs",
    "refusal",
    "resolve",
    "skip_unfit",
]
