"""``benchbed compare A B``: paired tests on records written in the real record + predictions format with
planted scores (a run that sees the label, one that barely does), and every refusal of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchbed.config import stable_hash
from benchbed.results.record import RunRecord
from benchbed.results.store import predictions_path, write_record
from benchbed.tasks.ctr import CTRTask
from benchbed.tasks.topk import TopKTask

SPLIT = {"by": "quantile", "test_quantile": 0.9}


def ctr_predictions(signal: float, seed: int, n_users: int = 120, rows: int = 8) -> pd.DataFrame:
    """CTR predictions as the task writes them; the score sees the label with strength ``signal``. The
    labels and users do not depend on ``seed`` (the same test rows), the noise does."""
    fixed = np.random.default_rng(0)
    users = np.repeat(np.arange(n_users), rows)
    labels = (fixed.random(users.size) < 0.5).astype(np.int8)
    warm = np.repeat(fixed.random(n_users) < 0.4, rows)
    noise = np.random.default_rng(100 + seed).normal(size=users.size)
    scores = signal * labels + noise
    return pd.DataFrame(
        {
            "template": "seen",
            "row": np.arange(users.size, dtype=np.int64),
            "user": users.astype(np.int64),
            "item": np.arange(users.size, dtype=np.int64) % 97,
            "label": labels,
            "warm": warm,
            "score": scores,
            "prob": 1 / (1 + np.exp(-scores)),
        }
    )


def write_run(
    results: Path,
    method: str,
    seed: int,
    predictions: pd.DataFrame | None,
    *,
    task: str = "ctr",
    split_hash: str = "split0",
    task_params: dict | None = None,
    metrics_from: pd.DataFrame | None = None,
    params: dict | None = None,
) -> Path:
    """A record whose metrics the task computes from ``predictions`` (or ``metrics_from``), written with
    ``benchbed.results.store.write_record`` (``predictions=None``: a run that saved none)."""
    task_obj = CTRTask(**(task_params or {})) if task == "ctr" else TopKTask(**(task_params or {}))
    source = predictions if predictions is not None else metrics_from
    assert source is not None
    metrics, counts = task_obj.compute_metrics(source)
    params = params or {}
    record = RunRecord(
        run_id=f"{method}-{seed}",
        created=f"2026-01-01T00:00:{seed:02d}+00:00",
        config={"method": method, "seed": seed, "dataset": "ml-100k", "task": task},
        config_hash=stable_hash([method, params, split_hash, seed])[:12],
        method=method,
        method_params=params,
        params_hash=stable_hash(params)[:12],
        dataset="ml-100k",
        task=task,
        seed=seed,
        dataset_hash="data0",
        split_protocol="temporal-window" if task == "ctr" else "leave-one-out",
        split_params=dict(SPLIT) if split_hash == "split0" else {**SPLIT, "test_quantile": 0.8},
        split_hash=split_hash,
        task_params=dict(task_obj.params),
        metrics={s: {k: float(v) for k, v in m.items()} for s, m in metrics.items()},
        counts=counts,
    )
    path = results / "ml-100k" / task / f"{method}-{record.config_hash}-s{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_record(path, record, predictions)


@pytest.fixture
def board(cli) -> dict[str, Path]:
    """strong (2 seeds), weak, a run without predictions and one on another split."""
    res = cli.results
    return {
        "strong0": write_run(res, "strong", 0, ctr_predictions(1.0, 0)),
        "strong1": write_run(res, "strong", 1, ctr_predictions(1.0, 1)),
        "weak": write_run(res, "weak", 0, ctr_predictions(0.2, 0)),
        "nopred": write_run(res, "nopred", 0, None, metrics_from=ctr_predictions(0.5, 0)),
        "othersplit": write_run(res, "other", 0, ctr_predictions(1.0, 0), split_hash="split1"),
    }


def _json(cli, *args: str) -> list[dict]:
    code, out, err = cli("compare", *args, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def test_planted_gain_detected_on_every_metric(cli, board) -> None:
    rows = _json(cli, str(board["strong0"]), str(board["weak"]))
    by_metric = {r["metric"]: r for r in rows}
    assert set(by_metric) == {"all/auc", "all/uauc", "all/ndcg", "all/logloss"}
    for r in rows:
        assert {"metric", "test", "n", "a", "b", "difference", "ci_low", "ci_high", "p_value"} <= set(r)
        assert r["p_value"] < 0.01, r
        assert r["ci_low"] <= r["difference"] <= r["ci_high"]
    auc = by_metric["all/auc"]
    assert (auc["test"], auc["n"], auc["unit"]) == ("delong", 960, "rows")
    assert auc["difference"] == pytest.approx(auc["a"] - auc["b"]) and auc["difference"] > 0
    record = json.loads(board["strong0"].read_text())
    assert auc["a"] == pytest.approx(record["metrics"]["all"]["auc"])
    uauc = by_metric["all/uauc"]
    assert (uauc["test"], uauc["unit"]) == ("randomisation", "users")
    assert by_metric["all/logloss"]["difference"] < 0  # lower loss for the run that sees the label


def test_a_record_against_itself(cli, board) -> None:
    for test in ([], ["--test", "t"], ["--test", "wilcoxon"], ["--test", "bootstrap"]):
        for r in _json(cli, str(board["weak"]), str(board["weak"]), *test):
            assert (r["difference"], r["p_value"]) == (0.0, 1.0), (test, r)
            assert r["ci_low"] == r["ci_high"] == 0.0


def test_labels_average_their_seeds(cli, board) -> None:
    rows = _json(cli, "strong", "weak", "--metric", "auc", "--metric", "warm/uauc")
    assert [r["metric"] for r in rows] == ["all/auc", "warm/uauc"]
    assert rows[0]["seeds_a"] == [0, 1] and rows[0]["seeds_b"] == [0]
    seeds = [json.loads(board[f"strong{s}"].read_text())["metrics"]["all"]["auc"] for s in (0, 1)]
    assert rows[0]["a"] == pytest.approx(np.mean(seeds))  # the mean AUC, from the mean components
    code, out, err = cli("compare", "strong", "weak", "--metric", "uauc")  # text
    assert code == 0 and "randomisation" in out and "A - B" in out


def test_named_test_applies_where_it_fits(cli, board) -> None:
    rows = _json(cli, str(board["strong0"]), str(board["weak"]), "--test", "t")
    tests = {r["metric"]: r["test"] for r in rows}
    assert tests["all/auc"] == "delong" and tests["all/uauc"] == "t"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{strong0}", "{othersplit}"], "different split"),
        (["{strong0}", "{nopred}"], "saved no predictions"),
        (["{strong0}", "{weak}", "--metric", "hr@10"], "--metric: 'hr@10' is not a metric"),
        (["{strong0}", "{weak}", "--test", "anova"], "unknown test 'anova'"),
        (["{strong0}", "{weak}", "--metric", "auc", "--test", "t"], "AUC is tested with delong"),
        (["{strong0}", "{weak}", "--format", "yaml"], "--format"),
        (["strong", "nosuchlabel"], "'nosuchlabel': no record file and no leaderboard row"),
    ],
)
def test_bad_input_is_one_line_exit_2(cli, board, args, message) -> None:
    before = sorted(p.name for p in cli.results.rglob("*"))
    code, out, err = cli("compare", *[a.format(**{k: str(v) for k, v in board.items()}) for a in args])
    assert code == 2, (out, err)
    assert message in err and len(err.strip().splitlines()) == 1 and out == ""
    assert sorted(p.name for p in cli.results.rglob("*")) == before  # nothing written


def test_predictions_that_do_not_cover_the_rows_are_refused(cli, board) -> None:
    pred = predictions_path(board["weak"])
    pd.read_parquet(pred).iloc[:-5].to_parquet(pred, index=False)
    code, _, err = cli("compare", str(board["strong0"]), str(board["weak"]))
    assert code == 2 and "the record was computed on 960" in err


def test_a_label_on_two_boards_is_refused(cli, board) -> None:
    # the same two methods on a top-K board too: "strong" and "weak" now name rows on two boards
    frame = pd.DataFrame(
        {
            "template": "seen",
            "user": np.arange(50, dtype=np.int64),
            "ranked": [np.arange(u % 7, u % 7 + 20, dtype=np.int64) for u in range(50)],
            "positives": [np.array([u % 11], dtype=np.int64) for u in range(50)],
            "positive_warm": [np.array([True]) for _ in range(50)],
        }
    )
    for method in ("strong", "weak"):
        write_run(cli.results, method, 0, frame, task="topk")
    code, out, err = cli("compare", "strong", "weak")
    assert code == 2 and "match rows on 2 boards" in err
    rows = _json(cli, "strong", "weak", "--task", "topk", "--metric", "ndcg@10")
    assert rows[0]["n"] == 50 and (rows[0]["difference"], rows[0]["p_value"]) == (0.0, 1.0)
