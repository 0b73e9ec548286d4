"""Metrics: pure numpy functions, registered in ``benchbed.registry.METRICS``.

Registry names are the flat keys records use. Ranking metrics are registered with a ``@k`` suffix and are
looked up from a concrete key such as ``ndcg@10`` by :func:`resolve`. Each entry's meta holds
``higher_is_better`` (what ``check`` uses to tell a regression from an improvement), ``kind`` ("ranking"
or "ctr"), ``unit`` (what ``MetricValue.n`` counts) and a one-line ``definition``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from benchbed.errors import ConfigError
from benchbed.metrics.base import MetricValue
from benchbed.metrics.classification import auc, gauc, logloss, sigmoid, uauc, user_ndcg
from benchbed.metrics.ranking import (
    hit_rate,
    hits_from_rankings,
    mrr,
    ndcg,
    positive_counts,
    precision,
    recall,
    top_k,
)
from benchbed.registry import METRICS

__all__ = [
    "MetricValue",
    "ResolvedMetric",
    "auc",
    "gauc",
    "higher_is_better",
    "hit_rate",
    "hits_from_rankings",
    "logloss",
    "mrr",
    "ndcg",
    "positive_counts",
    "precision",
    "recall",
    "resolve",
    "sigmoid",
    "top_k",
    "uauc",
    "user_ndcg",
]

_RANKING: dict[str, tuple[Callable[..., MetricValue], str]] = {
    "hr@k": (hit_rate, "share of users with a positive in the top k"),
    "ndcg@k": (ndcg, "binary-gain NDCG of the top k; IDCG over min(k, |positives|)"),
    "recall@k": (recall, "positives in the top k / |positives| (RecBole)"),
    "recall_min@k": (
        partial(recall, denominator="min_k"),
        "positives in the top k / min(k, |positives|) (CLLM4Rec)",
    ),
    "mrr@k": (mrr, "reciprocal rank of the first positive in the top k, 0 if none"),
    "precision@k": (precision, "positives in the top k / k"),
}
_CTR: dict[str, tuple[Callable[..., MetricValue], bool, str, str]] = {
    "auc": (auc, True, "rows", "ROC-AUC over all rows, ties at average rank"),
    "uauc": (
        uauc,
        True,
        "users",
        "unweighted mean of per-user AUC, single-class users skipped (CoLLM)",
    ),
    "gauc": (gauc, True, "users", "per-user AUC weighted by positives, single-class users skipped"),
    "logloss": (
        logloss,
        False,
        "rows",
        "mean binary cross-entropy, probabilities clipped at 1e-15",
    ),
    "ndcg": (
        user_ndcg,
        True,
        "users",
        "per-user NDCG of a user's labeled rows ranked by score",
    ),
}

for _name, (_fn, _definition) in _RANKING.items():
    if _name not in METRICS:
        METRICS.register(
            _name,
            _fn,
            aliases=("hit@k",) if _name == "hr@k" else (),
            higher_is_better=True,
            kind="ranking",
            unit="users",
            definition=_definition,
        )
for _name, (_fn, _higher, _unit, _definition) in _CTR.items():
    if _name not in METRICS:
        METRICS.register(_name, _fn, higher_is_better=_higher, kind="ctr", unit=_unit, definition=_definition)
for _name, _definition in (  # item-to-text (benchbed.metrics.semantic), x100
    ("sc", "100 x cosine of sentence embeddings of generated and reference text (ILM 4.2), mean over rows"),
    ("attr_f1", "100 x F1 of the genre/category/decade set the text names vs the reference's set"),
):
    if _name not in METRICS:
        _fn_name = "semantic_consistency" if _name == "sc" else "attribute_f1"
        METRICS.register(
            _name,
            f"benchbed.metrics.semantic:{_fn_name}",
            higher_is_better=True,
            kind="text",
            unit="rows",
            definition=_definition,
        )


@dataclass(frozen=True)
class ResolvedMetric:
    """A concrete metric key (``ndcg@10``) split into its registered entry and cut-off."""

    key: str
    name: str  # registry name, e.g. "ndcg@k" or "auc"
    k: int | None
    fn: Callable[..., MetricValue]
    meta: dict[str, Any]

    @property
    def higher_is_better(self) -> bool:
        return bool(self.meta["higher_is_better"])


def resolve(key: str) -> ResolvedMetric:
    """``"ndcg@10"`` -> the ``ndcg@k`` entry with k=10; ``"auc"`` -> the ``auc`` entry with k=None."""
    base, sep, cut = key.partition("@")
    if sep:
        if not cut.isdigit() or int(cut) < 1:
            raise ConfigError(f"metric {key!r}: the cut-off after '@' must be a positive integer")
        name, k = f"{base}@k", int(cut)
    else:
        name, k = base, None
    name = METRICS.canonical(name)
    return ResolvedMetric(key=key, name=name, k=k, fn=METRICS.get(name), meta=METRICS.meta(name))


def higher_is_better(key: str) -> bool:
    """Direction of a metric key such as ``auc``, ``logloss`` or ``recall@20``."""
    return resolve(key).higher_is_better
