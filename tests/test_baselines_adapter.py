"""The RecBole adapter: atomic files, id maps, containment (argv, logging, cwd) and one-line errors."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_baselines_support import leave_last_out, planted_blocks

from benchbed.api import RunContext, TaskSetup
from benchbed.baselines.recbole_base import RecBoleParams
from benchbed.baselines.recbole_files import DataPlan, write_atomic_files
from benchbed.data.schema import Split
from benchbed.errors import BenchbedError, ConfigError, DataError
from benchbed.methods import build_method

TOPK = TaskSetup(task="topk", feedback="interactions")  # every training interaction a positive

QUICK = {"epochs": 2, "lr": 0.01, "batch_size": 256}


@pytest.fixture(scope="module")
def implicit_split() -> Split:
    return leave_last_out(planted_blocks(n_blocks=2, users_per_block=10, items_per_block=10, per_user=6)[0])


@pytest.fixture(scope="module")
def labeled_split() -> Split:
    data = planted_blocks(n_blocks=2, users_per_block=10, items_per_block=10, per_user=5, negatives=4)[0]
    return leave_last_out(data, n_valid=2, n_test=2)


def _read_inter(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame


def test_atomic_files_hold_the_split_rows(
    labeled_split: Split, implicit_split: Split, tmp_path: Path
) -> None:
    split = labeled_split
    ranking = write_atomic_files(split, DataPlan("labels", pointwise=False), tmp_path)
    pointwise = write_atomic_files(split, DataPlan("labels", pointwise=True), tmp_path)
    seq_plan = DataPlan("interactions", pointwise=False, sequential=True, max_len=3)
    seq = write_atomic_files(implicit_split, seq_plan, tmp_path)
    base = ranking.root / ranking.name

    train = _read_inter(base / f"{ranking.name}.train.inter")
    positives = split.train[split.train["label"] == 1]
    assert len(train) == len(positives) == ranking.rows["train"]  # ranking models learn from positives
    assert (train["label"] == "1").all()
    assert len(_read_inter(base / f"{ranking.name}.test.inter")) == len(split.test)  # every labeled test row
    p_train = _read_inter(pointwise.root / pointwise.name / f"{pointwise.name}.train.inter")
    assert sorted(p_train["label"].astype(int)) == sorted(split.train["label"].astype(int))
    # every benchbed id is listed, so RecBole's remapping covers users/items absent from train
    assert _read_inter(base / f"{ranking.name}.item")["item_id"].astype(int).tolist() == list(
        range(split.n_items)
    )
    assert _read_inter(base / f"{ranking.name}.user")["user_id"].astype(int).tolist() == list(
        range(split.n_users)
    )

    # sequential files: each valid row's history is the user's last 3 training items in time order
    s_valid = _read_inter(seq.root / seq.name / f"{seq.name}.valid.inter")
    assert len(s_valid) == len(implicit_split.valid)
    seqs = implicit_split.train_sequences()
    for _, row in s_valid.iterrows():
        expected = seqs[int(row["user_id"])][-3:].tolist()
        assert [int(x) for x in row["item_id_list"].split()] == expected
    assert seq.seq_width == 3

    mtime = (base / f"{ranking.name}.train.inter").stat().st_mtime_ns
    again = write_atomic_files(split, DataPlan("labels", pointwise=False), tmp_path)
    assert again == ranking and (base / f"{ranking.name}.train.inter").stat().st_mtime_ns == mtime  # reused


def test_fit_is_contained_and_ids_map_back(implicit_split: Split, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    # RecBole's Config would read this as learning_rate=0.5 and gpu_id from argv
    monkeypatch.setattr(sys, "argv", ["benchbed", "--learning_rate=0.5", "--gpu_id=7"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    root = logging.getLogger()
    handlers, filters, level = list(root.handlers), list(root.filters), root.level

    class Capture(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.records: list[logging.LogRecord] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record)

    capture = Capture()
    root.addHandler(capture)
    root.setLevel(logging.INFO)  # RecBole logs INFO on the root logger: none of it may arrive here
    messages: list[str] = []
    try:
        method = build_method("mf-bpr", QUICK)
        method.fit(implicit_split, RunContext(setup=TOPK, seed=0, log=messages.append, verbose=1))
    finally:
        root.removeHandler(capture)
        root.setLevel(level)
    assert [r.getMessage() for r in capture.records if r.name == "root"] == []
    assert any(m.startswith("recbole: ") and "train loss" in m for m in messages)  # routed to ctx instead

    session = method.session
    assert session.config["learning_rate"] == 0.01
    assert sys.argv == ["benchbed", "--learning_rate=0.5", "--gpu_id=7"]
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert Path.cwd() == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no ./log, ./saved, ./log_tensorboard
    assert root.handlers == handlers and root.filters == filters
    assert any("epoch 1" in m for m in messages)
    assert not session.work_dir.exists()  # checkpoints removed after loading the best one

    # RecBole's token for benchbed id u is str(u): the maps send every benchbed id to its own token
    users = session.dataset.id2token("user_id", session.user_map)
    items = session.dataset.id2token("item_id", session.item_map)
    assert users.astype(int).tolist() == list(range(implicit_split.n_users))
    assert items.astype(int).tolist() == list(range(implicit_split.n_items))
    assert session.item_map.min() >= 1  # 0 is RecBole's padding id
    assert method.backbone_info["epochs_run"] == 2 and method.trainable_parameters() > 0


def test_budget_caps_epochs(implicit_split: Split) -> None:
    method = build_method("mf-bpr", {**QUICK, "epochs": 50, "stopping_step": 100})
    method.fit(implicit_split, RunContext(setup=TOPK, seed=0, budget={"epochs": 1}))
    assert method.backbone_info["epochs_run"] == 1


def _one_line(exc: BenchbedError) -> str:
    text = str(exc)
    assert "\n" not in text and text
    return text


def test_bad_input_gives_one_line_errors(implicit_split: Split, labeled_split: Split) -> None:
    with pytest.raises(ConfigError) as err:
        build_method("recbole:NoSuchModel", {})
    assert "NoSuchModel" in _one_line(err.value)
    with pytest.raises(ConfigError) as err:
        build_method("recbole:KGAT", {})  # knowledge-aware: needs a KG benchbed does not have
    assert "KGAT" in _one_line(err.value)
    with pytest.raises(ConfigError) as err:
        build_method("mf", {"learning_rate_typo": 1})
    assert "learning_rate_typo" in _one_line(err.value)
    with pytest.raises(ConfigError) as err:
        build_method("lightgcn", {"recbole": {"no_such_recbole_key": 1}})
    assert "no_such_recbole_key" in _one_line(err.value)
    with pytest.raises(ConfigError) as err:
        build_method("recbole:NeuMF", {"mf_embedding_sise": 8})
    assert "mf_embedding_sise" in _one_line(err.value)
    assert build_method("recbole:NeuMF", {"mf_embedding_size": 8}).params["mf_embedding_size"] == 8

    empty = Split(
        implicit_split.data,
        "leave-one-out",
        {},
        implicit_split.train.iloc[:0],
        implicit_split.valid,
        implicit_split.test,
    )
    with pytest.raises(DataError) as err:
        build_method("mf-bpr", QUICK).fit(empty, RunContext(setup=TOPK))
    assert "no interactions" in _one_line(err.value)
    with pytest.raises(DataError) as err:
        build_method("als", {}).fit(empty, RunContext(setup=TOPK))
    _one_line(err.value)

    negatives_only = Split(
        labeled_split.data,
        "leave-one-out",
        {"only": "negatives"},
        labeled_split.train[labeled_split.train["label"] == 0],
        labeled_split.valid,
        labeled_split.test,
    )
    with pytest.raises(DataError) as err:
        build_method("mf-bpr", QUICK).fit(negatives_only, RunContext())
    assert "positive" in _one_line(err.value)
    with pytest.raises(DataError) as err:
        build_method("mf", QUICK).fit(implicit_split, RunContext())  # ctr on implicit data
    assert "implicit" in _one_line(err.value)


def test_passthrough_reads_typed_parameters_and_keeps_every_recbole_key() -> None:
    """recbole:<Model>'s view is a RecBoleParams (with max_len for a sequential model); a RecBole key that is
    not a Python name (DiffRec's ``time-aware``) stays a parameter, passed on to RecBole in ``params``."""
    diffrec = build_method("recbole:DiffRec", {"time-aware": True, "w_max": 2})
    assert isinstance(diffrec.p, RecBoleParams) and diffrec.p.w_max == 2 and diffrec.p.recbole == {}
    assert list(diffrec.defaults)[:6] == list(RecBoleParams.default_values())
    assert diffrec.params["time-aware"] is True and "time-aware" in diffrec.param_keys
    assert build_method("recbole:GRU4Rec", {"max_len": 7}).data_plan("interactions").max_len == 7
    assert build_method("recbole:NeuMF", {}).data_plan("interactions").max_len == 50  # reads no history


def test_gpu_requested_without_gpu(implicit_split: Split) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    for name in ("mf", "als"):
        with pytest.raises(ConfigError) as err:
            build_method(name, QUICK if name != "als" else {}).fit(
                implicit_split, RunContext(setup=TOPK, device="cuda")
            )
        assert "cuda" in _one_line(err.value)


def test_scores_follow_requests(implicit_split: Split) -> None:
    """score() for (u, i) rows equals score_all() at [u, i]; SASRec's score depends on the history given."""
    method = build_method("mf-bpr", QUICK)
    method.fit(implicit_split, RunContext(setup=TOPK, seed=0))
    users = np.array([0, 5, 19])
    full = method.score_all(users, [[], [], []])
    from benchbed.api import ScoreRequests

    items = np.array([3, 11, 7])
    pointwise = method.score(ScoreRequests(users, items, [[], [], []]))
    np.testing.assert_allclose(pointwise, full[np.arange(3), items], rtol=1e-5, atol=1e-6)

    sasrec = build_method("sasrec", {**QUICK, "dim": 16, "n_layers": 1, "max_len": 5})
    sasrec.fit(implicit_split, RunContext(setup=TOPK, seed=0))
    a = sasrec.score_all(np.array([0, 0]), [[1, 2, 3], [12, 13, 14]])
    assert a.shape == (2, implicit_split.n_items) and not np.allclose(a[0], a[1])
    b = sasrec.score(ScoreRequests(np.array([0]), np.array([4]), [[1, 2, 3]]))
    np.testing.assert_allclose(b, a[0, [4]], rtol=1e-4, atol=1e-5)
