"""Embedding export: shapes, id alignment (row u is benchbed user u), agreement with scores, cache reuse."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_baselines_support import leave_last_out, planted_blocks

from benchbed.api import RunContext, TaskSetup
from benchbed.errors import ConfigError
from benchbed.orchestration.embeddings import get_embeddings
from benchbed.settings import get_settings

TOPK = TaskSetup(task="topk", feedback="interactions")  # every training interaction a positive

PARAMS = {
    "mf": {"lr": 0.05, "epochs": 25, "dim": 16, "batch_size": 128, "stopping_step": 100},
    "lightgcn": {"lr": 0.05, "epochs": 25, "dim": 16, "batch_size": 128, "stopping_step": 100},
    "als": {"dim": 16},
    "sasrec": {"lr": 0.01, "epochs": 15, "dim": 16, "n_layers": 1, "max_len": 10, "batch_size": 256},
    "din": {"lr": 0.01, "epochs": 10, "dim": 16, "mlp_hidden": [16], "batch_size": 256},
    "multivae": {"lr": 0.01, "epochs": 25, "batch_size": 128, "stopping_step": 100},
}


@pytest.fixture(scope="module")
def blocks():
    data, user_block, item_block = planted_blocks(
        n_blocks=3, users_per_block=20, items_per_block=12, per_user=8
    )
    return leave_last_out(data), user_block, item_block


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(PARAMS))
def test_export_shapes_alignment_and_reuse(model: str, blocks) -> None:
    split, user_block, item_block = blocks
    emb = get_embeddings(split, model, params=PARAMS[model], seed=0)
    assert not emb.cache_hit
    assert emb.user.shape[0] == split.n_users and emb.item.shape[0] == split.n_items
    assert emb.user.dtype == np.float32 and emb.user.shape[1] == emb.item.shape[1] == emb.dim
    if model in ("sasrec", "din"):
        assert emb.sequence is not None and emb.sequence.shape == emb.user.shape
    else:
        assert emb.sequence is None

    # alignment: with the planted blocks, row u of `user` must prefer the items of benchbed user u's block
    # (and row i of `item` must be benchbed item i); a permuted or RecBole-ordered export fails this
    affinity = emb.user @ emb.item.T
    per_block = np.stack(
        [affinity[:, item_block == b].mean(axis=1) for b in range(user_block.max() + 1)], axis=1
    )
    assert (per_block.argmax(axis=1) == user_block).mean() > 0.9

    manifest = emb.manifest
    assert manifest["model"] == model and manifest["split_hash"] == split.hash and manifest["seed"] == 0
    assert manifest["n_users"] == split.n_users and manifest["task"] == "topk"
    assert emb.path is not None and emb.path.parent.parent == get_settings().cache_dir / "embeddings"
    assert emb.path.parent.name == split.hash and emb.path.name.startswith(f"{model}-")

    again = get_embeddings(split, model, params=PARAMS[model], seed=0)
    assert again.cache_hit and again.path == emb.path
    np.testing.assert_array_equal(again.user, emb.user)
    assert json.loads((emb.path / "manifest.json").read_text())["created"] == manifest["created"]


def test_export_key_includes_seed_and_params(blocks) -> None:
    split, _, _ = blocks
    first = get_embeddings(split, "als", params={"dim": 8}, seed=0)
    assert get_embeddings(split, "als", params={"dim": 8}, seed=0).path == first.path
    assert get_embeddings(split, "als", params={"dim": 8}, seed=1).path != first.path
    changed = get_embeddings(split, "als", params={"dim": 4}, seed=0)
    assert changed.path != first.path and changed.dim == 4


@pytest.mark.parametrize("model", ["mf", "multivae", "lightgcn"])
def test_export_reproduces_scores(model: str, blocks) -> None:
    """For these models the exported vectors are the scorer: user @ item.T equals score_all."""
    from benchbed.methods import build_method

    split, _, _ = blocks
    params = {"lr": 0.05, "epochs": 3, "batch_size": 128, **({"dim": 8} if model != "multivae" else {})}
    method = build_method(model, params)
    method.fit(split, RunContext(setup=TOPK, seed=3))
    arrays = method.embeddings()
    users = np.arange(split.n_users)
    np.testing.assert_allclose(
        arrays["user"] @ arrays["item"].T, method.score_all(users, []), rtol=1e-4, atol=1e-5
    )


def test_export_rejects_unknown_model(blocks) -> None:
    split, _, _ = blocks
    with pytest.raises(ConfigError) as err:
        get_embeddings(split, "pop")
    assert "pop" in str(err.value) and "\n" not in str(err.value)


def test_a_baseline_fitted_by_run_is_reused_as_embeddings(blocks) -> None:
    """collm's mf companion trains mf once: the run keeps its embeddings under get_embeddings' key."""
    from benchbed.methods import build_method
    from benchbed.orchestration.embeddings import keep_fitted_embeddings

    split, _, _ = blocks
    params = {"dim": 12, "iterations": 3}
    method = build_method("als", params)
    ctx = RunContext(setup=TOPK, seed=5, cache_dir=get_settings().cache_dir)
    method.fit(split, ctx)
    assert keep_fitted_embeddings(split, "als", method, ctx, fit_seconds=0.1)
    assert not keep_fitted_embeddings(split, "als", method, ctx, fit_seconds=0.1)  # already there
    emb = get_embeddings(split, "als", params=params, seed=5, ctx=ctx)
    assert emb.cache_hit and emb.manifest["fit_seconds"] == 0.1
    np.testing.assert_array_equal(emb.item, method.embeddings()["item"])
    # a method without an export is left alone
    assert not keep_fitted_embeddings(split, "pop", build_method("pop", {}), ctx, fit_seconds=0.0)


def test_run_keeps_baseline_embeddings(tmp_path) -> None:
    from benchbed.config import RunConfig
    from benchbed.orchestration.runner import execute

    outcome = execute(RunConfig(method="als", task="topk", method_params={"iterations": 2}), progress=False)
    manifests = list(
        (get_settings().cache_dir / "embeddings" / outcome.record.split_hash).glob("als-*/manifest.json")
    )
    assert [json.loads(m.read_text())["params"]["iterations"] for m in manifests] == [2]
