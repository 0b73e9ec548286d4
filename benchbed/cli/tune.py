"""CLI: ``benchbed tune`` — a grid search on the validation set, best config written under results/tune/."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from benchbed.cli.options import MethodParams, SplitParams, TaskParams
from benchbed.config import parse_assignments

if TYPE_CHECKING:
    from benchbed.orchestration.tune import TuneResult


def tune_command(
    method: Annotated[str, typer.Option("--method", "-m", help="Method to tune (e.g. mf, lightgcn).")],
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid", "-g", help="KEY=V1,V2,... (repeatable; later KEY=... words are grid axes too)."
        ),
    ] = None,
    more_grid: Annotated[
        list[str] | None, typer.Argument(help="More grid axes: dim=64,256 ...", show_default=False)
    ] = None,
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Catalog name or data dir.")] = "ml-100k",
    task: Annotated[str, typer.Option("--task", "-t", help="ctr | topk.")] = "ctr",
    split: Annotated[str | None, typer.Option("--split", help="Split protocol [dataset default].")] = None,
    seed: Annotated[int, typer.Option("--seed", "-s")] = 0,
    param: MethodParams = None,
    split_param: SplitParams = None,
    task_param: TaskParams = None,
    device: Annotated[str | None, typer.Option("--device", help="cpu, cuda [auto].")] = None,
) -> None:
    """Train every grid point (early stopping on validation), score it on validation, keep the best."""
    from benchbed.orchestration.tune import parse_grid, tune
    from benchbed.settings import get_settings

    console = Console()
    quiet = get_settings().verbosity < 0
    axes = parse_grid(list(grid or []) + list(more_grid or []))
    result = tune(
        method,
        dataset,
        axes,
        task=task,
        split=split,
        split_params=parse_assignments(list(split_param or []), "--split-param"),
        task_params=parse_assignments(list(task_param or []), "--task-param"),
        fixed=parse_assignments(list(param or []), "--param"),
        seed=seed,
        device=device,
        log=None if quiet else lambda m: console.print(m, highlight=False),
    )
    console.print(_trials_table(f"tune {method} · {dataset} · {task}", axes, result))
    if result.best:
        args = " ".join(f"--param {k}={v}" for k, v in result.best["method_params"].items())
        best_value = f"{result.metric} {result.best['value']:.4f}"
        console.print(f"best: {result.best['params']} ({best_value}); written to {result.path}")
        where = f" --split {split}" if split else ""
        console.print(
            f"run it: benchbed run --method {method} --dataset {dataset} --task {task}{where} {args}",
            highlight=False,
        )


def _trials_table(title: str, axes: dict[str, Any], result: TuneResult) -> Table:
    """One row per grid point: its values, the validation metric (best marked *), epochs and fit time."""
    table = Table(title=f"{title} · {result.split_protocol} · valid {result.metric}")
    for key in axes:
        table.add_column(key)
    table.add_column(result.metric, justify="right")
    table.add_column("epochs", justify="right")
    table.add_column("fit s", justify="right")
    best = result.best["params"] if result.best else None
    for trial in result.trials:
        mark = " *" if trial["params"] == best else ""
        cells = [str(trial["params"][k]) for k in axes]
        table.add_row(
            *cells, f"{trial['value']:.4f}{mark}", str(trial["epochs_run"] or ""), f"{trial['fit_s']:.1f}"
        )
    return table


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("tune")(tune_command)
