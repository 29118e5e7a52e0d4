"""``llmrelay chat [MODEL] [PROMPT]``: one answer, or a conversation (REPL)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Annotated, Any

import typer

from .. import errors
from ..types import ChatResponse, Finish, Message, TextDelta
from . import app
from .common import State, plain, read_text, reported, stderr

REPL_HELP = "/model NAME  switch model · /system TEXT  set the system prompt · /reset  forget · /exit  quit"
_CUT = {"length": "cut: max tokens reached", "content_filter": "cut by the provider's content filter"}
"""Said after an answer that stopped short, by its finish reason."""


@app.command(short_help="Ask a model once (PROMPT given) or hold a conversation.")
def chat(
    ctx: typer.Context,
    model_or_prompt: Annotated[
        str | None, typer.Argument(metavar="MODEL", help="PROVIDER/MODEL or a model group.", show_default=False)
    ] = None,
    prompt: Annotated[
        str | None, typer.Argument(metavar="PROMPT", help="The question; '-' reads it from stdin.")
    ] = None,
    system: Annotated[str | None, typer.Option("--system", "-s", help="System prompt.")] = None,
    temperature: Annotated[
        float | None, typer.Option("--temperature", "-t", min=0.0, help="Sampling temperature (0: least random).")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", "-m", min=1, help="At most this many tokens in an answer.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole response as JSON.")] = False,
) -> None:
    """Ask MODEL (default: $LLMRELAY_DEFAULT_MODEL, the config's default_model, or
    else the local model). With a PROMPT: one streamed answer. Without: a
    conversation (Ctrl-C stops an answer, Ctrl-D or /exit leaves)."""
    model, question = _split_arguments(model_or_prompt, prompt)
    params: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens}
    with reported(ctx) as st:
        if question is None:
            if as_json:
                raise errors.InvalidRequest("--json needs a PROMPT")
            _repl(st, _default(st, model), system, params)
            return
        text = read_text(question, "PROMPT")
        if not text.strip():
            raise errors.InvalidRequest("PROMPT is empty: ask something")
        messages = [*_start(system), Message("user", text)]
        model = _default(st, model)
        if as_json:
            response = st.client().chat(model, messages, **params)
            typer.echo(json.dumps(_jsonable(response), indent=2, ensure_ascii=False))
        else:
            _stream_answer(st, model, messages, params)


def _split_arguments(first: str | None, second: str | None) -> tuple[str | None, str | None]:
    """``chat MODEL PROMPT``, ``chat MODEL``, ``chat PROMPT``: a lone argument is the
    model when it reads like ``PROVIDER/MODEL`` (one word with a slash), else the prompt."""
    if second is not None:
        return first, second
    if first is None:
        return None, None
    looks_like_model = "/" in first and not any(ch.isspace() for ch in first) and first != "-"
    return (first, None) if looks_like_model else (None, first)


def _start(system: str | None) -> list[Message]:
    return [Message("system", system)] if system else []


def _default(st: State, model: str | None) -> str | None:
    """``model``, else the configured default (``None``: the client's), else the local
    model, said on stderr (a key in the environment does not choose a model)."""
    if model:
        return model
    from ..client import LOCAL_DEFAULT

    client = st.client()
    if client.settings.default_model:
        return None
    why = "no default model set" if client.settings.providers else "no provider configured"
    stderr().print(
        f"[dim]{why}: answering with the local model {LOCAL_DEFAULT} (name a model, or set LLMRELAY_DEFAULT_MODEL)[/]"
    )
    return LOCAL_DEFAULT


def _stream_answer(
    st: State, model: str | None, messages: list[Message], params: dict[str, Any], *, in_repl: bool = False
) -> ChatResponse | None:
    """Print the answer as it comes; returns it. In a conversation Ctrl-C stops
    only the answer (``None``); otherwise it stops the program."""
    out = sys.stdout
    try:
        for event in st.client().stream(model, messages, **params):
            if isinstance(event, TextDelta):
                out.write(event.text)
                out.flush()
            elif isinstance(event, Finish):
                out.write("\n")
                out.flush()
                if event.reason in _CUT:
                    stderr().print(f"[{_CUT[event.reason]}]", style="dim", markup=False)
                return event.response
    except KeyboardInterrupt:
        out.write("\n")
        if not in_repl:
            raise
        stderr().print("[dim](answer stopped)[/]")
        return None
    return None


def _repl(st: State, model: str | None, system: str | None, params: dict[str, Any]) -> None:
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass
    err = stderr()
    current = _checked(st, model)  # what the prompt shows; a bad MODEL stops here
    err.print(f"[dim]{REPL_HELP}[/]")
    history = _start(system)
    while True:
        try:
            line = input(f"{current}> ")
        except EOFError:  # Ctrl-D or stdin closed
            err.print()
            return
        except KeyboardInterrupt:
            err.print()
            continue
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            command, _, arg = text.partition(" ")
            arg = arg.strip()
            if command in ("/exit", "/quit"):
                return
            if command == "/model":
                current = _switch(st, current, arg)
            elif command == "/system":
                history = _start(arg or None) + [m for m in history if m.role != "system"]
                err.print(f"[dim]system prompt {'set' if arg else 'cleared'}[/]")
            elif command == "/reset":
                history = _start(system)
                err.print("[dim]conversation forgotten[/]")
            elif command in ("/help", "/?"):
                err.print(f"[dim]{REPL_HELP}[/]")
            else:
                err.print(f"unknown command {plain(command)}")
                err.print(f"[dim]{REPL_HELP}[/]")
            continue
        history.append(Message("user", text))
        try:
            response = _stream_answer(st, current, history, params, in_repl=True)
        except errors.LLMError as exc:  # stay in the conversation
            err.print(f"[bold red]error:[/] {plain(str(exc))}")
            history.pop()
            continue
        if response is None:
            history.pop()
        else:
            history.append(response.message)


def _checked(st: State, model: str | None) -> str:
    """The model's name for the prompt (the default made explicit), once the client
    resolves it: an unknown provider or group, a missing key or a name without a
    provider fails here, before a question is sent."""
    client = st.client().aio
    name = model if model and model != "default" else client.default_model()
    client.resolve(name)
    return name


def _switch(st: State, current: str, wanted: str) -> str:
    """``/model NAME``: NAME if the client resolves it, else the current model, saying why."""
    err = stderr()
    if wanted:
        try:
            current = _checked(st, wanted)
        except errors.LLMError as exc:
            err.print(f"[bold red]error:[/] {plain(str(exc))} (still {plain(current)})")
            return current
    err.print(f"[dim]model: {plain(current)}[/]")
    return current


def _jsonable(response: ChatResponse) -> dict[str, Any]:
    data = asdict(response)
    data["usage"]["total_tokens"] = response.usage.total_tokens
    data.pop("raw", None)
    if response.parsed is not None:
        data["parsed"] = str(response.parsed)
    return data
