"""p5-random and embedproj end to end on a synthetic dataset with planted sequential structure.

Ids carry no signal (raw ids shuffled, items spelled with random numbers from 1001), so a text-only model has
to memorise id strings, while ALS embeddings of the same training data already say which cluster a user and an
item belong to. The backbone is a small random decoder saved to disk and loaded by path (a stand-in for
``tiny`` with a 150-word vocabulary, so the whole module trains in well under a minute on one core).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from generative_synth import save_word_backbone, write_synthetic

from benchbed.api import RunContext
from benchbed.data.prepare import prepare_split
from benchbed.methods.embedproj import EmbedProj
from benchbed.methods.p5_random import P5Random
from benchbed.orchestration.embeddings import RegistryEmbeddings
from benchbed.settings import get_settings
from benchbed.tasks.generative import GenerativeTask

TRAIN = {"epochs": 3, "lr": 3e-3, "batch_size": 32, "max_train_examples": None}
STAGES = {"stage1_epochs": 3, "stage1_lr": 3e-3, "stage2_epochs": 3, "stage2_lr": 3e-3, "warm_start": "text"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("genm")
    data = write_synthetic(root / "data", n_users=240, n_clusters=4, cluster_size=8, min_len=6, max_len=10)
    backbone = save_word_backbone(root / "model", extra_words=("syn",), hidden=48)
    split = prepare_split(str(data), "leave-one-out").split
    task = GenerativeTask(history_len=5)
    task.check_split(split)
    ctx = RunContext(setup=task.method_setup(split), seed=0, cache_dir=get_settings().cache_dir)
    ctx.embeddings = RegistryEmbeddings(ctx)  # what the runner hands methods that need ID embeddings
    return {"data": data, "backbone": str(backbone), "split": split, "task": task, "ctx": ctx, "results": {}}


def _run(setting, name: str, method) -> dict:
    method.fit(setting["split"], setting["ctx"])
    result = setting["task"].evaluate(method, setting["split"], setting["ctx"])
    setting["results"][name] = result
    return result.metrics


def test_p5_random_trains_on_seen_templates_and_evaluates_seen_and_unseen(setting) -> None:
    method = P5Random(backbone=setting["backbone"], **TRAIN)
    declared = set(vars(method))
    with pytest.raises(RuntimeError, match="P5Random: no backbone before fit"):
        method.bb.model  # noqa: B018  (the read is the test)
    metrics = _run(setting, "p5", method)
    assert set(vars(method)) == declared  # fit sets what __init__ declared, creates nothing new
    assert {"all", "warm", "cold", "seen", "unseen", "unseen:warm", "unseen:cold"} <= set(metrics)
    assert set(metrics["all"]) == {"hr@5", "ndcg@5", "hr@10", "ndcg@10"}
    result = setting["results"]["p5"]
    assert result.counts["all"]["users"] == len(setting["split"].test)
    dec = result.info["decoding"]
    assert dec["seen"]["valid_beam_share"] == 1.0 and 0.0 <= dec["seen"]["constrained_beam_share"] <= 1.0
    # every generated id is a real item (constrained decoding), 10 distinct per user
    ranked = np.asarray(result.predictions["ranked"].tolist())
    assert ranked.shape[1] == 10 and (ranked >= 0).all() and (ranked < setting["split"].n_items).all()
    assert all(len(set(r)) == 10 for r in ranked.tolist())

    # the unseen template never appears in training; seen and unseen evaluation prompts differ
    setup = setting["ctx"].setup.protocol.setup
    bank = setup.bank()
    ex = method._examples
    assert ex and all(e.template.startswith("seen:") for e in ex)
    train_rows = method.encode_rows(
        [e.sub_task for e in ex],
        np.array([e.user for e in ex]),
        [e.history for e in ex],
        [e.template for e in ex],
        use_slots=False,
    )
    unseen_words = bank.unseen[0]["text"].split("{")[0].strip()  # "Which single"
    decoded = {method.tok.decode(ids) for ids in train_rows.enc.ids}
    assert not any(unseen_words.lower() in text.lower() for text in decoded)
    users, hist = np.array([0]), [[1, 2]]
    seen = method.encode_rows(["sequential"], users, hist, ["seen:0"], use_slots=False).enc.ids[0]
    unseen = method.encode_rows(["sequential"], users, hist, ["unseen:0"], use_slots=False).enc.ids[0]
    assert seen.tolist() != unseen.tolist()
    assert unseen_words.lower() in method.tok.decode(unseen).lower()

    # optional history filtering: no item the user met before the target is generated
    filtered = GenerativeTask(history_len=5, filter_history=True, max_users=40)
    out = filtered.evaluate(method, setting["split"], setting["ctx"]).predictions
    seqs = setting["split"].train_sequences()
    valid = dict(zip(setting["split"].valid["user"], setting["split"].valid["item"], strict=True))
    for user, ranked_ids in zip(out["user"], out["ranked"], strict=True):
        earlier = {*map(int, seqs[int(user)]), int(valid[int(user)])}
        assert not earlier & {int(i) for i in ranked_ids if i >= 0}


def test_embedproj_stage2_beats_p5_random_and_stage1(setting) -> None:
    if "p5" not in setting["results"]:
        _run(setting, "p5", P5Random(backbone=setting["backbone"], **TRAIN))
    s1 = _run(setting, "s1", EmbedProj(backbone=setting["backbone"], stage=1, **TRAIN, **STAGES))
    s2_method = EmbedProj(backbone=setting["backbone"], stage=2, **TRAIN, **STAGES)
    declared = set(vars(s2_method))
    s2 = _run(setting, "s2", s2_method)
    assert set(vars(s2_method)) == declared  # the projectors too: declared in __init__, built by prepare
    p5 = setting["results"]["p5"].metrics
    # stage 2 reused the text and stage-1 results from the stage cache instead of retraining them
    cached = {s["stage"]: s["cached"] for s in s2_method.stage_log}
    assert cached == {"generative-text": True, "embedproj-stage1": True, "embedproj-stage2": False}
    assert s2["all"]["hr@10"] > p5["all"]["hr@10"] + 0.15, (s2["all"], p5["all"])
    assert s2["all"]["ndcg@10"] > p5["all"]["ndcg@10"]
    assert s2["unseen"]["hr@10"] > p5["unseen"]["hr@10"] + 0.15  # robust to the held-out prompt
    assert s2["all"]["ndcg@10"] >= s1["all"]["ndcg@10"] - 0.01, (s2["all"], s1["all"])
    assert s2_method.trainable_parameters() > 0 and s2_method.backbone_info["stages"]


def test_id_methods_run_on_the_same_users_through_the_cli(setting, tmp_path: Path, monkeypatch) -> None:
    """`benchbed run --task generative` with an ID method: full ranking, same users, same metric keys."""
    from benchbed.cli.app import main
    from benchbed.results.record import read_record

    results = tmp_path / "res"
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "benchbed",
            "-q",
            "--results-dir",
            str(results),
            "run",
            "--method",
            "pop",
            "--dataset",
            str(setting["data"]),
            "--task",
            "generative",
        ],
    )
    try:
        main()
    except SystemExit as exc:  # main() returns on success, exits with the error's code otherwise
        assert exc.code in (0, None)
    (path,) = list(results.rglob("pop-*.json"))
    record = read_record(path)
    assert record.status == "ok" and record.split_protocol == "leave-one-out"  # the task's default protocol
    assert set(record.metrics["all"]) == {"hr@5", "ndcg@5", "hr@10", "ndcg@10"}
    assert record.counts["all"]["users"] == len(setting["split"].test)
    assert "unseen" not in record.metrics  # no prompts, no unseen template
