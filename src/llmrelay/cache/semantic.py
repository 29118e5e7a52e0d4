"""The semantic cache: an earlier answer to a question that means the same.

Questions are embedded with the local all-MiniLM-L6-v2 model (no API call,
about a millisecond or two per question on a CPU) into unit vectors; a new
question reuses the answer of the closest earlier one when their cosine
similarity reaches the threshold. Only the last user message is compared by
meaning: everything before it, the parameters, the model group and the tenant
must match exactly (they make the namespace, see keys.semantic_parts), so a
similar question in another conversation or for another tenant never matches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .backends import CacheBackend

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float32]
else:
    Vector = Any

Embedder = Callable[[str], Awaitable[Vector]]


class SemanticIndex:
    def __init__(
        self,
        backend: CacheBackend,
        *,
        threshold: float = 0.95,
        max_entries: int = 1000,
        embed: Embedder | None = None,
    ) -> None:
        self._backend = backend
        self.threshold = threshold
        self.max_entries = max_entries
        self._embed = embed or minilm_embedder()

    async def vector(self, question: str) -> Vector:
        return await self._embed(question)

    async def nearest(self, namespace: str, vector: Vector, limit: int = 3) -> list[tuple[str, float]]:
        """``(entry key, similarity)`` of the closest questions at or above the threshold,
        closest first, at most ``limit`` (the closest one's answer may have expired)."""
        import numpy as np

        kept = await self._backend.vectors(namespace)
        if not kept:
            return []
        try:
            matrix = np.stack([np.frombuffer(v, dtype=np.float32) for _, v in kept])
            scores = matrix @ vector
        except ValueError:  # a stored vector of another size (another model): none comparable
            return []
        order = np.argsort(-scores)[:limit]
        return [(kept[i][0], float(scores[i])) for i in order if float(scores[i]) >= self.threshold]

    async def forget(self, namespace: str, key: str) -> None:
        """Drop a question whose answer is gone."""
        await self._backend.remove_vector(namespace, key)

    async def add(self, namespace: str, vector: Vector, key: str, ttl_s: float) -> None:
        await self._backend.add_vector(namespace, key, vector.astype("float32").tobytes(), ttl_s, self.max_entries)


def minilm_embedder() -> Embedder:
    """Unit vectors from the local MiniLM (loaded on first use, in a thread)."""
    lock = asyncio.Lock()
    model: list[Any] = []

    async def embed(text: str) -> Vector:
        async with lock:
            if not model:
                from ..local.assets import MINILM
                from ..local.minilm import MiniLM

                model.append(await asyncio.to_thread(MiniLM.load, MINILM.path()))
        vectors, _ = await asyncio.to_thread(model[0].encode, [text])
        first: Vector = vectors[0]
        return first

    return embed


__all__ = ["Embedder", "SemanticIndex", "minilm_embedder"]
