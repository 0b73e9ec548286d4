"""Damaged or odd inputs to ``check``, ``rescore`` and ``leaderboard``, and numerical failures (issue 25,
item 4): one-line errors before any work, item-to-text records rescorable, predictions that belong to
another run refused whatever the flags, an interrupted run's record explained, a stale record marked."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from benchbed.results.record import RunRecord, read_record
from benchbed.results.store import predictions_path, write_record


def _last_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert lines and "Traceback" not in err, err
    return lines[-1]


# --- check: a damaged baseline is refused before any run ---------------------------------------------------
@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b'{"schema_version": 1, "runs": {}}\xff\xfe', "not UTF-8 text"),
        (None, "'0.5'"),  # a metric value given as a string
    ],
)
def test_check_refuses_a_damaged_baseline_before_running(cli, tmp_path: Path, content, needle) -> None:
    from benchbed.orchestration.suite import BASELINE_VERSION, load_suite

    suite_file = tmp_path / "s.yaml"
    suite_file.write_text(
        yaml.safe_dump({"name": "s", "baseline": "b.json", "runs": [{"method": "pop", "task": "ctr"}]})
    )
    key = load_suite(suite_file).run_key(load_suite(suite_file).runs[0])
    baseline = tmp_path / "b.json"
    if content is None:
        runs = {key: {"label": "pop", "metrics": {"all": {"auc": "0.5"}}}}
        content = json.dumps({"schema_version": BASELINE_VERSION, "runs": runs}).encode()
    baseline.write_bytes(content)
    code, _, err = cli("check", "--suite", str(suite_file))
    assert code == 2 and needle in _last_line(err) and str(baseline) in _last_line(err), err
    assert not list(cli.results.rglob("*.json"))  # nothing ran


def test_leaderboard_digits_out_of_range_is_one_line(cli) -> None:
    for digits in ("-3", "99"):
        code, _, err = cli("leaderboard", "--digits", digits)
        assert (
            code == 2 and _last_line(err) == f"error: --digits: expected decimals from 0 to 12, got {digits}"
        )


def test_numerical_failure_names_the_parameter_to_change(cli) -> None:
    code, _, err = cli("run", "-m", "ease", "-t", "topk", "-p", "reg=1e-300", "--device", "cpu")
    last = _last_line(err)
    assert code == 1 and "failed numerically" in last and "reg=1e-300" in last, err
    [path] = list(cli.results.rglob("*.json"))
    assert read_record(path).status == "failed" and "reg=1e-300" in (read_record(path).error or "")


# --- rescore ------------------------------------------------------------------------------------------------
def test_rescore_refuses_another_runs_predictions_whatever_the_flags(cli) -> None:
    for method in ("pop", "random"):
        code, _, err = cli("run", "-m", method, "-t", "topk", "--device", "cpu")
        assert code == 0, err
    records = {read_record(p).method: p for p in cli.results.rglob("*-s0.json")}
    pop, rnd = records["pop"], records["random"]
    shutil.copyfile(predictions_path(rnd), predictions_path(pop))  # same split, same rows: another method
    before = pop.read_bytes()
    code, _, err = cli("rescore", str(pop), "--write", "--accept-changes")
    last = _last_line(err)
    assert code == 1 and "made by another run (method 'random'" in last, err
    assert pop.read_bytes() == before


def test_rescore_of_an_interrupted_run_says_it_did_not_finish(cli, tmp_path: Path) -> None:
    record = _record("item2text", status="failed", error="interrupted by SIGTERM")
    path = write_record(tmp_path / "r.json", record)
    code, _, err = cli("rescore", str(path))
    last = _last_line(err)
    assert code == 1 and "did not finish (interrupted by SIGTERM)" in last and "save_predictions" not in last


def test_item_to_text_records_are_rescorable(cli, tmp_path: Path) -> None:
    """Planted item-to-text predictions with list cells (the attributes), as the task writes them."""
    rows = pd.DataFrame(
        {
            "template": ["seen"] * 4,
            "task": ["describe", "describe", "genres", "genres"],
            "item": [1, 2, 3, 4],
            "warm": [True, False, True, True],
            "generated": ["a", "b", "c", "d"],
            "reference": ["a", "x", "c", "y"],
            "attributes": [["Comedy"], ["Action", "Crime"], [], ["Drama"]],
            "sc": [80.0, 20.0, 60.0, 40.0],
            "attr_f1": [100.0, 0.0, np.nan, 50.0],
        }
    )
    from benchbed.tasks import build_task

    metrics, counts = build_task("item2text", {}).compute_metrics(rows)
    record = _record("item2text", metrics=metrics, counts=counts)
    path = write_record(tmp_path / "i2t.json", record, rows)
    code, out, err = cli("rescore", str(path), "--write")
    assert code == 0, err
    assert "0 value(s) differ" in out
    assert read_record(path).rescored is not None


def _record(task: str, **fields) -> RunRecord:
    base = dict(
        run_id="r1",
        created="2026-01-01T00:00:00+00:00",
        config={"method": "planted", "task": task},
        config_hash="c0ffee",
        method="planted",
        method_params={},
        params_hash="p",
        dataset="ml-100k",
        task=task,
        seed=0,
    )
    return RunRecord(**{**base, **fields})


# --- leaderboard: a record of data that changed since is left out, with a note ------------------------------
def _presplit_dir(root: Path) -> Path:
    """A tiny pre-split dataset in RecBole's atomic format (real files, read by the real loader)."""
    root.mkdir()
    header = "user_id:token\titem_id:token\ttimestamp:float\n"
    rows: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for u in range(6):
        rows["train"] += [f"u{u}\ti{(u + i) % 9}\t{100 * u + i}\n" for i in range(5)]
        rows["valid"].append(f"u{u}\ti{(u + 5) % 9}\t{100 * u + 50}\n")
        rows["test"].append(f"u{u}\ti{(u + 6) % 9}\t{100 * u + 60}\n")
    for part, lines in rows.items():
        (root / f"tiny.{part}.inter").write_text(header + "".join(lines))
    return root


def test_leaderboard_leaves_out_a_stale_record_with_a_note(cli, tmp_path: Path) -> None:
    data = _presplit_dir(tmp_path / "ds")
    run = ("run", "-m", "pop", "-t", "topk", "-d", str(data), "--device", "cpu")
    assert cli(*run)[0] == 0
    train = data / "tiny.train.inter"
    train.write_text(train.read_text().replace("u0\ti0\t0", "u0\ti1\t0"))  # the data changes
    assert cli(*run)[0] == 0  # `run` ignores the old record and runs again
    assert len(list(cli.results.rglob("pop-*-s0.json"))) == 2
    code, out, err = cli("leaderboard", "--format", "csv", "--no-tests", "--no-references")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["method"] for r in rows] == ["pop"], out
    assert "stale: the files of" in err, err
