"""Semantic search: rank documents by meaning with local embeddings and cosine similarity.

    python examples/semantic_search.py ["your query" ...] [--answer]

Embeds ten short help-centre articles and the queries with the local
all-MiniLM-L6-v2 model (local/all-minilm-l6-v2: offline, no key, deterministic),
then prints the three closest articles to each query with their cosine
similarity. The queries share few words with the articles they should find:
the match is by meaning. With --answer, the chat model (local/smollm2) answers
each query using the best article as its context (retrieval-augmented generation).
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from llmrelay import Client

EMBEDDING_MODEL = "local/all-minilm-l6-v2"
DOCUMENTS = [
    "To change your password, open Settings, choose Security and click 'Reset password'.",
    "Orders ship within two business days; delivery usually takes three to five days.",
    "You can return any item within 30 days for a full refund to your original payment method.",
    "Our support team is available by chat from 9am to 6pm, Monday to Friday.",
    "Premium members get free shipping, early access to sales and a monthly gift.",
    "We accept Visa, Mastercard, PayPal and bank transfers.",
    "To delete your account, contact support; your data is erased within 14 days.",
    "The mobile app is available for iPhone and Android phones.",
    "Gift cards never expire and can be used for any product in the store.",
    "Two-factor authentication adds a one-time code from your phone when you sign in.",
]
QUERIES = ["I forgot my login credentials", "How long until my parcel gets here?", "Can I get my money back?"]


def search(client: Client, documents: list[str], queries: list[str], top: int = 3) -> list[list[tuple[float, int]]]:
    """For each query, the ``top`` (cosine similarity, document index) pairs, best first."""
    vectors = np.array(client.embed(EMBEDDING_MODEL, documents + queries).vectors, dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    docs, asked = vectors[: len(documents)], vectors[len(documents) :]
    scores = asked @ docs.T  # unit vectors: the dot product is the cosine similarity
    ranked = np.argsort(-scores, axis=1)[:, :top]
    return [[(float(scores[q, d]), int(d)) for d in row] for q, row in enumerate(ranked)]


def answer(client: Client, model: str, query: str, context: str) -> str:
    messages = [
        {"role": "system", "content": f"Answer the question in one sentence using this article:\n{context}"},
        {"role": "user", "content": query},
    ]
    return client.chat(model, messages, max_tokens=60, temperature=0, seed=3).content.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Semantic search over a small set of documents.")
    parser.add_argument("queries", nargs="*", default=QUERIES)
    parser.add_argument("--answer", action="store_true", help="answer each query from its best document")
    parser.add_argument("--model", default=os.environ.get("LLMRELAY_DEFAULT_MODEL") or "local/smollm2")
    args = parser.parse_args(argv)
    with Client() as client:
        results = search(client, DOCUMENTS, args.queries)
        for query, hits in zip(args.queries, results, strict=True):
            print(f"query: {query}")
            for rank, (score, index) in enumerate(hits, 1):
                print(f"  {rank}. {score:.3f}  [doc {index}] {DOCUMENTS[index]}")
            if args.answer:
                print(f"  answer: {answer(client, args.model, query, DOCUMENTS[hits[0][1]])}")
            print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
