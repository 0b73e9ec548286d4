"""CLI: ``benchbed plan``: what a run will cost before it runs (the options of ``run``; trains nothing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from benchbed.cli.options import ConfigFile, MethodParams, Seed, SplitParams, Task, TaskParams, Tuning
from benchbed.cli.run import config_from_options
from benchbed.errors import ConfigError


def calibrated_mfu(path: Path) -> float:
    """The measured training MFU of a ``benchmarks/gpu_check.py`` JSON."""
    try:
        raw = json.loads(path.read_text())
        value = float(raw["training"]["mfu"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"--calibrate {path}: expected a gpu_check JSON with training.mfu ({type(exc).__name__})"
        ) from exc
    if not 0 < value <= 1:
        raise ConfigError(f"--calibrate {path}: training.mfu={value} is not a fraction in (0, 1]")
    return value


def _gb(x: float) -> str:
    return f"{x / 1e9:.2f}"


def _hours(s: float) -> str:
    return f"{s / 3600:.2f} h" if s >= 360 else f"{s:.0f} s"


def render(plan: Any, console: Console) -> None:
    b = plan.backbone
    console.print(
        f"plan · {plan.config['method']} · {plan.config['dataset']} · {plan.config['task']} · backbone "
        f"{b['name']} ({b['parameters']:,} parameters, {b['layers']} blocks) · {plan.dtype} · "
        f"{plan.strategy} x {plan.processes} · MFU {plan.mfu:g} ({plan.mfu_source})"
    )
    table = Table(title="stages (memory per GPU, GB)")
    for col in ("stage", "rows", "tokens", "steps", "trainable", "PFLOP", "weights", "grad+opt", "act", "KV"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    table.add_column("GB", justify="right")
    for r in plan.stages:
        m = r["memory_bytes"]
        table.add_row(
            r["stage"] + (f" x{r['epochs'] or r['passes']}" if (r["epochs"] or r["passes"] or 1) > 1 else ""),
            f"{r['examples']:,}",
            f"{r['tokens']:,}",
            str(r["optimizer_steps"] or ""),
            f"{r['trainable_parameters']:,}",
            f"{r['flops'] / 1e15:,.2f}",
            _gb(m["weights"] + m["trainable"]),
            _gb(m["gradients"] + m["optimizer"]),
            _gb(m["activations"] + m["logits"]),
            _gb(m["kv_cache"]),
            _gb(m["total"]),
        )
    console.print(table)
    gpus = Table(title="wall time per GPU type")
    for col in ("GPU", "peak GB", "fits", "training", "evaluation", "total"):
        gpus.add_column(col, justify="left" if col == "GPU" else "right")
    kinds = {r["stage"]: r["kind"] for r in plan.stages}
    for g in plan.gpus:
        fit = "yes" if g["fits"] else "no"
        if not g["fits"] and g.get("fits_with"):
            fit += f" ({g['fits_with']['strategy']} x {g['fits_with']['processes']})"
        train = sum(v for k, v in g["seconds"].items() if kinds[k] == "train")
        gpus.add_row(
            f"{g['gpu']} ({g['bf16_tflops']:g} TFLOPS)",
            f"{g['peak_memory_gb']:.1f}",
            fit,
            _hours(train),
            _hours(g["total_seconds"] - train),
            _hours(g["total_seconds"]),
        )
    console.print(gpus)
    for note in plan.notes:
        console.print(f"[dim]{note}[/]")


def plan_command(
    method: Annotated[str | None, typer.Option("--method", "-m", help="Method name.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Catalog name [ml-100k].")] = None,
    task: Task = None,
    split: Annotated[str | None, typer.Option("--split", help="Split protocol.")] = None,
    seed: Seed = None,
    config: ConfigFile = None,
    param: MethodParams = None,
    split_param: SplitParams = None,
    task_param: TaskParams = None,
    backbone: Annotated[str | None, typer.Option("--backbone", help="Preset, alias, hub id or path.")] = None,
    cf: Annotated[str | None, typer.Option("--cf", help="collm: mf | lightgcn | sasrec | din.")] = None,
    tuning: Tuning = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="bfloat16 (default here) or float32.")] = None,
    launcher: Annotated[str, typer.Option("--launcher", help="none | accelerate.")] = "none",
    num_processes: Annotated[int, typer.Option("--num-processes", help="Processes (GPUs) [1].")] = 1,
    strategy: Annotated[str, typer.Option("--strategy", help="ddp | fsdp [ddp].")] = "ddp",
    gpu: Annotated[
        list[str] | None, typer.Option("--gpu", help="a100-80gb | h100 | h200 (repeatable) [all three].")
    ] = None,
    mfu: Annotated[float | None, typer.Option("--mfu", help="Model FLOPs utilisation [0.4].")] = None,
    calibrate: Annotated[
        Path | None, typer.Option("--calibrate", help="Take the MFU measured by benchmarks/gpu_check.py.")
    ] = None,
    output_format: Annotated[str, typer.Option("--format", help="text | json [text].")] = "text",
) -> None:
    """What a run will cost: examples, tokens, parameters, memory per GPU, FLOPs and wall time per stage."""
    from benchbed.plan.estimate import DEFAULT_MFU, make_plan

    if output_format not in ("text", "json"):
        raise ConfigError(f"--format {output_format!r}: expected text or json")
    if launcher not in ("none", "accelerate"):
        raise ConfigError(f"--launcher {launcher!r}: expected none or accelerate")
    overrides = {"method": method, "dataset": dataset, "task": task, "split": split, "seed": seed}
    overrides["dtype"] = dtype
    shorthands = {"backbone": backbone, "cf": cf, "tuning": tuning}
    cfg = config_from_options(config, overrides, param, shorthands, split_param, task_param)
    source = "default"
    rate = DEFAULT_MFU
    if calibrate is not None:
        rate, source = calibrated_mfu(calibrate), f"measured, {calibrate}"
    if mfu is not None:
        rate, source = mfu, "--mfu"
    plan = make_plan(
        cfg, strategy=strategy, processes=num_processes, gpu_names=gpu, mfu=rate, mfu_source=source
    )
    if output_format == "json":
        typer.echo(json.dumps(plan.as_dict(), indent=2, default=str))
    else:
        render(plan, Console())


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)
