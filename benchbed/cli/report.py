"""CLI: ``benchbed report``: every board, its figures and what produced them, one standalone HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from benchbed.cli.options import RecordPaths, ReferencesFile
from benchbed.errors import BenchbedError, ConfigError


def _check_output(output: Path) -> None:
    """Fail before any work when the report cannot be written there (one line, nothing left behind)."""
    if output.exists() and output.is_dir():
        raise ConfigError(
            f"--output {output}: is a directory; give a file name such as {output / 'report.html'}"
        )
    from benchbed.results.store import check_writable

    try:
        check_writable(output.parent if str(output.parent) else Path("."), what="--output directory")
    except BenchbedError as exc:
        raise BenchbedError(str(exc).replace("pass another --results-dir", "pass another --output")) from exc


def report_command(
    paths: RecordPaths = None,
    suite_files: Annotated[
        list[Path] | None,
        typer.Option("--suite", help="Only the records of this suite YAML's runs (repeatable)."),
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")] = Path(
        "report.html"
    ),
    references: ReferencesFile = None,
    no_references: Annotated[bool, typer.Option("--no-references", help="Leave out paper rows.")] = False,
    digits: Annotated[int, typer.Option("--digits", min=0, max=12, help="Decimals in the tables.")] = 4,
    marks: Annotated[
        bool,
        typer.Option(
            "--marks/--no-marks",
            help="Significance marks against each board's best row (paired tests on the saved predictions).",
        ),
    ] = True,
) -> None:
    """Write one HTML file (no network needed to open it): a header with what produced it, an index, every
    board in full with 95% CIs, paper rows and cost columns, and figures per board."""
    from benchbed.atomic import write_text_atomic
    from benchbed.cli.board_defaults import registry_defaults
    from benchbed.report.build import build_report, load_for_report
    from benchbed.results.reference import load_references
    from benchbed.settings import get_settings

    _check_output(output)
    default_dir = Path(get_settings().results_dir)
    pairs, skipped, sources = load_for_report(paths or [default_dir], suite_files or [])
    refs = [] if no_references else load_references(references)
    annotate = None
    if marks:
        from benchbed.results.significance import annotate_boards

        annotate = lambda boards: annotate_boards(boards, pairs)  # noqa: E731
    report = build_report(
        [r for _, r in pairs],
        refs,
        sources=sources,
        skipped=skipped,
        defaults=registry_defaults,
        digits=digits,
        annotate=annotate,
    )
    write_text_atomic(output, report.html)
    size_kb = len(report.html.encode()) / 1024
    Console(stderr=True).print(
        f"written {output}: {report.boards} boards, {report.figures} figures, {report.records} records, "
        f"{size_kb:.0f} KiB",
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("report")(report_command)
