"""Leaderboard marks: best / n.s. / worse / no test from the saved predictions of a planted board, Holm and
BH p-values, t-based CIs over seeds, the power note, every text format carrying them, bad options, the
per-unit values equal to the committed records' numbers, and ``run --seeds``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from test_compare import ctr_predictions, write_run

from benchbed.results.leaderboard import build_leaderboard
from benchbed.results.reference import ReferenceRow
from benchbed.results.render import render_latex, render_markdown, render_text
from benchbed.results.significance import annotate_boards
from benchbed.results.store import load_records
from benchbed.stats.multiple import benjamini_hochberg, holm
from benchbed.stats.power import t_interval

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def planted(cli) -> Path:
    """best (2 seeds, strong signal), close (nearly as strong), weak, and one run without predictions."""
    res = cli.results
    write_run(res, "best", 0, ctr_predictions(1.0, 0))
    write_run(res, "best", 1, ctr_predictions(1.0, 1))
    write_run(res, "close", 0, ctr_predictions(0.85, 2))
    write_run(res, "weak", 0, ctr_predictions(0.3, 3))
    write_run(res, "blind", 0, None, metrics_from=ctr_predictions(0.1, 4))
    return res


def _boards(results: Path, correction: str = "holm", references: list | None = None):
    loaded = load_records([results])
    boards = build_leaderboard([r for _, r in loaded.records], references or [])
    annotate_boards(boards, loaded.records, correction=correction)
    return boards


def test_marks_on_a_planted_board(planted) -> None:
    paper = ReferenceRow(
        paper="Paper 2024", table="Table 1", method="paper-mf", datasets=["ml-100k"], tasks=["ctr"],
        protocols=["temporal-window"], metrics={"all": {"auc": 0.9}},
    )  # fmt: skip
    (board,) = _boards(planted, references=[paper])
    rows = {r.label: r for r in board.rows}
    assert board.mark_column == "all/auc"
    assert rows["best"].mark == "best" and rows["best"].p_value is None
    assert rows["close"].mark == "n.s." and rows["close"].p_value > 0.05
    assert rows["weak"].mark == "worse" and rows["weak"].p_value < 0.001
    assert rows["weak"].test == "delong"
    lo, hi = rows["weak"].diff_ci95
    assert lo < rows["weak"].diff < hi < 0
    assert rows["weak"].diff == pytest.approx(
        rows["weak"].cells["all/auc"].mean - rows["best"].cells["all/auc"].mean
    )
    assert (rows["blind"].mark, rows["blind"].mark_note) == ("no test", "no predictions saved")
    assert rows["paper-mf"].mark == "no test" and rows["paper-mf"].is_reference
    # Holm over the two comparisons, from their raw p-values
    tested = [rows["close"], rows["weak"]]
    np.testing.assert_allclose([r.p_value for r in tested], holm([r.p_raw for r in tested]))
    # the cell of the two-seed row carries its t interval over seeds
    seeds = [json.loads(p.read_text())["metrics"]["all"]["auc"] for p in sorted(planted.rglob("best-*.json"))]
    assert rows["best"].cells["all/auc"].ci95 == pytest.approx(t_interval(seeds))
    assert rows["weak"].cells["all/auc"].ci95 is None  # one seed: no interval
    (note,) = board.power_notes
    assert "all/auc: delong test on 960 rows" in note and "80% power" in note


def test_bh_and_the_sort_column(planted) -> None:
    (board,) = _boards(planted, correction="bh")
    tested = [r for r in board.rows if r.mark in ("n.s.", "worse")]
    np.testing.assert_allclose([r.p_value for r in tested], benjamini_hochberg([r.p_raw for r in tested]))
    loaded = load_records([planted])
    (board,) = build_leaderboard([r for _, r in loaded.records], [])
    annotate_boards([board], loaded.records, sort="uauc")
    assert board.mark_column == "all/uauc"
    assert {r.test for r in board.rows if r.mark in ("n.s.", "worse")} == {"randomisation"}


def test_every_format_carries_marks_ci_and_p(planted) -> None:
    boards = _boards(planted)
    md = render_markdown(boards)
    assert "| vs best | Δ vs best [95% CI] | all/auc 95% CI (seeds) |" in md
    assert "worse p<0.001" in md and "Holm-corrected p" in md and "80% power" in md
    rows = list(csv.DictReader(io.StringIO(render_text(boards, "csv"))))
    by = {r["method"]: r for r in rows}
    assert by["weak"]["vs_best"] == "worse" and float(by["weak"]["p_corrected"]) < 0.001
    assert by["weak"]["correction"] == "holm" and by["weak"]["mark_column"] == "all/auc"
    assert float(by["weak"]["diff_ci95_low"]) < float(by["weak"]["diff_vs_best"])
    assert by["best"]["all/auc_ci95_low"] and not by["weak"]["all/auc_ci95_low"]
    assert by["blind"]["vs_best"] == "no test"
    tex = render_latex(boards)
    assert "vs best" in tex and "n.s. p=" in tex


def test_leaderboard_cli_marks_and_bad_options(cli, planted, tmp_path: Path, monkeypatch) -> None:
    # the planted records claim ml-100k with made-up hashes: against a cache that holds the real split they
    # would be stale (and left out), so this board reads them with an empty cache
    monkeypatch.setenv("BENCHBED_CACHE", str(tmp_path / "empty-cache"))
    code, out, err = cli("leaderboard", "--format", "markdown")
    assert code == 0, err
    assert "| best | 2 | best |" in out  # label, seeds, mark
    assert "| weak | 1 | worse p<0.001 |" in out and "| blind | 1 | no test |" in out
    code, out, err = cli("leaderboard", "--no-tests", "--format", "markdown")
    assert code == 0 and "vs best" not in out
    for args, message in ((["--alpha", "1.5"], "--alpha"), (["--correction", "sidak"], "--correction")):
        code, out, err = cli("leaderboard", *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("task", ["ctr", "topk", "generative", "item2text"])
def test_units_reproduce_committed_records(task: str) -> None:
    """Per-unit values averaged as the task averages them give every number a committed record stores."""
    from benchbed.results.record import read_record
    from benchbed.results.units import record_predictions, units_for

    records = [read_record(p) for p in sorted((ROOT / "results" / "ml-100k" / task).glob("*-s0.json"))]
    found = [r for r in records if r.predictions and r.status == "ok"]
    if not found:
        pytest.skip(f"no committed {task} record with predictions in this checkout")
    rec = found[0]
    path = ROOT / "results" / "ml-100k" / task / f"{rec.method}-{rec.config_hash}-s0.json"
    predictions = record_predictions(path, rec, verify_keys=False)  # the values are what is checked here
    checked = 0
    for subset, values in rec.metrics.items():
        for key, value in values.items():
            if value is None or (task == "item2text" and key not in ("sc", "attr_f1")):
                continue
            assert units_for(rec.task, predictions, f"{subset}/{key}").mean == pytest.approx(value, abs=1e-9)
            checked += 1
    assert checked >= 4


def test_item2text_units_weight_unbalanced_subtasks() -> None:
    """Items with different sets of sub-tasks and undefined F1 rows: the item values' mean is still the
    task's macro mean over sub-tasks."""
    import pandas as pd

    from benchbed.results.units import units_for
    from benchbed.tasks.item2text import Item2TextTask

    rng = np.random.default_rng(0)
    rows = [
        {"template": "seen", "task": task, "item": item, "warm": bool(item % 3), "generated": f"t{item}",
         "sc": 100 * rng.random(), "attr_f1": np.nan if rng.random() < 0.3 else 100 * rng.random()}
        for item in range(30) for task in ("describe", "genres", "decade")
        if task == "describe" or rng.random() > 0.4
    ]  # fmt: skip
    frame = pd.DataFrame(rows)
    metrics, _ = Item2TextTask().compute_metrics(frame)
    for subset in ("all", "warm", "cold", "describe", "genres"):
        for key in ("sc", "attr_f1"):
            units = units_for("item2text", frame, f"{subset}/{key}")
            assert units.mean == pytest.approx(metrics[subset][key], abs=1e-9), (subset, key)
    assert units_for("item2text", frame, "all/sc").keys.size == 30


def test_run_seeds_records_each_seed(cli) -> None:
    code, out, err = cli(
        "run", "-m", "random", "--task", "ctr", "--seeds", "0,1", "--task-param", "max_rows=300"
    )
    assert code == 0, err
    seeds = sorted(
        json.loads(p.read_text())["seed"] for p in (cli.results / "ml-100k" / "ctr").glob("*.json")
    )
    assert seeds == [0, 1]
    code, out, err = cli(
        "run", "-m", "random", "--task", "ctr", "--seeds", "1", "--task-param", "max_rows=300"
    )
    assert code == 0 and "found an existing record" in out
    for bad in ("0,0", "a", ""):
        code, out, err = cli("run", "-m", "random", "--seeds", bad)
        assert code == 2 and "--seeds" in err
