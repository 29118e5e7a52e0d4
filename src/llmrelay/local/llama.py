"""A GGUF chat model run by llama-cpp-python, off the event loop.

One ``LlamaEngine`` per model file. llama.cpp contexts are not thread-safe, so
each engine owns one worker thread: requests queue there while the event loop
stays free. Generation always streams inside the worker; a ``threading.Event``
checked between tokens stops it at once when the caller cancels. The chat
template is the one stored in the GGUF; usage is counted with the model's own
tokenizer (the formatted prompt, and the generated text).

A 135M model needs help to give its best: without a system message it gets
``DEFAULT_SYSTEM_PROMPT`` (the GGUF template's own default only names the model,
and it then answers "What is the capital of France?" in broken French), and it
samples at a low temperature with a mild repeat penalty. ``bench/bench_local_answers.py``
measures these choices on a set of plain questions over several seeds.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import weakref
from collections import deque
from collections.abc import AsyncGenerator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .. import errors
from ..types import ChatRequest, Message, TextPart

DEFAULT_MAX_TOKENS = 512
DEFAULT_TEMPERATURE = 0.2
DEFAULT_TOP_P = 0.95
REPEAT_PENALTY = 1.1  # small models loop without it
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant. Always answer in English. Keep answers short and factual."

_DONE = object()
_live: weakref.WeakSet[LlamaEngine] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Free models before the interpreter tears down what llama.cpp's finalizers need."""
    for engine in list(_live):
        engine.close()


