"""CTR metrics: hand-computed cases (ties, single-class users) and agreement with scikit-learn and RecBole."""

from __future__ import annotations

import importlib
import math
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import log_loss, ndcg_score, roc_auc_score

from benchbed.errors import DataError
from benchbed.metrics.classification import auc, gauc, logloss, per_user_auc, sigmoid, uauc, user_ndcg


@pytest.fixture
def recbole_evaluator(monkeypatch: pytest.MonkeyPatch):
    """RecBole's metrics and collector modules, importable and callable on numpy 2."""
    try:
        importlib.import_module("benchbed.compat.recbole_shims").apply()
    except ImportError:
        pass
    for alias, value in {
        "float": float,
        "bool": bool,
        "float_": np.float64,
        "complex_": np.complex128,
    }.items():
        if not hasattr(np, alias):
            monkeypatch.setattr(np, alias, value, raising=False)
    return (
        importlib.import_module("recbole.evaluator.metrics"),
        importlib.import_module("recbole.evaluator.collector"),
    )


def _random_rows(seed: int, n_users: int = 150, tie_heavy: bool = False):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 40, size=n_users)
    users = np.repeat(rng.permutation(10 * n_users)[:n_users], sizes)  # sparse, unsorted user ids
    labels = (rng.random(len(users)) < rng.random(n_users).repeat(sizes)).astype(int)
    scores = rng.random(len(users))
    if tie_heavy:
        scores = np.round(scores, 1)
    shuffle = rng.permutation(len(users))
    return users[shuffle], labels[shuffle], scores[shuffle]


# ------------------------------------------------------------------ hand-computed cases
def test_auc_hand_cases_and_ties() -> None:
    assert auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]).value == pytest.approx(0.75)
    # a tied positive/negative pair counts one half: (0.5 + 1 + 1 + 1) / 4
    assert auc([0, 1, 0, 1], [1.0, 1.0, 0.0, 2.0]).value == pytest.approx(0.875)
    assert auc([1, 0, 1, 0, 0], [0.3] * 5) == auc([0, 0, 0, 1, 1], [0.3] * 5)
    assert auc([1, 0, 1, 0, 0], [0.3] * 5).value == pytest.approx(0.5)
    assert auc([1, 0, 1, 0], [1, 2, 3, 4]).n == 4
    single = auc([1, 1, 1], [0.1, 0.2, 0.3])
    assert single.n == 0 and math.isnan(single.value)


def test_uauc_and_gauc_skip_single_row_and_single_class_users() -> None:
    users = ["a", "a", "a", "b", "b", "c", "d", "d"]
    labels = [1, 1, 0, 1, 0, 1, 1, 1]
    scores = [0.9, 0.1, 0.5, 0.2, 0.3, 0.7, 0.4, 0.6]
    # a: positives 0.9 and 0.1 against negative 0.5 -> 0.5 (2 positives); b: 0.0 (1 positive);
    # c has one row and d one class: both skipped
    assert uauc(users, labels, scores).value == pytest.approx(0.25)
    assert uauc(users, labels, scores).n == 2
    assert gauc(users, labels, scores).value == pytest.approx((0.5 * 2 + 0.0 * 1) / 3)
    assert gauc(users, labels, scores).n == 2
    ids, values, pos = per_user_auc(users, labels, scores)
    assert ids.tolist() == ["a", "b", "c", "d"] and pos.tolist() == [2, 1, 1, 2]
    np.testing.assert_allclose(values[:2], [0.5, 0.0])
    assert np.isnan(values[2:]).all()
    undefined = uauc(["x", "y"], [1, 0], [0.2, 0.3])
    assert undefined.n == 0 and math.isnan(undefined.value)


def test_user_ndcg_hand_cases() -> None:
    d1, d2, d3 = 1.0, 1 / math.log2(3), 1 / math.log2(4)
    users = ["a", "a", "a", "b", "b", "c"]
    labels = [1, 0, 1, 0, 0, 1]
    scores = [0.2, 0.9, 0.5, 0.1, 0.3, 0.4]
    ndcg_a = (d2 + d3) / (d1 + d2)  # ranked 0.9 (neg), 0.5 (pos), 0.2 (pos)
    value = user_ndcg(users, labels, scores)
    assert value.value == pytest.approx((ndcg_a + 1.0) / 2)  # b has no positive; c's only row is positive
    assert value.n == 2
    only_mixed = user_ndcg(users, labels, scores, skip_single_class=True)
    assert only_mixed.value == pytest.approx(ndcg_a) and only_mixed.n == 1
    # a tie shares the average discount of the positions it spans, whatever the row order
    assert user_ndcg(["u", "u"], [1, 0], [0.5, 0.5]).value == pytest.approx((d1 + d2) / 2)
    assert user_ndcg(["u", "u"], [0, 1], [0.5, 0.5]).value == pytest.approx((d1 + d2) / 2)


