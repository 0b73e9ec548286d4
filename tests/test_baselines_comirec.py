"""ComiRec-SA (benchbed.baselines.comirec): beats pop on planted data, exports the vectors it ranks with."""

from __future__ import annotations

import numpy as np
import pytest
from test_baselines_support import leave_last_out, planted_blocks

from benchbed.api import RunContext, TaskSetup
from benchbed.baselines.comirec import ComiRec
from benchbed.baselines.comirec_model import LogUniformSampler, pad_histories
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
    sampler = fitted.record_info()["sampler"]
    assert sampler["kind"] == "log_uniform" and sampler["negatives"] == 120  # min(10 x 64, 120 items)


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


def test_negatives_are_drawn_log_uniformly_over_items_ranked_by_frequency() -> None:
    """TF's log-uniform candidate sampler (the authors' sampled softmax default), known answers: a draw
    lands on rank r with P(r) = log((r+2)/(r+1)) / log(n+1) (P(0) = log 2 / log 51 = 0.1763 for 50
    items), the most frequent training item has rank 0, and the log-Q correction uses TF's expected count
    (P * k when no draw repeated, else 1 - (1 - P)^tries)."""
    n, k, calls = 50, 5, 6000
    counts = np.array([5, 1, 9, 0, 3] + [2] * 45)
    sampler = LogUniformSampler.by_frequency(np.repeat(np.arange(n), counts), n)
    assert sampler.items[:3].tolist() == [2, 0, 4] and sampler.rank[2] == 0 and sampler.rank[3] == n - 1
    p = sampler.probability(np.arange(n))
    assert p[0] == pytest.approx(np.log(2) / np.log(51)) and p.sum() == pytest.approx(1.0)
    assert sampler.expected_count(np.array([0]), k, k)[0] == pytest.approx(5 * 0.17629, abs=1e-4)
    assert sampler.expected_count(np.array([0]), k, 9)[0] == pytest.approx(1 - (1 - 0.17629) ** 9, abs=1e-4)
    rng = np.random.default_rng(0)
    first = np.zeros(n)
    included = np.zeros(n)
    for _ in range(calls):
        ranks, tries = sampler.sample_ranks(k, rng)
        assert len(np.unique(ranks)) == k and tries >= k
        first[ranks[0]] += 1  # the first draw is a plain log-uniform draw
        included[ranks] += 1
    sigma = np.sqrt(p * (1 - p) / calls)
    assert np.all(np.abs(first / calls - p) < 4.5 * sigma + 1e-9), np.round(first / calls - p, 4)
    # a uniform sampler would put every item in 10% of the samples: log-uniform favours the head
    assert included[0] / calls > 0.5 and included[-1] / calls < 0.05
    items, _ = sampler.sample(k, rng)
    assert set(items.tolist()) <= set(range(n))


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
    [
        ({"max_iter": 0}, "max_iter"),
        ({"dim": "64"}, "dim"),
        ({"heads": 2}, "no parameter"),
        ({"sampler": "zipf"}, "sampler"),
    ],
)
def test_bad_parameters_are_one_line_errors(params, message) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        ComiRec(**params)
    assert "\n" not in str(err.value)
