"""CLI: ``benchbed leaderboard``: records (and paper numbers) -> tables in the terminal or a file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from benchbed.cli.options import RecordPaths, ReferencesFile
from benchbed.errors import ConfigError
from benchbed.results.leaderboard import Board

if TYPE_CHECKING:
    from benchbed.results.record import RunRecord
    from benchbed.results.reference import ReferenceRow
    from benchbed.results.store import LoadedRecords

MAX_TERMINAL_COLUMNS = 12
MAX_DIGITS = 12  # decimals of --digits: beyond float32/64 precision nothing more is shown
SECONDARY = ("mrr", "precision")  # dropped first when a terminal table is too wide
SUFFIX_FORMATS = {".md": "markdown", ".markdown": "markdown", ".csv": "csv", ".tex": "latex", ".txt": "rich"}
SUFFIX_FORMATS |= {".json": "json", ".html": "html", ".htm": "html"}


def compact_columns(boards: list[Board], metrics: list[str] | None) -> str | None:
    """Terminal only: when a board is too wide and no --metrics was given, keep the @10 columns (or the
    cut-off closest to 10). Returns a note saying so, or None."""
    if metrics is not None:
        return None
    trimmed = False
    for board in boards:
        if len(board.columns) <= MAX_TERMINAL_COLUMNS:
            continue
        cuts = sorted({int(c.rsplit("@", 1)[1]) for c in board.columns if "@" in c.rsplit("/", 1)[-1]})
        if not cuts:  # CTR: AUC per subset (all/warm/cold/seen/unseen) carries the story
            aucs = [c for c in board.columns if c.rsplit("/", 1)[-1] == "auc"]
            if aucs:
                board.columns, trimmed = aucs, True
            continue
        k = min(cuts, key=lambda c: (abs(c - 10), c))
        board.columns = [c for c in board.columns if "@" not in c or c.endswith(f"@{k}")]
        if len(board.columns) > MAX_TERMINAL_COLUMNS:  # still too wide: HR, NDCG and Recall carry the story
            board.columns = [c for c in board.columns if c.rsplit("/", 1)[-1].split("@")[0] not in SECONDARY]
        trimmed = True
    return (
        "showing a few columns (@10, or AUC for CTR); --metrics or --format markdown/csv for all"
        if trimmed
        else None
    )


def _split_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


DatasetOption = Annotated[str | None, typer.Option("--dataset", "-d", help="Only this dataset.")]
TaskOption = Annotated[str | None, typer.Option("--task", "-t", help="Only this task.")]
SortOption = Annotated[
    str | None, typer.Option("--sort", help="Column to sort by: auc, warm/auc, ndcg@10, method, seeds.")
]
FmtOption = Annotated[
    str | None,
    typer.Option(
        "--format", "-f", help="rich | markdown | csv | latex | json | html [rich, or from --output]."
    ),
]
OutputOption = Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file.")]
MetricsOption = Annotated[
    str | None,
    typer.Option(
        "--metrics",
        help="Comma list of metric keys; cost keys: train_s, eval_s, peak_memory_mb, trainable_params.",
    ),
]
SubsetsOption = Annotated[str | None, typer.Option("--subsets", help="Comma list of subsets to show.")]
NoReferencesOption = Annotated[bool, typer.Option("--no-references", help="Hide paper-reported rows.")]
AllReferencesOption = Annotated[
    bool, typer.Option("--all-references", help="Also show paper tables we have no runs for.")
]
DigitsOption = Annotated[int, typer.Option("--digits", help="Decimals.")]
SuiteFileOption = Annotated[
    Path | None,
    typer.Option("--suite", help="Only the runs of this suite YAML (e.g. benchmarks/openp5.yaml)."),
]
VsPaperOption = Annotated[
    bool,
    typer.Option(
        "--vs-paper", help="Per cell: ours, the paper's figure and ours − paper (rows paired by method)."
    ),
]
AlphaOption = Annotated[
    float, typer.Option("--alpha", help="Significance level of the marks vs the best row [0.05].")
]
CorrectionOption = Annotated[
    str, typer.Option("--correction", help="Multiple comparisons: holm | bh | none [holm].")
]
NoTestsOption = Annotated[
    bool, typer.Option("--no-tests", help="No significance marks (skips reading predictions).")
]


def leaderboard_command(
    paths: RecordPaths = None,
    dataset: DatasetOption = None,
    task: TaskOption = None,
    sort: SortOption = None,
    fmt: FmtOption = None,
    output: OutputOption = None,
    metrics: MetricsOption = None,
    subsets: SubsetsOption = None,
    references: ReferencesFile = None,
    no_references: NoReferencesOption = False,
    all_references: AllReferencesOption = False,
    digits: DigitsOption = 4,
    suite_file: SuiteFileOption = None,
    vs_paper: VsPaperOption = False,
    alpha: AlphaOption = 0.05,
    correction: CorrectionOption = "holm",
    no_tests: NoTestsOption = False,
) -> None:
    """Tables of results: one per (dataset, task, protocol), mean ± s.e. over seeds, paper rows marked †."""
    fmt = _check_options(vs_paper, no_references, alpha, digits, correction, fmt, output)
    err = Console(stderr=True)
    loaded, refs = _load(paths, suite_file, references, no_references)
    records = [r for _, r in loaded.records]
    boards = _boards(records, refs, dataset, task, sort, all_references, metrics, subsets)
    if not no_tests and not vs_paper:  # marks vs each board's best row, from the saved predictions
        from benchbed.results.significance import annotate_boards

        annotate_boards(boards, loaded.records, alpha=alpha, correction=correction, sort=sort)
    _say_skipped(err, loaded)
    _say_environment_notes(err, records, dataset, task)
    if not boards:
        err.print("no results to show" + (" (filters: " + f"{dataset or '*'} / {task or '*'})"))
        return
    note = compact_columns(boards, _split_list(metrics)) if fmt == "rich" and output is None else None
    if vs_paper:
        from benchbed.results.vs_paper import vs_paper_boards

        boards = vs_paper_boards(boards)
        if not boards:
            err.print("no paper rows on these boards to compare with (see --all-references)")
            return
    _emit(err, boards, fmt, output, digits, note)


def _check_options(
    vs_paper: bool,
    no_references: bool,
    alpha: float,
    digits: int,
    correction: str,
    fmt: str | None,
    output: Path | None,
) -> str:
    """Usage errors before any record is read; the output format (given, from --output's suffix, or rich)."""
    from benchbed.results.render import FORMATS

    if vs_paper and no_references:
        raise ConfigError("--vs-paper compares with the paper rows; it cannot be used with --no-references")
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha: expected a level in (0, 1), got {alpha}")
    if not 0 <= digits <= MAX_DIGITS:  # a negative count made the number formats raise (a traceback)
        raise ConfigError(f"--digits: expected decimals from 0 to {MAX_DIGITS}, got {digits}")
    if correction not in ("holm", "bh", "none"):
        raise ConfigError(f"--correction: expected holm, bh or none, got {correction!r}")
    fmt = fmt or (SUFFIX_FORMATS.get(output.suffix.lower(), "rich") if output else "rich")
    if fmt not in FORMATS:
        raise ConfigError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    return fmt


def _load(
    paths: list[Path] | None, suite_file: Path | None, references: Path | None, no_references: bool
) -> tuple[LoadedRecords, list[ReferenceRow]]:
    """The records to show (of the suite, when given; stale ones moved to the skipped) and the paper rows."""
    from benchbed.orchestration.staleness import split_stale
    from benchbed.results.reference import load_references
    from benchbed.results.store import load_records
    from benchbed.settings import get_settings

    default_dir = Path(get_settings().results_dir)
    loaded = load_records(paths or ([default_dir] if default_dir.exists() else []))
    refs = [] if no_references else load_references(references)
    if suite_file is not None:
        from benchbed.orchestration.suite import load_suite
        from benchbed.orchestration.suite_records import suite_records

        # by what the runs state, not by config hash: a suite spelling out a default still finds its records
        kept = {id(r) for r in suite_records(load_suite(suite_file).runs, [r for _, r in loaded.records])}
        loaded.records = [(p, r) for p, r in loaded.records if id(r) in kept]
    # records of data that changed since they ran: left out (as `run` ignores them), each with a note
    loaded.records, stale = split_stale(loaded.records)
    loaded.skipped.extend((path, f"stale: {why} (benchbed run re-runs it)") for path, why in stale)
    return loaded, refs


def _boards(
    records: list[RunRecord],
    refs: list[ReferenceRow],
    dataset: str | None,
    task: str | None,
    sort: str | None,
    all_references: bool,
    metrics: str | None,
    subsets: str | None,
) -> list[Board]:
    """The boards with the columns --metrics / --subsets keep (an unknown metric is a usage error)."""
    from benchbed.cli.board_defaults import registry_defaults
    from benchbed.results.leaderboard import build_leaderboard, select_columns

    boards = build_leaderboard(
        records,
        refs,
        dataset=dataset,
        task=task,
        sort=sort,
        include_reference_only=all_references,
        defaults=registry_defaults,
    )
    metric_list, subset_list = _split_list(metrics), _split_list(subsets)
    if metric_list and boards:
        from benchbed.results.leaderboard import known_metric_keys

        known = known_metric_keys(boards)
        unknown = [m for m in metric_list if m not in known]
        if unknown:
            raise ConfigError(f"--metrics: unknown {', '.join(unknown)}; known: {', '.join(known)}")
    select_columns(boards, metric_list, subset_list)
    return boards


def _say_skipped(err: Console, loaded: LoadedRecords) -> None:
    for path, why in loaded.skipped:
        err.print(f"[yellow]skipped[/] {path}: {why}", highlight=False, soft_wrap=True)
    for path, rec in loaded.records:
        if rec.status != "ok":
            err.print(f"[yellow]skipped[/] {path}: failed run: {rec.error}", highlight=False, soft_wrap=True)


def _say_environment_notes(
    err: Console, records: list[RunRecord], dataset: str | None, task: str | None
) -> None:
    """Numbers side by side from other library versions / hardware / commits: one note each."""
    from benchbed.results.environment import board_notes

    shown = [r for r in records if (not dataset or r.dataset == dataset) and (not task or r.task == task)]
    for env_note in board_notes(shown):
        err.print(f"[yellow]note[/] {env_note}", highlight=False, soft_wrap=True)


def _emit(
    err: Console, boards: list[Board], fmt: str, output: Path | None, digits: int, note: str | None
) -> None:
    """The boards in ``fmt``, to the terminal or (atomically) to ``output``."""
    from benchbed.atomic import write_text_atomic
    from benchbed.results.render import render_text, rich_tables

    if fmt == "rich":
        console = Console(record=output is not None, width=None if output is None else 400)
        for table in rich_tables(boards, digits, max_width=console.width if output is None else None):
            console.print(table)
        if note:
            err.print(f"[dim]{note}[/]")
        if output is not None:
            write_text_atomic(output, console.export_text())
            err.print(f"written {output}")
        return
    if fmt == "html":  # the report's table code (benchbed.report sits above results/)
        from benchbed.report.tables import leaderboard_html

        text = leaderboard_html(boards, digits)
    else:
        text = render_text(boards, fmt, digits)
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_text_atomic(output, text)
        err.print(f"written {output}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("leaderboard")(leaderboard_command)
