"""Structured output: answers validated into a pydantic model, retried when invalid.

    python examples/structured_output.py ["a sentence about a book"] [--model PROVIDER/MODEL]
    python examples/structured_output.py --show-retry   # a scripted model whose first answer is broken

client.chat(..., response_format=Book) asks for JSON matching Book's schema and
returns the validated object in response.parsed. An answer that is not valid
JSON, or does not match the schema, raises StructuredOutputError; ask() then
tries again (up to --attempts times), showing the model its invalid answer and
what was wrong with it. The local model (local/smollm2, the default offline) is
held to the schema by a grammar, so it usually succeeds at once; hosted models
without native JSON-schema support are where the retry earns its keep.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TypeVar

from pydantic import BaseModel, Field

from llmrelay import Client, LLMError, StructuredOutputError
from llmrelay.testing import FakeProvider

M = TypeVar("M", bound=BaseModel)
TEXTS = [
    "Frankenstein was written by Mary Shelley and first published in 1818.",
    "Jane Austen's novel Pride and Prejudice appeared in 1813.",
    "The Hobbit by J. R. R. Tolkien was published in 1937.",
]


class Book(BaseModel):
    title: str
    author: str
    year: int = Field(description="year of first publication")


def ask(client: Client, model: str, schema: type[M], text: str, attempts: int = 3, **params: Any) -> tuple[M, int]:
    """``text`` turned into a validated ``schema`` instance, and the attempt that produced it."""
    messages: list[dict[str, str]] = [
        {"role": "system", "content": f"Extract the {schema.__name__.lower()} details as JSON."},
        {"role": "user", "content": text},
    ]
    for attempt in range(1, attempts + 1):
        try:
            return client.chat(model, messages, response_format=schema, **params).parsed, attempt
        except StructuredOutputError as exc:
            print(f"  attempt {attempt} was invalid: {exc.message}")
            if attempt == attempts:
                raise
            messages += [
                {"role": "assistant", "content": exc.raw_text},
                {"role": "user", "content": f"That is not valid: {exc.message}. Reply again with only the JSON."},
            ]
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Extract validated structured data with retries.")
    parser.add_argument("texts", nargs="*", default=TEXTS)
    parser.add_argument("--model", default=os.environ.get("LLMRELAY_DEFAULT_MODEL") or "local/smollm2")
    parser.add_argument("--attempts", type=int, default=3)
    parser.add_argument("--show-retry", action="store_true", help="use a scripted model: broken JSON, then valid")
    args = parser.parse_args(argv)
    providers = []
    if args.show_retry:
        broken, valid = (
            '{"title": "Frankenstein", "author": ',
            '{"title": "Frankenstein", "author": "Mary Shelley", "year": 1818}',
        )
        providers, args.model, args.texts = [FakeProvider("scripted", [broken, valid])], "scripted/demo", TEXTS[:1]
    with Client(providers=providers) as client:
        for text in args.texts:
            print(f"text: {text}")
            try:
                book, attempt = ask(client, args.model, Book, text, args.attempts, max_tokens=80, temperature=0, seed=7)
            except LLMError as exc:
                print(f"  failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                return 1
            print(f"  -> {book!r}  (valid on attempt {attempt})")
            print(f"     as JSON: {book.model_dump_json()}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
