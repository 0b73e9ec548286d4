"""CLI: ``benchbed sweep SUITE`` — every cell of a suite's runs and grid, each one record; ``--status``
shows done / failed / pending without running anything. Exit status: the number of failed cells."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from benchbed.orchestration.suite import Suite
    from benchbed.orchestration.sweep import SweepOptions, SweepReport

STATUS_STYLE = {"done": "green", "skipped": "green", "failed": "red", "pending": "yellow"}


def _resources(suite_resources: dict[str, Any], **given: Any) -> dict[str, Any]:
    """The suite's per-cell resources, overridden by the options given on the command line."""
    return {**suite_resources, **{k: v for k, v in given.items() if v is not None}}


def status_table(suite: Any) -> tuple[Table, dict[str, int]]:
    from benchbed.orchestration.sweep import cell_status, cells_of

    table = Table(title=f"sweep {suite.name} ({suite.path})")
    for col in ("#", "cell", "key", "status", "record / error"):
        table.add_column(col, overflow="fold")
    counts = {"done": 0, "failed": 0, "pending": 0}
    for cell in cells_of(suite):
        st = cell_status(cell)
        counts[st.status] += 1
        style = STATUS_STYLE[st.status]
        detail = st.error if st.status == "failed" else (str(st.path) if st.status == "done" else "")
        table.add_row(str(cell.index), cell.label, cell.key, f"[{style}]{st.status}[/]", detail or "")
    return table, counts


def sweep_command(
    suite_file: Annotated[
        Path, typer.Argument(help="Suite YAML (runs and/or grid), e.g. benchmarks/ci.yaml.")
    ],
    status: Annotated[
        bool, typer.Option("--status", help="Show done / failed / pending cells; run none.")
    ] = False,
    executor: Annotated[str, typer.Option("--executor", "-e", help="local | slurm | ray [local].")] = "local",
    workers: Annotated[
        int, typer.Option("--workers", "-w", help="local: worker processes; slurm: array tasks at once [1].")
    ] = 1,
    cpus: Annotated[int | None, typer.Option("--cpus", help="CPU cores per cell (torch threads).")] = None,
    gpus: Annotated[int | None, typer.Option("--gpus", help="GPUs per cell.")] = None,
    partition: Annotated[str | None, typer.Option("--partition", help="slurm: partition.")] = None,
    mem_gb: Annotated[int | None, typer.Option("--mem-gb", help="slurm: memory per cell (GB).")] = None,
    time_min: Annotated[int | None, typer.Option("--time-min", help="slurm: time limit per cell.")] = None,
    cluster: Annotated[
        str, typer.Option("--cluster", help="slurm: submitit cluster, slurm or local (this machine).")
    ] = "slurm",
    folder: Annotated[
        Path | None, typer.Option("--folder", help="slurm: submitit logs [results/sweeps].")
    ] = None,
    address: Annotated[
        str | None, typer.Option("--address", help="ray: a running cluster (or auto).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Re-run cells that have a record.")] = False,
    no_wait: Annotated[
        bool,
        typer.Option("--no-wait", help="A cell being run by another process fails at once [waits for it]."),
    ] = False,
) -> None:
    """Run a suite's cells (methods x datasets x seeds x parameter grids) on local workers, Slurm or Ray."""
    from benchbed.orchestration.suite import load_suite
    from benchbed.orchestration.sweep import SweepOptions

    console = Console()
    if no_wait:  # workers inherit it through the environment
        from benchbed.locks import set_no_wait

        set_no_wait(True)
    suite = load_suite(suite_file)
    if status:
        return _print_status(console, suite)
    given = {"cpus": cpus, "gpus": gpus, "partition": partition, "mem_gb": mem_gb, "time_min": time_min}
    options = SweepOptions(
        executor=executor,
        workers=workers,
        resources=_resources(suite.resources, **given),
        given=frozenset(k for k, v in given.items() if v is not None),
        address=address,
        folder=folder,
        cluster=cluster,
        force=force,
    )
    report = _run_with_progress(suite, options)
    console.print(_summary(report), style="red" if report.failed else None, highlight=False)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def _print_status(console: Console, suite: Suite) -> None:
    """``--status``: every cell's state and the counts; nothing runs."""
    table, counts = status_table(suite)
    console.print(table)
    console.print(", ".join(f"{n} {k}" for k, n in counts.items()))


def _summary(report: SweepReport) -> str:
    return (
        f"{len(report.results)} cells: {report.count('done')} ran, {report.count('skipped')} already done, "
        f"{report.failed} failed ({report.seconds:.1f} s)"
    )


def _run_with_progress(suite: Suite, options: SweepOptions) -> SweepReport:
    """Run the sweep with a progress bar on stderr (a failed cell printed as it ends); its report."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from benchbed.orchestration.sweep import prepare, run_sweep
    from benchbed.settings import get_settings

    prepared = prepare(suite, options)  # one-line errors before any cell starts
    quiet = get_settings().verbosity < 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), disable=quiet) as progress:
        job = progress.add_task(f"sweep {suite.name} ({options.executor})", total=len(prepared[0]))

        def done(result: Any) -> None:
            progress.advance(job)
            if result.status == "failed":
                progress.console.print(f"[red]failed[/] {result.label}: {result.error}", highlight=False)

        return run_sweep(suite, options, on_result=done, prepared=prepared)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("sweep")(sweep_command)
