"""The board as a new user meets it: --metrics checked, cost columns in every format, one meaning of
``seeds``, every task in help texts, and ``--suite`` finding the records a suite's runs produced."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from benchbed.config import RunConfig, stable_hash
from benchbed.orchestration.suite import load_suite
from benchbed.orchestration.suite_records import produced_by, suite_records
from benchbed.results.record import RunRecord
from benchbed.results.store import load_records

ROOT = Path(__file__).resolve().parent.parent
SUITES = sorted((ROOT / "benchmarks").glob("*.yaml"))


def record(method: str, seed: int, auc: float, *, given: dict | None = None, **fields) -> RunRecord:
    params = fields.pop("method_params", {})
    return RunRecord(
        run_id=f"{method}{seed}",
        created=f"2026-01-01T00:00:0{seed}+00:00",
        config={
            "method": method,
            "seed": seed,
            "dataset": "ml-100k",
            "task": "ctr",
            "device": None,
            **(given or {}),
        },
        config_hash=f"h{method}",
        method=method,
        method_params=params,
        params_hash=stable_hash(params),
        dataset="ml-100k",
        task=fields.pop("task", "ctr"),
        seed=seed,
        split_protocol="temporal-window",
        metrics={"all": {"auc": auc, "logloss": 0.6}, "warm": {"auc": auc}},
        cost={
            "train_s": 12.5,
            "eval_s": 1.0,
            "peak_memory_mb": 321.0,
            "trainable_params": 4096,
            "device": "cpu",
        },
        **fields,
    )


@pytest.fixture
def planted(cli) -> Path:
    for rec in (record("mf", 0, 0.71), record("mf", 1, 0.73), record("pop", 0, 0.6)):
        path = cli.results / "ml-100k" / "ctr" / f"{rec.method}-{rec.config_hash}-s{rec.seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rec.to_json(), encoding="utf-8")
    return cli.results


def test_unknown_metric_is_an_error_listing_the_known_ones(cli, planted: Path) -> None:
    code, out, err = cli("leaderboard", "--metrics", "bogus")
    assert code == 2 and out == ""
    assert "--metrics: unknown bogus" in err and "known: auc, logloss" in err and "train_s" in err


@pytest.mark.parametrize("fmt", ["markdown", "csv", "latex", "json", "html", "rich"])
def test_cost_columns_selectable_in_every_format(cli, planted: Path, fmt: str) -> None:
    code, out, err = cli("leaderboard", "--metrics", "auc,train_s", "--subsets", "all", "-f", fmt)
    assert code == 0, err
    assert "train_s" in out.replace("\\_", "_")  # LaTeX escapes the underscore
    if fmt == "json":  # task_params name the metrics computed; the columns are what is shown
        assert json.loads(out)["boards"][0]["columns"] == ["all/auc", "cost/train_s"]
        return
    assert "logloss" not in out and "warm" not in out.replace("warm_threshold", "")


def test_cost_column_values_and_direction(cli, planted: Path) -> None:
    code, out, err = cli("leaderboard", "--metrics", "auc,peak_memory_mb,trainable_params", "-f", "json")
    assert code == 0, err
    board = json.loads(out)["boards"][0]
    assert board["columns"] == ["all/auc", "warm/auc", "cost/peak_memory_mb", "cost/trainable_params"]
    mf = next(r for r in board["rows"] if r["method"] == "mf")
    assert mf["cells"]["cost/peak_memory_mb"]["mean"] == 321.0
    assert mf["cells"]["cost/trainable_params"]["mean"] == 4096
    code, out, _ = cli("leaderboard", "--metrics", "train_s", "--sort", "train_s", "-f", "csv")
    assert code == 0 and "cost/train_s" in out


def test_seeds_is_a_count_in_every_format(cli, planted: Path) -> None:
    code, out, _ = cli("leaderboard", "-f", "csv")
    rows = {r["method"]: r for r in csv.DictReader(io.StringIO(out))}
    assert rows["mf"]["seeds"] == "2" and rows["pop"]["seeds"] == "1"
    code, out, _ = cli("leaderboard", "-f", "json")
    rows = {r["method"]: r for r in json.loads(out)["boards"][0]["rows"]}
    assert rows["mf"]["seeds"] == 2 and rows["mf"]["seed_ids"] == [0, 1]
    code, out, _ = cli("leaderboard", "-f", "markdown")
    assert "| mf | 2 |" in out


def test_html_format_is_the_report_table(cli, planted: Path, tmp_path: Path) -> None:
    target = tmp_path / "board.html"
    code, _, err = cli("leaderboard", "-o", str(target))
    assert code == 0, err
    text = target.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<table class='board'" in text and "mf" in text


def test_run_help_lists_every_registered_task(cli) -> None:
    import benchbed.tasks  # noqa: F401
    from benchbed.registry import TASKS

    code, out, _ = cli("run", "--help")
    assert code == 0
    assert all(name in out for name in TASKS) and "item2text" in out


# ---------------------------------------------------------------------------------------------------------
# --suite: the records a suite's runs produced
# ---------------------------------------------------------------------------------------------------------
def _resolved_identity(config: RunConfig) -> tuple:
    """What a run of ``config`` would record with today's defaults (the independent oracle)."""
    from benchbed.methods import build_method
    from benchbed.tasks import build_task

    method = build_method(config.method, dict(config.method_params), config.task)
    task = build_task(config.task, dict(config.task_params))
    return (config.method, config.dataset, config.task, config.seed, stable_hash(method.params), task.params)


