"""benchbed report: planted records -> one self-contained HTML file; the record schema, its docs; bad input.

Records here are written in the real record format (RunRecord -> JSON files) with planted metrics and costs,
so the tests know what every table cell, mark and figure must show.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import fields
from pathlib import Path

import pytest

from benchbed.report import figures, schema
from benchbed.report.build import build_report, main_column
from benchbed.report.tables import board_table, ci_half_width, fmt_cost, significance
from benchbed.results.leaderboard import Cell, build_leaderboard
from benchbed.results.record import RunRecord
from benchbed.results.reference import ReferenceRow

ROOT = Path(__file__).resolve().parent.parent


def planted(
    method: str, seed: int, auc: float, *, train_s: float = 1.0, memory: float = 100.0, **extra
) -> RunRecord:
    """A successful CTR record on one board with the given AUC and cost."""
    params = extra.pop("params", {})
    return RunRecord(
        run_id=f"{method}{seed}",
        created=f"2026-01-01T00:00:0{seed}+00:00",
        config={"method": method, "seed": seed, "method_params": params, "dataset": "ml-100k", "task": "ctr"},
        config_hash=f"h{method}",
        method=method,
        method_params=params,
        params_hash=f"p{method}",
        dataset="ml-100k",
        task="ctr",
        seed=seed,
        split_protocol="temporal-window",
        metrics={
            "all": {"auc": auc, "logloss": 0.6},
            "warm": {"auc": auc + 0.05},
            "cold": {"auc": auc - 0.05},
        },
        cost={
            "train_s": train_s,
            "eval_s": 0.5,
            "peak_memory_mb": memory,
            "trainable_params": 1500,
            "device": "cpu",
        },
        **extra,
    )


def planted_records() -> list[RunRecord]:
    return [
        planted("mf", 0, 0.70, train_s=10.0, memory=300.0),
        planted("mf", 1, 0.72, train_s=12.0, memory=300.0),
        planted("mf", 2, 0.74, train_s=11.0, memory=300.0),
        planted("pop", 0, 0.60, train_s=0.01, memory=50.0),
        planted("collm", 0, 0.65, train_s=100.0, memory=900.0, backbone={"id": "tiny", "pretrained": False}),
    ]


PAPER = ReferenceRow(
    paper="Planted et al.",
    table="1",
    method="MF (paper)",
    datasets=["ml-100k"],
    tasks=["ctr"],
    protocols=["temporal-window"],
    metrics={"all": {"auc": 0.70}},
    method_id="mf",
)


def test_ci_is_the_t_interval_of_the_seed_mean() -> None:
    cell = Cell(0.72, 0.01, 3, 3)
    assert ci_half_width(cell) == pytest.approx(4.302653 * 0.01, rel=1e-5)  # t(0.975, 2)
    assert ci_half_width(Cell(0.7, None, 1, 1)) is None
    assert figures.ci95(cell) == pytest.approx(ci_half_width(cell))


def test_pareto_front_keeps_only_undominated_points() -> None:
    points = [(1.0, 0.5), (2.0, 0.7), (3.0, 0.6), (10.0, 0.8), (0.5, 0.4), (4.0, 0.8)]
    assert figures.pareto_front(points, higher_is_better=True) == [
        (0.5, 0.4),
        (1.0, 0.5),
        (2.0, 0.7),
        (4.0, 0.8),
    ]
    assert figures.pareto_front([(1.0, 0.3), (2.0, 0.2)], higher_is_better=False) == [(1.0, 0.3), (2.0, 0.2)]


def test_cost_formatting() -> None:
    assert fmt_cost("trainable_params", 825920) == "826 k"
    assert fmt_cost("trainable_params", 7.2e9) == "7.2 G"
    assert fmt_cost("train_s", 43.53) == "43.5 s"
    assert fmt_cost("peak_memory_mb", 919.8) == "920 MB"


def test_report_shows_every_cell_mark_cost_and_figure_inline() -> None:
    records = planted_records()
    report = build_report(records, sources=["planted"], created="2026-01-01T00:00:00+00:00", code={})
    html = report.html
    assert report.boards == 1 and report.records == 5
    # self-contained: no script/style/image fetched from anywhere
    assert not re.search(r"<(script|img|link|iframe)[^>]*\b(src|href)=", html)
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", html)
    assert "url(http" not in html and "@import" not in html
    # the mf row: mean of three seeds and the t-interval, the random-init mark, the cost columns
    mean, sem = 0.72, 0.02 / math.sqrt(3)
    assert f"{mean:.4f}<span class='ci'> ± {4.302653 * sem:.4f}</span>" in html
    assert "collm °" in html and "random-init" in html
    assert "10.0 s" not in html and "11 s" in html  # mean train time of mf's seeds, three significant digits
    assert "300 MB" in html and "1.5 k" in html
    assert html.count("no test") == 3  # no significance module output on these rows
    # figures (a) main metric, (b) warm vs cold, (c) quality vs cost; all inline SVG
    assert report.figures == 3 and html.count("<svg") == 3
    assert "data-figure='main'" in html and "data-figure='subsets'" in html and "data-figure='cost'" in html


def test_paper_rows_show_the_difference() -> None:
    boards = build_leaderboard(planted_records(), [PAPER])
    html = board_table(boards[0])
    assert "MF (paper) †" in html
    assert "Δ +0.0200" in html  # ours 0.72 − paper 0.70


def test_significance_fields_are_displayed_when_present() -> None:
    board = build_leaderboard(planted_records())[0]
    row = next(r for r in board.rows if r.method == "pop")
    assert significance(row)[0] == "no test"
    row.mark = "▼"  # type: ignore[attr-defined]  # what benchbed.results.significance fills
    row.p_value = 0.003  # type: ignore[attr-defined]
    text, tip = significance(row)
    assert text == "▼" and "p = 0.003" in tip
    assert "▼" in board_table(board)


def test_main_column_prefers_the_papers_headline_metric() -> None:
    board = build_leaderboard(planted_records())[0]
    assert main_column(board) == "all/auc"


def test_checked_in_schema_matches_the_record_type() -> None:
    checked_in = schema.SCHEMA_PATH.read_text(encoding="utf-8")
    assert checked_in == schema.schema_text(), "record.schema.json is stale: python -m benchbed.report.schema"
    assert set(json.loads(checked_in)["properties"]) == {f.name for f in fields(RunRecord)}


def test_schema_drift_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    """A field without a description, or a changed type, makes the generated schema differ / fail."""
    monkeypatch.delitem(schema.DESCRIPTIONS, "seed")
    with pytest.raises(KeyError, match="seed"):
        schema.record_schema()


def test_committed_records_validate_against_the_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json.loads(schema.SCHEMA_PATH.read_text(encoding="utf-8")))
    files = sorted((ROOT / "results").rglob("*.json"))
    assert files
    for file in files:
        errors = [e.message for e in validator.iter_errors(json.loads(file.read_text(encoding="utf-8")))]
        assert errors == [], file
    bad = json.loads(files[0].read_text(encoding="utf-8")) | {"seed": "abc"}
    assert list(validator.iter_errors(bad))


def test_records_doc_describes_every_field() -> None:
    text = (ROOT / "docs" / "records.md").read_text(encoding="utf-8")
    missing = [f.name for f in fields(RunRecord) if f"`{f.name}`" not in text]
    assert missing == []


# ---------------------------------------------------------------------------------------------------------
# the command and its bad input
# ---------------------------------------------------------------------------------------------------------
def _write(records: list[RunRecord], directory: Path) -> None:
    for rec in records:
        path = directory / rec.dataset / rec.task / f"{rec.method}-{rec.config_hash}-s{rec.seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rec.to_json(), encoding="utf-8")


def test_report_command_writes_one_file(cli, tmp_path: Path) -> None:
    _write(planted_records(), cli.results)
    out = tmp_path / "out" / "report.html"
    code, _, err = cli("report", "-o", str(out), "--no-references")
    assert code == 0, err
    assert "1 boards, 3 figures, 5 records" in err
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temp file left


def test_report_bad_input_is_one_line_and_leaves_nothing(cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    target = tmp_path / "r.html"
    code, _, err = cli("report", str(empty), "-o", str(target))
    assert code != 0 and "no run records found" in err and len(err.strip().splitlines()) == 1
    assert not target.exists()

    _write(planted_records(), cli.results)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = cli("report", "-o", str(blocker / "r.html"))
    assert code != 0 and "is a file, not a directory" in err and "--output" in err
    assert len(err.strip().splitlines()) == 1

    suite = tmp_path / "suite.yaml"
    suite.write_text("name: s\nruns:\n  - {method: random, task: topk}\n")
    code, _, err = cli("report", "--suite", str(suite), "-o", str(target))
    assert code != 0 and "no record" in err and str(suite) in err
    assert not target.exists() and not list(tmp_path.glob(".r.html*"))
