"""The metric registry: every flat record key resolves to a function with a direction and a definition."""

from __future__ import annotations

import numpy as np
import pytest

from benchbed.errors import BenchbedError, ConfigError
from benchbed.metrics import MetricValue, higher_is_better, resolve
from benchbed.registry import METRICS


def test_every_metric_has_direction_kind_and_definition() -> None:
    expected = {
        "auc",
        "uauc",
        "gauc",
        "logloss",
        "ndcg",
        "hr@k",
        "ndcg@k",
        "recall@k",
        "mrr@k",
        "precision@k",
    }
    assert expected <= set(METRICS.names())
    for name in METRICS.names():
        meta = METRICS.meta(name)
        assert isinstance(meta["higher_is_better"], bool)
        assert meta["kind"] in ("ranking", "ctr", "text") and meta["definition"]


def test_directions() -> None:
    assert higher_is_better("auc") and higher_is_better("recall@20") and higher_is_better("ndcg")
    assert not higher_is_better("logloss")


def test_resolve_flat_keys_and_call() -> None:
    hits = np.array([[0, 1], [1, 0]], dtype=bool)
    n_pos = np.array([4, 1])
    metric = resolve("recall_min@2")
    assert metric.name == "recall_min@k" and metric.k == 2
    assert metric.fn(hits, n_pos, metric.k) == MetricValue(0.75, 2)  # (1/2 + 1/1) / 2
    assert resolve("recall@2").fn(hits, n_pos, 2).value == pytest.approx((1 / 4 + 1) / 2)
    assert resolve("hit@2").name == "hr@k"  # alias
    ctr = resolve("ndcg")
    assert ctr.k is None and ctr.meta["kind"] == "ctr"
    assert resolve("ndcg@10").meta["kind"] == "ranking"


def test_bad_keys() -> None:
    with pytest.raises(ConfigError, match="cut-off"):
        resolve("ndcg@ten")
    with pytest.raises(BenchbedError, match="unknown metric 'acu'"):
        resolve("acu")
