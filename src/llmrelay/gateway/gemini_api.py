"""Google's Gemini API at the gateway, for the ``google-genai`` SDK and Google's REST
examples: ``POST /v1beta/models/{model}:generateContent``, ``:streamGenerateContent``
(``?alt=sse``), ``:countTokens``, ``:embedContent``, ``:batchEmbedContents``, and
``GET /v1beta/models`` / ``GET /v1beta/models/{model}``; the same under ``/v1/``,
the SDK's default API version. Any provider answers, through the router.

The key comes as ``x-goog-api-key`` (the SDK) or ``?key=``; errors are Google's
error body with the status the SDK maps to its ``ClientError``/``ServerError``.
``GET /v1/models`` is also OpenAI's: a request with ``x-goog-api-key`` gets the
Gemini answer, any other the OpenAI one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..providers.gemini.inbound import (
    StreamEncoder,
    batch_embed_request_from_wire,
    batch_embed_response_to_wire,
    count_tokens_request_from_wire,
    count_tokens_to_wire,
    embed_request_from_wire,
    embed_response_to_wire,
    error_body,
    model_to_wire,
    models_to_wire,
    request_from_wire,
    response_to_wire,
)
from ..types import ChatResponse
from ..validation import check_request
from .chat import route_headers, serve_chat, serve_count, serve_embedding
from .checks import check_name
from .exchange import Api, Exchange
from .http import HTTPError
from .openai_api import get_model as openai_get_model
from .openai_api import list_models as openai_list_models

if TYPE_CHECKING:
    from .app import Gateway
    from .routes import RouteTable


def _error_body(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return error_body(status, body["error"]["message"])


GEMINI = Api("gemini", _error_body)
"""Errors on these routes are Google's error body."""


def _model(ex: Exchange) -> str:
    model = ex.params["model"].removeprefix("models/")
    check_name(model)
    return model


async def generate_content(gw: Gateway, ex: Exchange) -> None:
    await _chat(gw, ex, stream=False)


async def stream_generate_content(gw: Gateway, ex: Exchange) -> None:
    if ex.query.get("alt") != "sse":
        raise HTTPError(400, "streamGenerateContent is served as server-sent events: add ?alt=sse", param="alt")
    await _chat(gw, ex, stream=True)


async def _chat(gw: Gateway, ex: Exchange, *, stream: bool) -> None:
    model = _model(ex)
    request = request_from_wire(await gw.json_request(ex), model)
    check_request(request)

    async def to_wire(response: ChatResponse) -> dict[str, Any]:
        return response_to_wire(response)

    await serve_chat(gw, ex, request, stream=stream, to_wire=to_wire, encoder=lambda: StreamEncoder(model))


async def count_tokens(gw: Gateway, ex: Exchange) -> None:
    request = count_tokens_request_from_wire(await gw.json_request(ex), _model(ex))
    await ex.reply(200, count_tokens_to_wire(await serve_count(gw, ex, request)))


async def embed_content(gw: Gateway, ex: Exchange) -> None:
    request = embed_request_from_wire(await gw.json_request(ex), _model(ex))
    response = await serve_embedding(gw, ex, request)
    await ex.reply(200, embed_response_to_wire(response), route_headers(response.route))


async def batch_embed_contents(gw: Gateway, ex: Exchange) -> None:
    request = batch_embed_request_from_wire(await gw.json_request(ex), _model(ex))
    response = await serve_embedding(gw, ex, request)
    await ex.reply(200, batch_embed_response_to_wire(response), route_headers(response.route))


def _google(ex: Exchange) -> bool:
    """A request from Google's SDK or REST examples (their key header, or ``?key=``)."""
    return ex.header(b"x-goog-api-key") is not None or "key" in ex.query


async def list_models(gw: Gateway, ex: Exchange) -> None:
    if ex.path.startswith("/v1/") and not _google(ex):
        await openai_list_models(gw, ex)
        return
    names = gw.listed_models(ex.caller)
    await ex.reply(200, models_to_wire(names, embedding=[n for n in names if _embedding(n)]))


async def get_model(gw: Gateway, ex: Exchange) -> None:
    if ex.path.startswith("/v1/") and not _google(ex):
        await openai_get_model(gw, ex)
        return
    model = ex.params["model"].removeprefix("models/")
    gw.check_listed(ex.caller, model)
    await ex.reply(200, model_to_wire(model, embedding=_embedding(model)))


def _embedding(name: str) -> bool:
    return "embed" in name.lower() or "minilm" in name.lower()


def add_routes(routes: RouteTable) -> None:
    """The Gemini routes, under ``/v1beta/`` and the SDK's default ``/v1/``; ``GET /v1/models``
    and ``GET /v1/models/{model}`` answer OpenAI's SDK too (see the module docstring)."""
    actions = (
        ("generateContent", generate_content), ("streamGenerateContent", stream_generate_content),
        ("countTokens", count_tokens), ("embedContent", embed_content),
        ("batchEmbedContents", batch_embed_contents),
    )  # fmt: skip
    for version in ("v1beta", "v1"):
        for action, handler in actions:
            routes.add("POST", f"/{version}/models/{{model:path}}:{action}", handler, api=GEMINI, metered=True)
    routes.add("GET", "/v1beta/models", list_models, api=GEMINI)
    routes.add("GET", "/v1beta/models/{model:path}", get_model, api=GEMINI)


__all__ = ["GEMINI", "add_routes", "get_model", "list_models"]
