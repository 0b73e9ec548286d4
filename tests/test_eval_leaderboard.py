"""Run records, the record store, paper references, leaderboard building and rendering (hand-written)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest

from benchbed.config import RunConfig, stable_hash
from benchbed.errors import ConfigError
from benchbed.results.leaderboard import aggregate, build_leaderboard, select_columns
from benchbed.results.record import SCHEMA_VERSION, RecordError, RunRecord, read_record
from benchbed.results.reference import DEFAULT_REFERENCE_FILE, load_references
from benchbed.results.render import render_csv, render_latex, render_markdown, rich_tables
from benchbed.results.store import load_records, record_path, write_record


def rec(method: str, seed: int, metrics: dict[str, dict[str, Any]], **kw: Any) -> RunRecord:
    params = kw.pop("params", {})
    base: dict[str, Any] = dict(
        run_id=f"{method}{seed}",
        created=f"2025-01-01T00:00:0{seed}+00:00",
        config={"method": method},
        config_hash="h",
        method=method,
        method_params=params,
        params_hash=stable_hash(params),
        dataset="ml-1m",
        task="ctr",
        seed=seed,
        split_protocol="temporal-window",
        split_params={"warm_threshold": 3},
        task_params={"metrics": ["auc"]},
        metrics=metrics,
    )
    base.update(kw)
    return RunRecord(**base)


def records() -> list[RunRecord]:
    return [
        rec("mf", 0, {"all": {"auc": 0.70, "uauc": 0.60}, "warm": {"auc": 0.8}}),
        rec("mf", 1, {"all": {"auc": 0.72, "uauc": 0.62}, "warm": {"auc": 0.9}}),
        rec("mf", 2, {"all": {"auc": 0.74, "uauc": None}, "warm": {"auc": 1.0}}),  # uauc undefined on seed 2
        rec("pop", 0, {"all": {"auc": 0.65, "uauc": 0.55}, "cold": {"auc": 0.6}}),
        rec("mf", 0, {"all": {"auc": 0.50}}, params={"dim": 8}),  # another param set of mf
        rec("mf", 0, {"all": {"auc": 0.99}}, status="failed", error="boom"),  # failed: no row
        rec("mf", 0, {"all": {"auc": 0.61}}, split_params={"warm_threshold": 1}),  # other protocol params
        rec("din", 0, {"all": {"ndcg@10": 0.3}}, task="topk"),
    ]


def test_record_roundtrip_and_validation(tmp_path: Path) -> None:
    r = rec("mf", 0, {"all": {"auc": 0.7, "uauc": float("nan")}})
    path = tmp_path / "r.json"
    path.write_text(r.to_json())
    back = read_record(path)
    assert back.metrics == {"all": {"auc": 0.7, "uauc": None}}  # NaN is stored as null
    assert back.schema_version == SCHEMA_VERSION and back.method == "mf"
    bad = json.loads(r.to_json())
    bad["schema_version"] = 99
    path.write_text(json.dumps(bad))
    with pytest.raises(RecordError, match=r"r\.json: unknown schema_version 99"):
        read_record(path)
    path.write_text("{not json")
    with pytest.raises(RecordError, match="corrupt JSON"):
        read_record(path)
    missing = json.loads(r.to_json())
    del missing["seed"]
    path.write_text(json.dumps(missing))
    with pytest.raises(RecordError, match=r"missing field\(s\) \['seed'\]"):
        read_record(path)


def test_store_paths_are_deterministic_and_loading_lists_skips(tmp_path: Path) -> None:
    config = RunConfig(method="recbole:BPR", dataset="/data/my set", task="topk", seed=3)
    path = record_path(tmp_path, config)
    assert path == record_path(
        tmp_path, RunConfig(method="recbole:BPR", dataset="/data/my set", task="topk", seed=3)
    )
    assert path.parent == tmp_path / "my-set" / "topk" and path.name == f"recbole-BPR-{config.hash()}-s3.json"
    write_record(path, rec("mf", 3, {"all": {"auc": 0.7}}))
    (tmp_path / "junk.json").write_text("[1, 2")
    (tmp_path / "old.json").write_text(json.dumps({"schema_version": 0}))
    (tmp_path / "tune").mkdir()
    (tmp_path / "tune" / "mf-ml-100k-ctr.json").write_text(json.dumps({"trials": []}))
    loaded = load_records([tmp_path])
    assert [p for p, _ in loaded.records] == [path]
    why = {p.name: w for p, w in loaded.skipped}
    assert "mf-ml-100k-ctr.json" not in why  # tuning reports are not records and not "skipped"
    assert "corrupt JSON" in why["junk.json"] and "unknown schema_version 0" in why["old.json"]
    assert not any(f.name.endswith(".tmp") for f in tmp_path.rglob("*"))


def test_aggregate_mean_sem_and_missing() -> None:
    cell = aggregate([0.70, 0.72, 0.74])
    assert cell.mean == pytest.approx(0.72) and cell.sem == pytest.approx(0.02 / math.sqrt(3))
    assert aggregate([0.7]).sem is None
    gap = aggregate([0.7, None, 0.8])
    assert gap.mean is None and (gap.n, gap.total) == (2, 3)


def test_leaderboard_groups_aggregates_and_keeps_missing_cells_empty() -> None:
    boards = build_leaderboard(records())
    titles = [(b.dataset, b.task, b.split_params.get("warm_threshold")) for b in boards]
    assert titles == [("ml-1m", "ctr", 1), ("ml-1m", "ctr", 3), ("ml-1m", "topk", 3)]
    board = boards[1]
    assert board.columns == ["all/auc", "all/uauc", "warm/auc", "cold/auc"]
    rows = {r.label: r for r in board.rows}
    assert set(rows) == {"mf (dim=8)", "mf (dim=None)", "pop"}
    mf = rows["mf (dim=None)"]
    assert mf.seeds == [0, 1, 2]
    assert mf.cells["all/auc"].mean == pytest.approx(0.72)
    assert mf.cells["all/uauc"].mean is None  # seed 2 has no UAUC: no mean over a different seed set
    assert mf.cells["cold/auc"].mean is None and rows["pop"].cells["warm/auc"].mean is None
    # default sort: all/auc, best first
    assert [r.label for r in board.rows] == ["mf (dim=None)", "pop", "mf (dim=8)"]


def test_leaderboard_sort_filters_and_errors() -> None:
    boards = build_leaderboard(records(), sort="method", task="ctr")
    assert [r.label for r in boards[1].rows] == ["mf (dim=8)", "mf (dim=None)", "pop"]
    boards = build_leaderboard(records(), sort="cold/auc", task="ctr")
    assert boards[1].rows[0].label == "pop"  # the only row with a cold value comes first
    with pytest.raises(ConfigError, match="no column 'hr@10'"):
        build_leaderboard(records(), sort="hr@10", task="ctr")
    assert build_leaderboard(records(), dataset="ml-100k") == []


def test_paper_rows_join_matching_boards(tmp_path: Path) -> None:
    refs = load_references()
    boards = build_leaderboard(records(), refs, task="ctr")
    board = boards[1]  # ml-1m ctr temporal-window
    paper = [r for r in board.rows if r.is_reference]
    assert len(paper) == 14 and all(r.source and r.source.startswith("CoLLM") for r in paper)
    collm_mf = next(r for r in paper if r.label == "CoLLM-MF" and "Table II" in (r.source or ""))
    assert collm_mf.cells["all/auc"].mean == 0.7295 and collm_mf.cells["all/uauc"].mean == 0.6875
    assert "all/ndcg" in board.columns and board.rows.index(collm_mf) > 2  # ours first
    only = build_leaderboard([], refs, dataset="amazon-book", task="ctr", include_reference_only=True)
    assert [b.dataset for b in only] == ["amazon-book"] and len(only[0].rows) == 14


def test_paper_rows_respect_the_sub_task() -> None:
    """Seed 003 reports sequential and straightforward tables: each joins only its own sub-task's board."""
    common = dict(dataset="ml-1m", split_protocol="leave-one-out", split_params={})
    recs = [
        rec(
            "pop",
            0,
            {"all": {"hr@10": 0.1}},
            task="generative",
            task_params={"sub_task": "sequential"},
            **common,
        ),
        rec(
            "pop",
            0,
            {"all": {"hr@10": 0.1}},
            task="generative",
            task_params={"sub_task": "straightforward"},
            **common,
        ),
        rec("pop", 0, {"all": {"hr@10": 0.1}}, task="topk", task_params={"ks": [10]}, **common),
    ]
    boards = {(b.task, b.task_params.get("sub_task")): b for b in build_leaderboard(recs, load_references())}
    sources = {key: {r.source for r in b.rows if r.is_reference} for key, b in boards.items()}
    assert sources[("generative", "sequential")] and sources[("generative", "straightforward")]
    assert all("sequential" in s for s in sources[("generative", "sequential")])
    assert all("straightforward" in s for s in sources[("generative", "straightforward")])
    assert sources[("topk", None)] and all("sequential" in s for s in sources[("topk", None)])