def test_logloss_clips_and_rejects_logits() -> None:
    assert logloss([1, 0], [0.8, 0.4]).value == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    assert math.isfinite(logloss([1, 0], [0.0, 1.0]).value)  # clipped, not infinite
    with pytest.raises(DataError, match="sigmoid"):
        logloss([1, 0], [2.5, -1.0])
    probs = sigmoid([2.5, -1.0])
    assert logloss([1, 0], probs).value == pytest.approx(log_loss([1, 0], probs))


def test_bad_inputs_raise_one_line_errors() -> None:
    with pytest.raises(DataError, match="must be 0/1"):
        auc([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(DataError, match="NaN"):
        uauc([1, 1], [0, 1], [0.1, np.nan])
    with pytest.raises(DataError, match="has 2 entries, expected 3"):
        gauc([1, 1, 2], [0, 1, 1], [0.1, 0.2])


# ------------------------------------------------------------------ agreement with sklearn and RecBole
@pytest.mark.parametrize("tie_heavy", [False, True])
def test_auc_and_uauc_agree_with_sklearn(tie_heavy: bool) -> None:
    users, labels, scores = _random_rows(3, tie_heavy=tie_heavy)
    assert auc(labels, scores).value == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    # the CoLLM code: per-user roc_auc_score, skipping users with one row or one class
    per_user = []
    for u in np.unique(users):
        rows = users == u
        if rows.sum() > 1 and len(np.unique(labels[rows])) == 2:
            per_user.append(roc_auc_score(labels[rows], scores[rows]))
    value = uauc(users, labels, scores)
    assert value.n == len(per_user)
    assert value.value == pytest.approx(np.mean(per_user), abs=1e-6)


@pytest.mark.parametrize("tie_heavy", [False, True])
def test_user_ndcg_agrees_with_sklearn_ndcg_score(tie_heavy: bool) -> None:
    users, labels, scores = _random_rows(4, tie_heavy=tie_heavy)
    per_user = []
    for u in np.unique(users):
        rows = users == u
        if labels[rows].sum() == 0:
            continue
        if rows.sum() == 1:
            per_user.append(1.0)  # sklearn refuses single-document queries; one positive row is ideal
        else:  # ignore_ties=False: sklearn averages gains over tied scores, as benchbed does
            per_user.append(ndcg_score(labels[rows][None, :], scores[rows][None, :]))
    value = user_ndcg(users, labels, scores)
    assert value.n == len(per_user)
    assert value.value == pytest.approx(np.mean(per_user), abs=1e-6)


@pytest.mark.parametrize("tie_heavy", [False, True])
def test_gauc_agrees_with_recbole(recbole_evaluator, tie_heavy: bool) -> None:
    """RecBole's own path: pad each user's scores with -inf, sort descending, average ranks, GAUC."""
    import torch

    metrics, collector = recbole_evaluator
    users, labels, scores = _random_rows(5, tie_heavy=tie_heavy)
    ids, inverse = np.unique(users, return_inverse=True)
    lengths = np.bincount(inverse)
    width = lengths.max() + 1  # at least one -inf pad per row, as RecBole's full-sort scores have
    column = np.zeros(len(users), dtype=np.int64)
    order = np.argsort(inverse, kind="stable")
    column[order] = np.arange(len(users)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    score_mat = torch.full((len(ids), width), -np.inf, dtype=torch.float64)
    score_mat[inverse, column] = torch.from_numpy(scores)
    pos_mat = torch.zeros_like(score_mat)
    pos_mat[inverse, column] = torch.from_numpy(labels.astype(np.float64))

    desc_scores, desc_index = torch.sort(score_mat, dim=-1, descending=True)
    pos_index = torch.gather(pos_mat, 1, desc_index)
    avg_rank = collector.Collector._average_rank(SimpleNamespace(device="cpu"), desc_scores)
    pos_rank_sum = torch.where(pos_index == 1, avg_rank, torch.zeros_like(avg_rank)).sum(-1, keepdim=True)
    gauc_metric = metrics.GAUC({"metric_decimal_place": 10})
    expected = gauc_metric.metric_info(
        pos_rank_sum.numpy(), lengths.astype(np.float64), pos_mat.sum(1).numpy()
    )

    assert gauc(users, labels, scores).value == pytest.approx(expected, abs=1e-6)
    auc_metric = metrics.AUC({"metric_decimal_place": 10})
    assert auc(labels, scores).value == pytest.approx(auc_metric.metric_info(scores, labels), abs=1e-6)


def test_logloss_agrees_with_sklearn() -> None:
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 2, 2000)
    probs = rng.random(2000)
    assert logloss(labels, probs).value == pytest.approx(log_loss(labels, probs), abs=1e-6)


def test_user_ids_of_any_kind_group_the_same_way() -> None:
    users, labels, scores = _random_rows(7, n_users=40, tie_heavy=True)
    expected = uauc(users, labels, scores)
    for other in (users + 2**40, users - 5_000, users.astype(str), users.astype(np.uint16)):
        assert uauc(other, labels, scores) == expected
        assert gauc(other, labels, scores) == gauc(users, labels, scores)
        assert user_ndcg(other, labels, scores) == user_ndcg(users, labels, scores)
