"""EASE: the closed form against ridge regressions solved one column at a time, RecBole's own EASE on the same
ml-100k split (built through the adapter), and the full-ranking task against pop.

Why the tolerances catch a wrong model: a missing ``-1/P_jj`` column scaling changes the per-user order
(RecBole's scores then differ by far more than 1e-4 relative), a diagonal left in ``B`` ranks each training
item first, and a transposed ``B`` (``B_ij`` vs ``B_ji``) fails the per-column ridge check.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from benchbed.api import RunContext, TaskSetup
from benchbed.baselines.ease import EASE, ease_weights
from benchbed.data.prepare import prepare_split
from benchbed.errors import ConfigError
from benchbed.methods import build_method
from benchbed.tasks.topk import TopKTask

TOPK = TaskSetup(task="topk", feedback="interactions")


def test_closed_form_equals_ridge_regression_of_each_item_on_the_others() -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((30, 7)) < 0.35).astype(np.float64)
    reg = 2.5
    b = ease_weights(sp.csr_matrix(x), reg)
    g = x.T @ x
    for j in range(x.shape[1]):
        others = [i for i in range(x.shape[1]) if i != j]
        ridge = np.linalg.solve(g[np.ix_(others, others)] + reg * np.eye(len(others)), g[others, j])
        np.testing.assert_allclose(b[others, j], ridge, rtol=1e-10, atol=1e-12)
        assert b[j, j] == 0.0


@pytest.fixture(scope="module")
def ml100k_split():
    return prepare_split("ml-100k", "random-per-user").split


def test_scores_match_recboles_ease_on_the_same_split(ml100k_split, tmp_path: Path) -> None:
    from benchbed.baselines.recbole_adapter import RecBoleSession
    from benchbed.baselines.recbole_files import DataPlan

    split = ml100k_split
    ctx = RunContext(setup=TOPK, seed=0, cache_dir=tmp_path)
    ours = build_method("ease", {})
    ours.fit(split, ctx)
    session = RecBoleSession(
        split, "EASE", DataPlan("interactions", pointwise=False), {"reg_weight": 250.0}, ctx
    )
    import torch

    def recbole_scores(u: int) -> np.ndarray:
        batch = session.interaction({"user_id": np.array([session.user_map[u]])})
        return session.model.full_sort_predict(batch).numpy().ravel()[session.item_map]

    users = np.arange(0, split.n_users, 37)
    with torch.no_grad():
        theirs = np.stack([recbole_scores(int(u)) for u in users])
    mine = ours.score_all(users, [[] for _ in users])
    scale = np.abs(theirs).max()
    np.testing.assert_allclose(mine, theirs, atol=1e-4 * scale)  # RecBole inverts in float32


def test_full_ranking_beats_pop_and_never_ranks_a_training_item(ml100k_split, tmp_path: Path) -> None:
    split = ml100k_split
    ctx = RunContext(setup=TOPK, seed=0, cache_dir=tmp_path)
    task = TopKTask(ks=[20], metrics=["recall"], recall_denominator="min_k", exclude="train")
    scores = {}
    for name in ("ease", "pop"):
        method = build_method(name, {})
        method.fit(split, ctx)
        result = task.evaluate(method, split, ctx)
        scores[name] = result.metrics["all"]["recall_min@20"]
        if name == "ease":
            train = split.train.groupby("user")["item"].apply(set).to_dict()
            for user, ranked in zip(result.predictions["user"], result.predictions["ranked"], strict=True):
                assert not set(ranked) & train[user]
    assert scores["ease"] > scores["pop"] + 0.05, scores


def test_bad_reg_is_a_one_line_error() -> None:
    for bad in (0, -1.0, "x", True):
        with pytest.raises(ConfigError, match="reg"):
            EASE(reg=bad)
