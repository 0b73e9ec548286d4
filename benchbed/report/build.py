"""Records -> the report: boards from :mod:`benchbed.results.leaderboard`, tables, figures, one HTML file.

The boards are the leaderboard's own (same grouping, same aggregation, same paper rows), with every column
and the cost columns; the figures are drawn from the same :class:`Board` objects, so a figure cannot show a
number the table does not.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchbed.errors import BenchbedError
from benchbed.report import figures
from benchbed.report.html import BoardSection, Provenance, page
from benchbed.report.tables import board_table
from benchbed.results.leaderboard import COST_SUBSET, PRIMARY_COLUMNS, Board, build_leaderboard
from benchbed.results.record import RunRecord
from benchbed.results.reference import ReferenceRow
from benchbed.results.vs_paper import paper_pairings

Defaults = Callable[[str, str, str], tuple[dict[str, Any], dict[str, Any]]]
MAIN_FALLBACK = ("all/sc", "all/recall_min@20", "all/recall@20", "all/ndcg@20")


@dataclass
class Report:
    html: str
    boards: int
    figures: int
    records: int


def main_column(board: Board) -> str | None:
    """The column a board's figures are about: AUC, NDCG@10, HR@10, SC, Recall@20, else the first."""
    for column in (*PRIMARY_COLUMNS, *MAIN_FALLBACK):
        if column in board.columns:
            return column
    metric_columns = [c for c in board.columns if not c.startswith(f"{COST_SUBSET}/")]
    return metric_columns[0] if metric_columns else None


def anchor(index: int, board: Board) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", f"{board.dataset}-{board.task}-{board.protocol}".lower()).strip("-")
    return f"board-{index}-{slug}"


def paired_cells(boards: Sequence[Board]) -> list[tuple[float, float, str]]:
    """(paper, ours, group) for every cell where one of our rows pairs with a paper row (figure d)."""
    points = []
    for board in boards:
        for pairing in paper_pairings(board):
            ours, paper = pairing.ours, pairing.paper
            if ours is None or paper is None or pairing.backbone_differs:
                continue  # a run on another model than the paper's is no point of "ours vs the paper"
            for column, theirs in paper.cells.items():
                mine = ours.cells.get(column)
                if mine is not None and mine.mean is not None and theirs.mean is not None:
                    points.append((theirs.mean, mine.mean, f"{board.dataset} · {board.task}"))
    return points


def environment_summary(records: Iterable[RunRecord]) -> list[tuple[str, str]]:
    """Counted distinct values of what the records ran on (device, torch, python, CPUs, GPU)."""
    counters: dict[str, Counter[str]] = {k: Counter() for k in ("device", "torch", "python", "cpus", "gpu")}
    for rec in records:
        env = rec.environment or {}
        counters["device"][str(rec.cost.get("device") or rec.config.get("device") or "?")] += 1
        counters["torch"][str(env.get("torch") or "not recorded")] += 1
        counters["python"][str(env.get("python") or "not recorded")] += 1
        counters["cpus"][str((env.get("threads") or {}).get("cpus") or "not recorded")] += 1
        if env.get("gpu"):
            counters["gpu"][str(env["gpu"])] += 1
    names = {"device": "devices", "torch": "torch", "python": "python", "cpus": "CPU cores", "gpu": "GPUs"}
    out = []
    for key, counter in counters.items():
        if counter:
            out.append((names[key], ", ".join(f"{v} ({n})" for v, n in counter.most_common())))
    return out


def board_figures(board: Board, column: str) -> list[figures.FigureSpec]:
    key = column.rpartition("/")[2]
    made = [
        # the paper's marker only beside a run of the paper's configuration on the paper's model
        figures.main_metric(
            board, column, [(x.ours, x.paper) for x in paper_pairings(board) if not x.backbone_differs]
        ),
        figures.subset_groups(board, key),
        figures.quality_vs_cost(board, column),
        figures.item2text_subtasks(board) if board.task == "item2text" else None,
    ]
    return [f for f in made if f is not None]


def build_report(
    records: Sequence[RunRecord],
    references: Iterable[ReferenceRow] = (),
    *,
    sources: Sequence[str] = (),
    skipped: int = 0,
    defaults: Defaults | None = None,
    digits: int = 4,
    created: str | None = None,
    code: dict[str, Any] | None = None,
    annotate: Callable[[list[Board]], None] | None = None,
) -> Report:
    """The report of ``records`` (successful ones make the boards); raises when nothing is left to show.

    ``annotate(boards)`` adds significance marks before the tables are drawn (the CLI passes
    :func:`benchbed.results.significance.annotate_boards` over the records' predictions)."""
    import benchbed
    from benchbed.results.environment import code_identity

    ok = [r for r in records if r.status == "ok"]
    if not ok:
        raise BenchbedError(
            f"no successful run records in {', '.join(sources) or 'the input'}; nothing to report"
        )
    boards = build_leaderboard(ok, references, defaults=defaults)
    if annotate is not None:
        annotate(boards)
    sections = []
    for i, board in enumerate(boards, start=1):
        board.columns = board.columns + [c for c in board.cost_columns if c not in board.columns]
        column = main_column(board)
        name = anchor(i, board)
        sections.append(
            BoardSection(
                anchor=name,
                title=board.title,
                main_column=column or "–",
                rows=len(board.rows),
                table=board_table(board, digits, name),
                figures=board_figures(board, column) if column else [],
            )
        )
    overall = [f for f in (figures.ours_vs_paper(paired_cells(boards)),) if f is not None]
    code = code if code is not None else code_identity()
    provenance = Provenance(
        version=benchbed.__version__,
        git_sha=code.get("git_sha"),
        dirty=code.get("dirty"),
        created=created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        records=len(records),
        skipped=skipped,
        environment=environment_summary(ok),
        sources=list(sources),
    )
    text = page(provenance, sections, overall)
    return Report(text, len(sections), sum(len(s.figures) for s in sections) + len(overall), len(records))


def load_for_report(
    paths: Sequence[Path], suite_files: Sequence[Path] = ()
) -> tuple[list[tuple[Path, RunRecord]], int, list[str]]:
    """(file, record) under ``paths`` (only those the suites' runs produced, when suites are given), the
    number of unreadable files, and a description of the sources. One-line errors for an empty directory or
    a suite that matches no record."""
    from benchbed.orchestration.suite import load_suite
    from benchbed.orchestration.suite_records import suite_records
    from benchbed.results.store import load_records

    loaded = load_records(paths)
    where = ", ".join(str(p) for p in paths)
    pairs = list(loaded.records)
    if not pairs:
        raise BenchbedError(f"{where}: no run records found (run `benchbed run ...` first)")
    sources = [str(p) for p in paths]
    if suite_files:
        runs = [config for path in suite_files for config in load_suite(path).runs]
        kept = {id(r) for r in suite_records(runs, [r for _, r in pairs])}
        pairs = [(f, r) for f, r in pairs if id(r) in kept]
        names = ", ".join(str(p) for p in suite_files)
        if not pairs:
            raise BenchbedError(f"{names}: no record in {where} was produced by this suite's runs")
        sources.append(f"suite {names}")
    return pairs, len(loaded.skipped), sources