@pytest.mark.parametrize("suite_file", SUITES, ids=[p.stem for p in SUITES])
def test_every_suite_finds_the_committed_records_of_its_runs(suite_file: Path) -> None:
    records = [r for _, r in load_records([ROOT / "results"]).records if r.status == "ok"]
    suite = load_suite(suite_file)
    found = suite_records(suite.runs, records)
    wanted = set()
    for config in suite.runs:
        if config.dataset != "ml-100k":  # the committed results are ml-100k; no record to find
            continue
        identity = _resolved_identity(config)
        wanted |= {
            id(r)
            for r in records
            if (r.method, r.dataset, r.task, r.seed, r.params_hash, r.task_params) == identity
            and (config.split is None or config.split == r.split_protocol)
        }
    assert wanted <= {id(r) for r in found}
    assert all(any(r.method == c.method and r.task == c.task for c in suite.runs) for r in found)


def test_openp5_suite_on_a_fresh_clone(cli) -> None:
    code, out, err = cli(
        "leaderboard", "--suite", "benchmarks/openp5.yaml", "-f", "json", results_dir=ROOT / "results"
    )
    assert code == 0, err
    boards = json.loads(out)["boards"]
    methods = {(b["task_params"]["sub_task"], r["method"]) for b in boards for r in b["rows"] if r["seeds"]}
    assert {("sequential", m) for m in ("pop", "sasrec", "p5-random", "embedproj")} <= methods
    assert {("straightforward", m) for m in ("pop", "p5-random", "embedproj")} <= methods


def test_suite_matching_by_stated_options() -> None:
    defaults = ({"epochs": 10, "lr": 0.01}, {"sub_task": "sequential"})
    suite_run = RunConfig(method="mf", dataset="ml-100k", task="ctr", device="cpu")
    # made by `benchbed run -m mf` (device unstated: it ran on cpu), when the epochs default was 5
    old = record(
        "mf", 0, 0.7, method_params={"epochs": 5, "lr": 0.01}, task_params={"sub_task": "sequential"}
    )
    assert produced_by(suite_run, old, defaults)
    # an option the record states that the suite does not (and whose current default differs): not this run
    other = record(
        "mf",
        0,
        0.7,
        given={"task_params": {"sub_task": "straightforward"}},
        task_params={"sub_task": "straightforward"},
    )
    assert not produced_by(suite_run, other, defaults)
    # the suite states a value: the record must have run with it
    stated = RunConfig(method="mf", method_params={"epochs": 10}, device="cpu")
    assert not produced_by(stated, old, defaults)
    assert produced_by(stated, record("mf", 0, 0.7, method_params={"epochs": 10, "lr": 0.01}), defaults)
    # another device, another seed: not this run
    assert not produced_by(RunConfig(method="mf", device="cuda"), old, defaults)
    assert not produced_by(suite_run.with_updates(seed=1), old, defaults)
