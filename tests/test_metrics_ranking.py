"""Ranking metrics: hand-computed cases, deterministic ties, and agreement with RecBole's metric functions."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

from benchbed.errors import DataError
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


@pytest.fixture
def recbole_metrics(monkeypatch: pytest.MonkeyPatch):
    """``recbole.evaluator.metrics`` importable and callable on numpy 2 (its code uses ``np.float``)."""
    try:
        importlib.import_module("benchbed.compat.recbole_shims").apply()
    except ImportError:
        pass
    for alias, value in {
        "float": float,
        "int": int,
        "bool": bool,
        "float_": np.float64,
        "complex_": np.complex128,
        "unicode_": np.str_,
    }.items():
        if not hasattr(np, alias):
            monkeypatch.setattr(np, alias, value, raising=False)
    return importlib.import_module("recbole.evaluator.metrics")


# ------------------------------------------------------------------ hand-computed cases
HITS = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0]], dtype=bool)
N_POS = np.array([2, 0, 3])  # user 1 has no positives: excluded everywhere


def test_users_without_positives_are_excluded_and_not_counted() -> None:
    for fn in (hit_rate, ndcg, recall, mrr, precision):
        assert fn(HITS, N_POS, 3).n == 2
    value = hit_rate(HITS, N_POS, 3)
    assert value.value == pytest.approx(1.0)  # both remaining users hit; counting user 1 would give 2/3


def test_hand_computed_values() -> None:
    d = [1 / math.log2(i + 2) for i in range(5)]  # discounts of ranks 1..5
    ndcg_u0 = (d[0] + d[2]) / (d[0] + d[1])  # IDCG over min(3, 2) = 2 positions
    ndcg_u2 = d[1] / (d[0] + d[1] + d[2])
    assert ndcg(HITS, N_POS, 3).value == pytest.approx((ndcg_u0 + ndcg_u2) / 2, abs=1e-12)
    assert mrr(HITS, N_POS, 3).value == pytest.approx((1 + 1 / 2) / 2)
    assert precision(HITS, N_POS, 3).value == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert recall(HITS, N_POS, 3).value == pytest.approx((1 + 1 / 3) / 2)
    # k=2: user 0 has 1 hit of 2 positives, user 2 has 1 hit of 3 positives
    assert recall(HITS, N_POS, 2).value == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert recall(HITS, N_POS, 2, denominator="min_k").value == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert hit_rate(HITS, N_POS, 1).value == pytest.approx(0.5)
    assert mrr(HITS, N_POS, 1).value == pytest.approx(0.5)


def test_k_larger_than_the_list_pads_with_misses() -> None:
    d = [1 / math.log2(i + 2) for i in range(5)]
    assert precision(HITS, N_POS, 5).value == pytest.approx((2 / 5 + 1 / 5) / 2)
    assert ndcg(HITS, N_POS, 5).value == pytest.approx(
        ((d[0] + d[2]) / (d[0] + d[1]) + d[1] / (d[0] + d[1] + d[2])) / 2, abs=1e-12
    )
    assert recall(HITS, N_POS, 5, denominator="min_k").value == pytest.approx((2 / 2 + 1 / 3) / 2)


def test_no_user_with_positives_is_undefined() -> None:
    value = ndcg(np.zeros((2, 3), dtype=bool), np.array([0, 0]), 3)
    assert value.n == 0 and math.isnan(value.value)


def test_bad_recall_denominator_and_shapes() -> None:
    with pytest.raises(DataError, match="denominator"):
        recall(HITS, N_POS, 3, denominator="k")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="n_pos"):
        ndcg(HITS, N_POS[:2], 3)


def test_hits_from_rankings_handles_padding_and_duplicates() -> None:
    ranked = np.array([[3, 1, -1], [0, 2, 5], [4, 7, 9]])
    positives = [np.array([1, 7, 7]), np.array([], dtype=np.int64), np.array([9, 4])]
    hits = hits_from_rankings(ranked, positives)
    expected = np.array([[0, 1, 0], [0, 0, 0], [1, 0, 1]], dtype=bool)
    np.testing.assert_array_equal(hits, expected)
    np.testing.assert_array_equal(positive_counts(positives), [2, 0, 2])
    with pytest.raises(DataError, match="positives has 2 users"):
        hits_from_rankings(ranked, positives[:2])


def test_top_k_breaks_ties_by_lower_item_id_and_pads() -> None:
    scores = np.array([[1.0, 2.0, 2.0, 0.0, -np.inf], [3.0, 3.0, 3.0, 3.0, 3.0]])
    ids, top = top_k(scores, 4)
    np.testing.assert_array_equal(ids, [[1, 2, 0, 3], [0, 1, 2, 3]])
    ids, top = top_k(scores, 7)  # longer than the row; -inf never ranks
    np.testing.assert_array_equal(ids, [[1, 2, 0, 3, -1, -1, -1], [0, 1, 2, 3, 4, -1, -1]])
    assert np.isneginf(top[0, 4:]).all()
    # candidate lists: ties at the cut-off go to the lower candidate *id*, not the lower column
    cand = np.array([[10, 7, 3, 5], [9, 4, 1, 0]])
    ids, _ = top_k(np.array([[0.5, 0.9, 0.5, 0.5], [2.0, 2.0, 1.0, 0.0]]), 2, candidates=cand)
    np.testing.assert_array_equal(ids, [[7, 3], [4, 9]])
    for k in (1, 5):  # the partial-sort path and the whole-row path
        with pytest.raises(DataError, match="NaN"):
            top_k(np.array([[0.5, 1.0], [np.nan, 1.0]]), k)


@pytest.mark.parametrize("k", [1, 7, 40, 45])
def test_top_k_matches_a_full_sort_on_tie_heavy_scores(k: int) -> None:
    rng = np.random.default_rng(k)
    scores = rng.integers(0, 4, size=(60, 40)).astype(np.float64)
    scores[rng.random(scores.shape) < 0.3] = -np.inf
    scores[:5] = rng.random((5, 40))  # some tie-free rows take the fast path
    cand = np.stack([rng.permutation(1000)[:40] for _ in range(60)])
    ids, top = top_k(scores, k, candidates=cand)
    order = np.lexsort((cand, -scores), axis=1)[:, : min(k, 40)]
    ref_ids = np.take_along_axis(cand, order, axis=1)
    ref_top = np.take_along_axis(scores, order, axis=1)
    ref_ids = np.where(np.isneginf(ref_top), -1, ref_ids)
    np.testing.assert_array_equal(ids[:, : min(k, 40)], ref_ids)
    np.testing.assert_array_equal(top[:, : min(k, 40)], ref_top)
    assert (ids[:, 40:] == -1).all()


# ------------------------------------------------------------------ agreement with RecBole
def _recbole(recbole_metrics, name: str, pos_index: np.ndarray, pos_len: np.ndarray) -> np.ndarray:
    metric = getattr(recbole_metrics, name)({"metric_decimal_place": 10, "topk": [pos_index.shape[1]]})
    if name in ("Hit", "MRR", "Precision"):
        return metric.metric_info(pos_index)
    return metric.metric_info(pos_index, pos_len)


def test_metrics_agree_with_recbole_on_random_hit_matrices(recbole_metrics) -> None:
    rng = np.random.default_rng(0)
    n, k_max = 500, 20
    n_pos = rng.integers(1, 30, size=n)
    hits = rng.random((n, k_max)) < np.minimum(n_pos, k_max)[:, None] / (2 * k_max)
    ours = {"Hit": hit_rate, "NDCG": ndcg, "MRR": mrr, "Recall": recall, "Precision": precision}
    for name, fn in ours.items():
        per_user = _recbole(recbole_metrics, name, hits, n_pos)
        for k in (1, 5, 10, 20):
            assert fn(hits, n_pos, k).value == pytest.approx(per_user[:, k - 1].mean(), abs=1e-6), (name, k)


def test_full_ranking_pipeline_agrees_with_recbole_evaluator(recbole_metrics) -> None:
    """benchbed's top_k + hits vs RecBole's own collector steps (torch.topk, pos matrix, gather)."""
    import torch

    rng = np.random.default_rng(1)
    n, m, k_max = 300, 250, 20
    scores = rng.random((n, m)).astype(np.float32)
    positives = [rng.choice(m, size=rng.integers(1, 25), replace=False) for _ in range(n)]
    train = [rng.choice(np.setdiff1d(np.arange(m), p), size=10, replace=False) for p in positives]
    for row, items in enumerate(train):
        scores[row, items] = -np.inf

    ids, _ = top_k(scores, k_max)
    hits = hits_from_rankings(ids, positives)
    n_pos = positive_counts(positives)

    scores_t = torch.from_numpy(scores)
    _, topk_idx = torch.topk(scores_t, k_max, dim=-1)
    pos_matrix = torch.zeros_like(scores_t, dtype=torch.int)
    pos_u = torch.from_numpy(np.repeat(np.arange(n), [len(p) for p in positives]))
    pos_matrix[pos_u, torch.from_numpy(np.concatenate(positives))] = 1
    pos_index = torch.gather(pos_matrix, 1, topk_idx).to(torch.bool).numpy()
    pos_len = pos_matrix.sum(dim=1).numpy()

    np.testing.assert_array_equal(hits, pos_index)
    np.testing.assert_array_equal(n_pos, pos_len)
    for name, fn in {"Hit": hit_rate, "NDCG": ndcg, "MRR": mrr, "Recall": recall}.items():
        per_user = _recbole(recbole_metrics, name, pos_index, pos_len)
        for k in (5, 10, 20):
            assert fn(hits, n_pos, k).value == pytest.approx(per_user[:, k - 1].mean(), abs=1e-6), (name, k)