def test_reference_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "ref.yaml"
    bad.write_text(
        "papers: {x: {cite: X}}\nblocks:\n  - {paper: x, table: T, dataset: d, task: ctr, rowz: {}}\n"
    )
    with pytest.raises(ConfigError, match=r"ref\.yaml blocks\[0\]: unknown key\(s\) \['rowz'\]"):
        load_references(bad)
    bad.write_text("papers: {}\nblocks:\n  - {paper: x, table: T, dataset: d, task: ctr, rows: {}}\n")
    with pytest.raises(ConfigError, match="paper 'x' is not listed"):
        load_references(bad)
    assert DEFAULT_REFERENCE_FILE.exists()


def test_renderers() -> None:
    defaults = lambda dataset, task, protocol: ({"warm_threshold": 3}, {"metrics": ["auc"]})  # noqa: E731
    boards = build_leaderboard(records(), load_references(), task="ctr", defaults=defaults)
    assert boards[0].title == "ml-1m · ctr · temporal-window (warm_threshold=1)"
    select_columns(boards, metrics=["auc", "uauc"], subsets=["all", "warm"])
    assert boards[1].columns == ["all/auc", "all/uauc", "warm/auc"]
    md = render_markdown(boards)
    assert "### ml-1m · ctr · temporal-window" in md
    assert "| mf (dim=None) | 3 | 0.7200 ± 0.0115 |  | 0.9000 ± 0.0577 |" in md
    assert "| CoLLM-MF † |  | 0.7295 | 0.6875 |  |" in md and "† paper-reported: CoLLM" in md
    csv_text = render_csv(boards)
    header = csv_text.splitlines()[0].split(",")
    assert header[:3] == ["dataset", "task", "protocol"] and "all/auc_sem" in header
    assert any(
        line.startswith("ml-1m,ctr,temporal-window") and ",0.720000,0.011547," in line
        for line in csv_text.splitlines()
    )
    tex = render_latex(boards)
    assert "\\toprule" in tex and "0.7200 $\\pm$ 0.0115" in tex and "CoLLM-MF$^\\dagger$" in tex
    assert len(rich_tables(boards)) == len(boards)


