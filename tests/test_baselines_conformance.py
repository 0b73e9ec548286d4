"""Every ID baseline must find a planted block structure (the conformance pattern of the implicit library).

Users interact only with items of their own block. After training, the held-out test item (always in the
user's block) must rank far above random among the items the user has not seen, and the top of each
ranking must be mostly in-block. Random ranking gives a mean percentile of 0.5 and an in-block share of
about 0.12 at 5; the thresholds are far from both and far from what the models reach (percentile ~0.05-0.10,
share 0.75-1.0). Small epochs and a high learning rate keep each model to a few seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from test_baselines_support import leave_last_out, planted_blocks

from benchbed.api import RunContext, ScoreRequests, TaskSetup
from benchbed.methods import build_method

TOPK = TaskSetup(task="topk", feedback="interactions")  # every training interaction a positive

FAST = {"stopping_step": 100, "batch_size": 128}
TOPK_PARAMS = {
    "mf-bpr": {**FAST, "lr": 0.05, "epochs": 30},
    "mf": {**FAST, "lr": 0.05, "epochs": 30, "dim": 32},
    "lightgcn": {**FAST, "lr": 0.05, "epochs": 30},
    "multivae": {**FAST, "lr": 0.01, "epochs": 30},
    "sasrec": {**FAST, "lr": 0.02, "epochs": 12, "batch_size": 256, "dim": 32, "n_layers": 1, "max_len": 10},
    "din": {**FAST, "lr": 0.01, "epochs": 15, "batch_size": 256, "dim": 16, "mlp_hidden": [32]},
    "als": {"dim": 16},
    "recbole:NeuMF": {**FAST, "lr": 0.02, "epochs": 12, "batch_size": 256},
}


@pytest.fixture(scope="module")
def blocks():
    data, user_block, item_block = planted_blocks()
    return leave_last_out(data), user_block, item_block


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TOPK_PARAMS))
def test_topk_finds_planted_blocks(name: str, blocks) -> None:
    split, user_block, item_block = blocks
    method = build_method(name, TOPK_PARAMS[name])
    method.fit(split, RunContext(setup=TOPK, seed=0))

    users = np.arange(split.n_users)
    past = split.train.sort_values("timestamp", kind="stable")
    hist = past.groupby("user")["item"].apply(list).reindex(users).tolist()
    valid_item = split.valid.set_index("user")["item"].reindex(users).to_numpy()
    histories = [h + [v] for h, v in zip(hist, valid_item, strict=True)]  # the test rows' past
    scores = np.asarray(method.score_all(users, histories), dtype=np.float64)
    assert scores.shape == (split.n_users, split.n_items)
    for u in users:
        scores[u, histories[u]] = -np.inf  # rank only unseen items

    target = split.test.set_index("user")["item"].reindex(users).to_numpy()
    candidates = np.isfinite(scores).sum(axis=1)
    percentile = ((scores > scores[users, target][:, None]).sum(axis=1) / candidates).mean()
    top5 = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    in_block = (item_block[top5] == user_block[:, None]).mean()
    assert percentile < 0.25, f"{name}: held-out in-block items rank at percentile {percentile:.3f}"
    assert in_block > 0.5, f"{name}: only {in_block:.2f} of the top-5 are in the user's block"


CTR_PARAMS = {
    "mf": {**FAST, "lr": 0.05, "epochs": 30, "dim": 32},
    "din": {**FAST, "lr": 0.01, "epochs": 15, "batch_size": 256, "dim": 16, "mlp_hidden": [32]},
    "mf-bpr": {**FAST, "lr": 0.05, "epochs": 30},
    "recbole:FM": {**FAST, "lr": 0.02, "epochs": 15, "batch_size": 256},  # context-aware pass-through
    "recbole:GRU4Rec": {**FAST, "lr": 0.01, "epochs": 10, "batch_size": 256},  # sequential pass-through
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CTR_PARAMS))
def test_ctr_separates_planted_labels(name: str) -> None:
    """Labeled blocks: in-block rows are positive, out-of-block rows negative; test AUC must be high."""
    data, _, _ = planted_blocks(per_user=8, negatives=8, seed=1)
    split = leave_last_out(data, n_valid=3, n_test=4)
    method = build_method(name, CTR_PARAMS[name])
    method.fit(split, RunContext(seed=0))
    test = split.test
    scores = method.score(
        ScoreRequests(test["user"].to_numpy(), test["item"].to_numpy(), [list(h) for h in test["history"]])
    )
    assert np.isfinite(scores).all()
    auc = roc_auc_score(test["label"], scores)
    assert auc > 0.8, f"{name}: test AUC {auc:.3f} on planted labels"