class LlamaEngine:
    """Loads on first use; ``stream`` yields ``(text, None)`` pieces, then one
    ``(None, summary)`` with the finish reason and exact token counts."""

    def __init__(
        self,
        path: Path,
        *,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        provider: str = "local",
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    ) -> None:
        self.path = path
        self.system_prompt = system_prompt
        """Given to conversations that have no system message ("": none, the template's own)."""
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.provider = provider
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmrelay-llama")
        self._llm: Any = None
        self._formatter: Any = None
        self.load_s: float | None = None
        self.runs: deque[tuple[str, int]] = deque(maxlen=16)
        """The last generations: (finish reason or "cancelled", text pieces produced)."""

    # ---- worker-thread side -----------------------------------------------------------

    def _load(self) -> Any:
        if self._llm is not None:
            return self._llm
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError:
            from .._install import install_hint

            raise errors.ConfigError(f"the local chat model needs llama-cpp-python: {install_hint('local')}") from None
        import time

        start = time.perf_counter()
        try:
            llm = Llama(model_path=str(self.path), n_ctx=self.n_ctx, n_threads=self.n_threads, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise errors.ProviderError(f"cannot load {self.path.name}: {exc}", provider=self.provider) from None
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise errors.ConfigError(f"{self.path.name} has no chat template", provider=self.provider)
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=llm._model.token_get_text(llm.token_eos()),
            bos_token=llm._model.token_get_text(llm.token_bos()),
        )
        self._llm = llm
        self.load_s = time.perf_counter() - start
        _live.add(self)
        return llm

    def _generate(self, request: ChatRequest, cancel: threading.Event) -> Iterator[tuple[str | None, Any]]:
        llm = self._load()
        text, special, stop = open_prompt(self._formatter, request.messages, self.system_prompt)
        prompt = llm.tokenize(text.encode(), add_bos=not special, special=True)
        max_tokens = request.max_tokens or DEFAULT_MAX_TOKENS
        if len(prompt) + 1 > self.n_ctx:
            raise errors.ContextWindowExceeded(
                f"prompt is {len(prompt)} tokens, the local model's context window is {self.n_ctx}",
                provider=self.provider, model=request.model,
            )  # fmt: skip
        max_tokens = min(max_tokens, self.n_ctx - len(prompt))
        stops = list(_as_list(stop)) + list(request.stop or [])
        kwargs: dict[str, Any] = {
            "max_tokens": max_tokens,
            "temperature": DEFAULT_TEMPERATURE if request.temperature is None else request.temperature,
            "top_p": DEFAULT_TOP_P if request.top_p is None else request.top_p,
            "repeat_penalty": REPEAT_PENALTY,
            "stop": stops,
            "stream": True,
        }
        if request.seed is not None:
            kwargs["seed"] = request.seed
        kwargs.update(request.extra)  # a grammar (JSON answers, tool calls) comes here, checked by the provider
        pieces: list[str] = []
        finish = "stop"
        chunks = llm.create_completion(prompt, **kwargs)
        try:
            for chunk in chunks:
                if cancel.is_set():
                    finish = "cancelled"
                    break
                choice = chunk["choices"][0]
                text = choice.get("text") or ""
                if text:
                    pieces.append(text)
                    yield text, None
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
        finally:
            chunks.close()
            self.runs.append((finish, len(pieces)))
        output = "".join(pieces)
        completion = len(llm.tokenize(output.encode(), add_bos=False, special=False)) if output else 0
        yield None, {"finish": finish, "prompt_tokens": len(prompt), "completion_tokens": completion}

    # ---- event-loop side --------------------------------------------------------------

    async def load(self) -> float:
        """Load now (in the worker); returns the seconds it took."""
        await asyncio.get_running_loop().run_in_executor(self._pool, self._load)
        return self.load_s or 0.0

    async def stream(self, request: ChatRequest) -> AsyncGenerator[tuple[str | None, Any], None]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()

        def work() -> None:
            try:
                for item in self._generate(request, cancel):
                    loop.call_soon_threadsafe(queue.put_nowait, item)
            except BaseException as exc:  # handed to the caller's loop
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        future = loop.run_in_executor(self._pool, work)
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise _as_llm_error(item, self.provider)
                yield item
        finally:
            cancel.set()  # a caller that stops listening stops the generation
            if not future.done():
                future.add_done_callback(lambda f: f.exception())

    def close(self) -> None:
        """Free the model (in its worker, after any running generation) and stop the worker."""
        _live.discard(self)
        if self._llm is not None:
            try:
                self._pool.submit(self._free)
            except RuntimeError:  # at exit, after Python stopped its worker threads: free it here
                self._free()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _free(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()


def open_prompt(formatter: Any, messages: list[Message], system_prompt: str) -> tuple[str, bool, Any]:
    """The prompt the model is given, whether the template added its special tokens, and
    its stop strings: the chat template's, ending with the assistant's turn opened. A last assistant message
    is the beginning of that turn (a prefill, or an answer cut short elsewhere that this
    model is to go on with: the router's ``stream_resume``), left open for the model."""
    prefill = ""
    if messages and messages[-1].role == "assistant" and not messages[-1].tool_calls:
        prefill, messages = messages[-1].text, messages[:-1]
    formatted = formatter(messages=to_template_messages(messages, system_prompt))
    return formatted.prompt + prefill, bool(formatted.added_special), formatted.stop


def to_template_messages(messages: list[Message], system_prompt: str = DEFAULT_SYSTEM_PROMPT) -> list[dict[str, str]]:
    """Canonical messages as the plain role/content dicts chat templates expect, after
    ``system_prompt`` when they have no system message of their own."""
    out = []
    if system_prompt and not any(m.role == "system" for m in messages):
        out.append({"role": "system", "content": system_prompt})
    for message in messages:
        if isinstance(message.content, list) and any(not isinstance(p, TextPart) for p in message.content):
            raise errors.InvalidRequest("the local model reads text only: remove the images")
        role = "user" if message.role == "tool" else message.role
        text = message.text
        if message.role == "tool":
            text = f"Tool result ({message.name or message.tool_call_id}): {text}"
        out.append({"role": role, "content": text})
    return out


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _as_llm_error(exc: BaseException, provider: str) -> BaseException:
    if isinstance(exc, errors.LLMError | asyncio.CancelledError | KeyboardInterrupt):
        return exc
    text = str(exc)
    if "context window" in text or "exceed" in text:
        return errors.ContextWindowExceeded(f"the local model's context is too small: {text}", provider=provider)
    return errors.ProviderError(f"local generation failed: {type(exc).__name__}: {text}", provider=provider)