@pytest.mark.parametrize("width", [44, 60, 200])
def test_terminal_tables_drop_columns_rather_than_cut_numbers(width: int) -> None:
    from rich.console import Console

    defaults = lambda dataset, task, protocol: ({"warm_threshold": 3}, {"metrics": ["auc"]})  # noqa: E731
    board = build_leaderboard(records(), load_references(), task="ctr", defaults=defaults)[1]
    console = Console(width=width, record=True, file=io.StringIO())
    (table,) = rich_tables([board], max_width=width)
    console.print(table)
    text = console.export_text()
    assert "…" not in text and max(len(line.rstrip()) for line in text.splitlines()) <= width
    shown = len(table.columns) - 2  # method, seeds
    assert 1 <= shown <= len(board.columns)
    if shown < len(board.columns):
        assert f"{len(board.columns) - shown} more column(s) do not fit" in text
    else:
        assert "do not fit" not in text


def test_time_capped_rows_are_marked_on_every_rendering() -> None:
    """A wall-clock cap that fired (``info.time_capped``, from ``TrainResult.time_capped``) marks the row:
    its numbers depend on machine load. One capped seed marks the whole row; other rows stay unmarked."""
    from rich.console import Console

    capped = [
        rec("tallrec", 0, {"all": {"auc": 0.61}}),
        rec("tallrec", 1, {"all": {"auc": 0.63}}, info={"time_capped": True}),
        rec("mf", 0, {"all": {"auc": 0.70}}, info={"time_capped": False}),
    ]
    (board,) = build_leaderboard(capped)
    rows = {r.label: r for r in board.rows}
    assert rows["tallrec"].time_capped and not rows["mf"].time_capped
    note = "‡ stopped by a wall-clock cap: depends on machine load"

    md = render_markdown([board])
    assert "| tallrec ‡ | 2 |" in md and "| mf | 1 |" in md and note in md
    tex = render_latex([board])
    assert "tallrec$^\\ddagger$ & 2" in tex and "mf & 1" in tex
    assert "{\\footnotesize $^\\ddagger$ stopped by a wall-clock cap: depends on machine load}" in tex
    lines = render_csv([board]).splitlines()
    header = lines[0].split(",")
    flag = {
        line.split(",")[header.index("method")]: line.split(",")[header.index("time_capped")]
        for line in lines[1:]
    }
    assert flag == {"tallrec": "true", "mf": ""}
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(rich_tables([board])[0])
    text = " ".join(console.export_text().split())  # the caption wraps at the table's width
    assert "tallrec ‡" in text and note in text

    (plain,) = build_leaderboard([rec("mf", 0, {"all": {"auc": 0.7}})])
    assert "‡" not in render_markdown([plain]) + render_latex([plain]) + render_csv([plain])


def test_seeds_aggregate_only_over_the_same_data() -> None:
    """Records of one method and params on other data (a directory dataset edited, another preprocessing) are
    separate rows labelled by their data, never averaged as if they were seeds."""
    rows = [
        rec("mf", 0, {"all": {"auc": 0.70}}, dataset_hash="aaaaaa11", split_hash="ssss01"),
        rec("mf", 1, {"all": {"auc": 0.72}}, dataset_hash="aaaaaa11", split_hash="ssss01"),
        rec("mf", 0, {"all": {"auc": 0.50}}, dataset_hash="bbbbbb22", split_hash="ssss02"),
    ]
    (board,) = build_leaderboard(rows)
    by_label = {r.label: r for r in board.rows}
    assert len(board.rows) == 2
    assert by_label["mf [data aaaaaa/ssss01]"].seeds == [0, 1]
    assert by_label["mf [data bbbbbb/ssss02]"].cells["all/auc"].mean == 0.50
    (same,) = build_leaderboard(rows[:2])
    assert [r.label for r in same.rows] == ["mf"]  # one data: the plain label
