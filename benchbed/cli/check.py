"""CLI: ``benchbed check --suite FILE``: run a small suite, compare with a baseline, exit 1 on regression."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from benchbed.errors import BenchbedError

if TYPE_CHECKING:
    from benchbed.orchestration.suite import Comparison, Suite


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def check_command(
    suite_file: Annotated[Path, typer.Option("--suite", help="Suite YAML (e.g. benchmarks/ci.yaml).")],
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="Baseline JSON [the suite's 'baseline' key].")
    ] = None,
    update_baseline: Annotated[
        bool,
        typer.Option("--update-baseline", help="Run the suite and rewrite the baseline with the results."),
    ] = False,
    reuse: Annotated[
        bool,
        typer.Option("--reuse", help="Use existing records instead of re-running (faster, less strict)."),
    ] = False,
    show_all: Annotated[
        bool, typer.Option("--all", help="List passing metrics too, not only changes.")
    ] = False,
) -> None:
    """Run a suite and compare every metric with the stored baseline (direction-aware, with tolerance)."""
    from benchbed.orchestration.suite import (
        baseline_payload,
        compare,
        load_baseline,
        load_suite,
        write_baseline,
    )

    suite = load_suite(suite_file)
    baseline_file = baseline or suite.baseline
    stored = None if update_baseline else load_baseline(baseline_file, suite)  # fail fast, before running
    console = Console()
    current, environments = _run_suite(suite, reuse)
    if update_baseline:
        failed = {k: v for k, v in current.items() if isinstance(v, str)}
        if failed:
            first = next(iter(failed.values()))
            raise BenchbedError(
                f"{suite.path}: baseline not written, {len(failed)} run(s) failed, first: {first}"
            )
        write_baseline(baseline_file, baseline_payload(suite, current))
        console.print(f"baseline written: {baseline_file} ({len(current)} runs)")
        return
    assert stored is not None
    rows = compare(suite, stored, current)
    table = _comparison_table(rows, f"benchbed check · {suite.name} · baseline {baseline_file}", show_all)
    bad = [r for r in rows if r.regressed]
    if table.row_count:
        console.print(table)
    summary = f"{len(rows)} metric(s) compared over {len(suite.runs)} run(s): "
    same, better = sum(r.status == "pass" for r in rows), sum(r.status == "better" for r in rows)
    summary += f"{same} unchanged, {better} better, {len(bad)} regressed"
    console.print(("[bold red]FAIL[/] " if bad else "[bold green]PASS[/] ") + summary)
    _say_environment_difference(console, baseline_file, environments)
    if bad:
        raise typer.Exit(1)


def _run_suite(suite: Suite, reuse: bool) -> tuple[dict[str, Any], list[dict[str, Any] | None]]:
    """Each run's metrics (or ``"run failed: ..."``) by run key, and the environments they ran in."""
    from benchbed.orchestration.runner import execute
    from benchbed.orchestration.suite import run_label

    err = Console(stderr=True)
    current: dict[str, Any] = {}
    environments: list[dict[str, Any] | None] = []
    for i, config in enumerate(suite.runs, start=1):
        err.print(f"\\[{i}/{len(suite.runs)}] {run_label(config)}", highlight=False)
        try:
            record = execute(config, force=not reuse, progress=False).record
            current[suite.run_key(config)] = record.metrics
            environments.append(record.environment)
        except BenchbedError as exc:
            current[suite.run_key(config)] = f"run failed: {exc}"
    return current, environments


STYLES = {
    "pass": "green",
    "better": "cyan",
    "regression": "bold red",
    "missing": "bold red",
    "failed": "bold red",
}


def _comparison_table(rows: list[Comparison], title: str, show_all: bool) -> Table:
    """Baseline vs current per metric: the changes only, or every metric with ``--all``."""
    table = Table(title=title)
    for col in ("run", "subset", "metric", "baseline", "current", "delta", "tol", "status"):
        table.add_column(col, justify="right" if col in ("baseline", "current", "delta", "tol") else "left")
    for row in rows:
        if row.status == "pass" and not show_all:
            continue
        delta = "" if row.delta is None else f"{row.delta:+.4f}"
        status = f"[{STYLES[row.status]}]{row.status}[/]" + (f" {row.note}" if row.note else "")
        table.add_row(
            row.run,
            row.subset,
            row.metric,
            _fmt(row.baseline),
            _fmt(row.current),
            delta,
            f"{row.tolerance:g}",
            status,
        )
    return table


def _say_environment_difference(
    console: Console, baseline_file: Path, environments: list[dict[str, Any] | None]
) -> None:
    """A note when the baseline's numbers came from other library versions / hardware than these runs."""
    from benchbed.orchestration.suite import baseline_environment
    from benchbed.results.environment import difference_note

    note = difference_note([baseline_environment(baseline_file), *environments])
    if note:
        console.print(f"[yellow]note[/] {note.replace('records compared here', 'baseline and runs')}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("check")(check_command)
