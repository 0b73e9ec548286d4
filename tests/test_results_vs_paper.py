"""Paper rows only on their own board (dataset, task, protocol, task and split parameters), and
``leaderboard --vs-paper``: ours, the paper's figure and the difference per cell."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from benchbed.cli.app import app
from benchbed.cli.board_defaults import registry_defaults
from benchbed.config import RunConfig, stable_hash
from benchbed.errors import ConfigError
from benchbed.results.leaderboard import build_leaderboard
from benchbed.results.record import RunRecord
from benchbed.results.reference import load_references
from benchbed.results.store import write_record
from benchbed.results.vs_paper import vs_paper_boards

ML1M_SPLIT = registry_defaults("ml-1m", "ctr", "temporal-window")[0]  # CoLLM's month windows (catalog)
LOO = registry_defaults("ml-100k", "topk", "leave-one-out")[0]


def rec(method: str, metrics: dict[str, dict[str, Any]], **kw: Any) -> RunRecord:
    params = kw.pop("params", {})
    config = RunConfig(
        method=method,
        dataset=kw.get("dataset", "ml-1m"),
        task=kw.get("task", "ctr"),
        method_params=params,
        task_params=kw.get("task_params", {}),
    )
    base: dict[str, Any] = dict(
        run_id=f"{method}-{stable_hash(params)[:6]}",
        created="2025-01-01T00:00:00+00:00",
        config={"method": method},
        config_hash=config.hash(),
        method=method,
        method_params=params,
        params_hash=stable_hash(params),
        dataset="ml-1m",
        task="ctr",
        seed=0,
        split_protocol="temporal-window",
        split_params=dict(ML1M_SPLIT),
        task_params={},
        metrics=metrics,
    )
    base.update(kw)
    return RunRecord(**base)


def paper_rows(board: Any) -> list[str]:
    return sorted(r.label for r in board.rows if r.is_reference)


def test_generative_paper_rows_stay_off_the_topk_board() -> None:
    refs = load_references()
    records = [
        rec("pop", {"all": {"hr@10": 0.08}}, dataset="ml-100k", task="topk", split_protocol="leave-one-out"),
        rec(
            "p5-random",
            {"all": {"hr@10": 0.05}},
            dataset="ml-100k",
            task="generative",
            split_protocol="leave-one-out",
            task_params={"sub_task": "sequential"},
        ),
        rec(
            "pop",
            {"all": {"hr@10": 0.04}},
            dataset="ml-100k",
            task="generative",
            split_protocol="leave-one-out",
            task_params={"sub_task": "straightforward"},
        ),
    ]
    for r in records:
        r.split_params = dict(LOO)
    boards = {(b.task, b.task_params.get("sub_task")): b for b in build_leaderboard(records, refs)}
    assert "OpenP5 (random id)" not in paper_rows(boards[("topk", None)])
    assert "OpenP5 (random id)" in paper_rows(boards[("generative", "sequential")])
    assert "OpenP5 (random id)" not in paper_rows(boards[("generative", "straightforward")])


def test_paper_rows_need_the_papers_split() -> None:
    refs = load_references()
    paper = rec("mf", {"all": {"auc": 0.64}})
    quantile = rec("mf", {"all": {"auc": 0.60}}, split_params={**ML1M_SPLIT, "by": "quantile"})
    boards = build_leaderboard([paper, quantile], refs, defaults=registry_defaults)
    by_split = {b.split_params["by"]: b for b in boards}
    assert "CoLLM-MF" in paper_rows(by_split["month"])  # the catalog's split = CoLLM's
    assert paper_rows(by_split["quantile"]) == []  # another split of ml-1m: not the paper's numbers
    # without the defaults (a pure call) the split is not checked, as before
    assert "CoLLM-MF" in paper_rows(build_leaderboard([quantile], refs)[0])


def test_block_task_and_split_params(tmp_path: Path) -> None:
    path = tmp_path / "refs.yaml"
    path.write_text(
        "papers: {p: {cite: P}}\n"
        "blocks:\n"
        "  - {paper: p, table: T, dataset: d, task: [generative, topk], protocol: leave-one-out,\n"
        "     task_params: {sub_task: sequential}, split_params: {tie_break: item},\n"
        "     rows: {A: {hr@10: 0.1}}}\n"
    )
    (row,) = load_references(path)
    defaults = {"tie_break": "file", "history_len": 10}
    kw = {"split_defaults": defaults}
    assert row.matches("d", "topk", "leave-one-out", {"ks": [10]}, split_params={"tie_break": "item"}, **kw)
    assert not row.matches("d", "topk", "leave-one-out", {}, split_params={"tie_break": "file"}, **kw)
    assert not row.matches(  # a split parameter the block does not name, away from the default
        "d", "topk", "leave-one-out", {}, split_params={"tie_break": "item", "history_len": 5}, **kw
    )
    assert not row.matches(
        "d",
        "generative",
        "leave-one-out",
        {"sub_task": "straightforward"},
        split_params={"tie_break": "item"},
    )
    assert not row.matches("d", "topk", "random-per-user")
    assert not row.matches("e", "topk", "leave-one-out")


def test_vs_paper_pairs_rows_and_prints_the_difference(tmp_path: Path) -> None:
    results = tmp_path / "results"
    records = [
        rec("mf", {"all": {"auc": 0.7000, "uauc": 0.6000}}),
        rec("collm", {"all": {"auc": 0.7400}}, params={"cf": "mf", "backbone": "vicuna-7b"}),
        rec("collm", {"all": {"auc": 0.7000}}, params={"cf": "din", "backbone": "lmsys/vicuna-7b-v1.3"}),
        rec("collm", {"all": {"auc": 0.6000}}, params={"cf": "sasrec", "backbone": "tiny"}),  # not its model
        rec("pop", {"all": {"auc": 0.6000}}),  # not in CoLLM's table
    ]
    for r in records:
        write_record(results / f"{r.run_id}.json", r)
    boards = vs_paper_boards(build_leaderboard(records, load_references(), defaults=registry_defaults))
    (board,) = [b for b in boards if b.dataset == "ml-1m"]
    rows = {r.label: r for r in board.rows}
    assert rows["mf | MF"].cells["all/auc paper"].mean == 0.6482
    assert abs(rows["mf | MF"].cells["all/auc Δ"].mean - (0.7000 - 0.6482)) < 1e-12
    mf_row = next(r for label, r in rows.items() if label.endswith("| CoLLM-MF"))
    din_row = next(r for label, r in rows.items() if label.endswith("| CoLLM-DIN"))
    assert abs(mf_row.cells["all/auc Δ"].mean - (0.7400 - 0.7295)) < 1e-12
    assert abs(din_row.cells["all/auc Δ"].mean - (0.7000 - 0.7353)) < 1e-12
    sasrec_row = next(r for label, r in rows.items() if label.endswith("| CoLLM-SASRec"))
    assert (
        sasrec_row.cells["all/auc Δ"].mean is None
        and sasrec_row.cells["all/auc Δ"].text == "backbone differs"
    )
    assert "— | LightGCN" in rows and "all/auc Δ" not in rows["— | LightGCN"].cells  # paper only: no Δ
    assert not any(label.startswith("pop") for label in rows)
    assert any("pop" in note for note in board.notes)

    suite = tmp_path / "suite.yaml"
    suite.write_text("name: s\nruns:\n  - {method: mf, dataset: ml-1m, task: ctr}\n")
    out = CliRunner().invoke(
        app, ["leaderboard", str(results), "--suite", str(suite), "--vs-paper", "--format", "csv"]
    )
    assert out.exit_code == 0, out.output
    table = list(csv.DictReader(io.StringIO(out.stdout)))
    ours = [r for r in table if r["method"] == "mf | MF" and r["dataset"] == "ml-1m"]
    assert len(ours) == 1
    assert float(ours[0]["all/auc"]) == 0.7 and float(ours[0]["all/auc paper"]) == 0.6482
    assert abs(float(ours[0]["all/auc Δ"]) - 0.0518) < 1e-6
    assert not any(r["method"].startswith("collm") for r in table)  # not in the suite

    refused = CliRunner().invoke(app, ["leaderboard", str(results), "--vs-paper", "--no-references"])
    # (the one-line message and exit code come from benchbed.cli.app.main, which CliRunner bypasses)
    assert isinstance(refused.exception, ConfigError) and "--no-references" in str(refused.exception)
