"""ComiRec-SA (benchbed.baselines.comirec): beats pop on planted data, exports the vectors it ranks with."""

from __future__ import annotations

import numpy as np
import pytest
from test_baselines_support import leave_last_out, planted_blocks

from benchbed.api import RunContext, TaskSetup
from benchbed.baselines.comirec import ComiRec, pad_histories
from benchbed.errors import ConfigError
from benchbed.methods import build_method
from benchbed.orchestration.embeddings import get_embeddings
from benchbed.tasks.topk import TopKTask

TOPK = TaskSetup(task="topk", feedback="interactions")
SMALL = {"max_iter": 600, "eval_every": 200, "dim": 16, "hidden": 16, "batch_size": 64}


@pytest.fixture(scope="module")
def blocks():
    data, user_block, item_block = planted_blocks(
        n_blocks=4, users_per_block=25, items_per_block=30, per_user=12
    )
    return leave_last_out(data), user_block, item_block


@pytest.fixture(scope="module")
def fitted(blocks):
    split, _, _ = blocks
    method = ComiRec(**SMALL)
    method.fit(split, RunContext(setup=TOPK, seed=0))
    return method


def test_beats_pop_on_planted_blocks(blocks, fitted) -> None:
    split, _, _ = blocks
    task = TopKTask(ks=[10])
    pop = build_method("pop", {})
    pop.fit(split, RunContext(setup=TOPK))
    ctx = RunContext(setup=TOPK)
    ours = task.evaluate(fitted, split, ctx).metrics["all"]["hr@10"]
    theirs = task.evaluate(pop, split, ctx).metrics["all"]["hr@10"]
    # 30 items per block, 10 seen in train + valid: a model that finds the block ranks the 20 left ->
    # HR@10 ~ 0.5; pop ranks the globally popular items of all blocks
    assert ours > theirs + 0.2, (ours, theirs)
    assert ours > 0.4


def test_exported_user_vector_is_the_one_it_ranks_with(blocks, fitted) -> None:
    split, _, _ = blocks
    emb = fitted.embeddings()
    assert emb is not None and emb["sequence"] is emb["user"]
    seqs = split.train_sequences()
    users = np.arange(split.n_users)
    hist = [seqs[int(u)].tolist() for u in users]
    np.testing.assert_allclose(emb["user"], fitted.user_vectors(hist), rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        fitted.score_all(users, hist), emb["user"].astype(np.float64) @ emb["item"].T, rtol=1e-5, atol=1e-5
    )
    # a different history gives a different vector: the user vector is computed, not looked up
    other = fitted.user_vectors([hist[0][:-3]])
    assert not np.allclose(other[0], emb["user"][0])


def test_padding_keeps_the_most_recent_items_oldest_first() -> None:
    out = pad_histories([[5, 6, 7], [], [1]], max_len=2)
    np.testing.assert_array_equal(out, [[7, 8], [0, 0], [2, 0]])


def test_export_through_the_cache_and_multi_interest_exports_nothing(blocks) -> None:
    split, _, _ = blocks
    first = get_embeddings(split, "comirec", params=SMALL, seed=0, feedback="interactions")
    assert not first.cache_hit and first.manifest["model"] == "comirec" and first.dim == 16
    assert first.user.shape == (split.n_users, 16) and first.item.shape == (split.n_items, 16)
    again = get_embeddings(split, "comirec", params=SMALL, seed=0, feedback="interactions")
    assert again.cache_hit and again.path == first.path

    multi = ComiRec(**{**SMALL, "n_interests": 3, "max_iter": 50})
    multi.fit(split, RunContext(setup=TOPK))
    assert multi.embeddings() is None
    assert multi.score_all(np.array([0]), [[1, 2, 3]]).shape == (1, split.n_items)
    with pytest.raises(ConfigError, match="cannot export embeddings"):
        get_embeddings(split, "comirec", params={**SMALL, "n_interests": 3, "max_iter": 50}, seed=0)


@pytest.mark.parametrize(
    "params, message",
    [({"max_iter": 0}, "max_iter"), ({"dim": "64"}, "dim"), ({"heads": 2}, "no parameter")],
)
def test_bad_parameters_are_one_line_errors(params, message) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        ComiRec(**params)
    assert "\n" not in str(err.value)
