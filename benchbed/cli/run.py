"""CLI: ``benchbed run`` (one config -> one record) and ``benchbed rescore`` (metrics from predictions)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from benchbed.cli.options import ConfigFile, MethodParams, Seed, SplitParams, Task, TaskParams, Tuning
from benchbed.config import RunConfig, load_yaml, parse_assignments
from benchbed.errors import BenchbedError, ConfigError
from benchbed.results.record import RunRecord


def build_config(
    config_file: Path | None,
    overrides: dict[str, Any],
    method_params: dict[str, Any],
    split_params: dict[str, Any],
    task_params: dict[str, Any],
) -> RunConfig:
    """Config file (if any) < command-line options; ``--param``-style maps update the file's maps."""
    raw: dict[str, Any] = {}
    if config_file is not None:
        loaded = load_yaml(config_file)
        if not isinstance(loaded, dict):
            raise ConfigError(f"{config_file}: expected a mapping of RunConfig keys")
        raw = dict(loaded)
    source = str(config_file) if config_file else "command line"
    raw.update({k: v for k, v in overrides.items() if v is not None})
    for key, extra in (
        ("method_params", method_params),
        ("split_params", split_params),
        ("task_params", task_params),
    ):
        if extra:
            base = raw.get(key) or {}
            if not isinstance(base, dict):
                raise ConfigError(f"{source}: {key!r} must be a mapping")
            raw[key] = {**base, **extra}
    if "method" not in raw:
        raise ConfigError("--method is required (or a --config file with a 'method' key)")
    return RunConfig.from_dict(raw, source=source)


def config_from_options(
    config_file: Path | None,
    overrides: dict[str, Any],
    param: list[str] | None,
    shorthands: dict[str, str | None],
    split_param: list[str] | None,
    task_param: list[str] | None,
) -> RunConfig:
    """The run config that ``run``'s options describe (``plan`` takes the same ones): ``--param`` maps plus
    the LLM shorthands (``--backbone``, ``--cf``, ``--tuning``, the same as ``--param backbone=...``)."""
    method_params = parse_assignments(param or [], "--param")
    method_params.update({k: v for k, v in shorthands.items() if v})
    return build_config(
        config_file,
        overrides,
        method_params,
        parse_assignments(split_param or [], "--split-param"),
        parse_assignments(task_param or [], "--task-param"),
    )


MAX_KEYS = 8


def metrics_table(record: RunRecord, title: str | None = None) -> Table:
    """One row per subset, one column per metric, plus the row/user counts behind each number."""
    from benchbed.results.leaderboard import metric_sort_key

    keys = sorted({k for values in record.metrics.values() for k in values}, key=metric_sort_key)
    if len(keys) > MAX_KEYS:  # many cut-offs: the terminal shows the one nearest 10 (the record has all)
        cuts = sorted({int(k.split("@")[1]) for k in keys if "@" in k})
        near = min(cuts, key=lambda c: (abs(c - 10), c)) if cuts else None
        keys = [k for k in keys if "@" not in k or k.endswith(f"@{near}")]
    proto = f"{record.split_protocol} (split {record.split_hash})"
    table = Table(
        title=title or f"{record.method} · {record.dataset} · {record.task} · {proto} · seed {record.seed}"
    )
    table.add_column("subset")
    for key in keys:
        table.add_column(key, justify="right")
    table.add_column("rows", justify="right")
    table.add_column("users", justify="right")
    for subset, values in record.metrics.items():
        counts = record.counts.get(subset, {})
        cells = [("" if values.get(k) is None else f"{values[k]:.4f}") for k in keys]
        table.add_row(subset, *cells, str(counts.get("rows", "")), str(counts.get("users", "")))
    return table


def _print_board(console: Console, record: RunRecord) -> None:
    """The leaderboard of the record's (dataset, task, protocol), compact enough for a terminal."""
    from benchbed.cli.board_defaults import registry_defaults
    from benchbed.cli.leaderboard import compact_columns
    from benchbed.config import stable_hash
    from benchbed.results.leaderboard import build_leaderboard
    from benchbed.results.reference import load_references
    from benchbed.results.render import rich_tables
    from benchbed.results.store import load_records
    from benchbed.settings import get_settings

    loaded = load_records([get_settings().results_dir])
    boards = build_leaderboard(
        [r for _, r in loaded.records],
        load_references(),
        dataset=record.dataset,
        task=record.task,
        defaults=registry_defaults,
    )
    mine = [
        b
        for b in boards
        if b.protocol == record.split_protocol
        and stable_hash(b.split_params) == stable_hash(record.split_params)
        and stable_hash(b.task_params) == stable_hash(record.task_params)
    ]
    note = compact_columns(mine, None)
    for table in rich_tables(mine, max_width=console.width):
        console.print(table)
    if note:
        console.print(f"[dim]{note}[/]")


MethodOption = Annotated[str | None, typer.Option("--method", "-m", help="Method name (benchbed methods).")]
DatasetOption = Annotated[
    str | None, typer.Option("--dataset", "-d", help="Catalog name or data dir [ml-100k].")
]
SplitOption = Annotated[str | None, typer.Option("--split", help="Split protocol [the dataset's default].")]
SeedsOption = Annotated[
    str | None,
    typer.Option("--seeds", help="Comma list of seeds (0,1,2): one run and record per seed."),
]
BackboneOption = Annotated[
    str | None,
    typer.Option("--backbone", help="LLM methods: tiny, minilm, qwen2-1.5b, ..., a hub id or a path."),
]
CfOption = Annotated[str | None, typer.Option("--cf", help="collm: mf | lightgcn | sasrec | din [mf].")]
ForceOption = Annotated[bool, typer.Option("--force", help="Re-run even if a record exists.")]
NoWaitOption = Annotated[
    bool, typer.Option("--no-wait", help="Exit if this run is in progress elsewhere [wait for it].")
]
DeviceOption = Annotated[str | None, typer.Option("--device", help="cpu, cuda, cuda:1 [auto].")]
DtypeOption = Annotated[str | None, typer.Option("--dtype", help="float32, bfloat16 [auto].")]
NoPredictionsOption = Annotated[
    bool, typer.Option("--no-predictions", help="Do not save per-row predictions.")
]
LauncherOption = Annotated[
    str, typer.Option("--launcher", help="none | accelerate (data-parallel over --num-processes).")
]
NumProcessesOption = Annotated[
    int, typer.Option("--num-processes", help="Processes (GPUs) for --launcher accelerate [1].")
]
StrategyOption = Annotated[
    str,
    typer.Option(
        "--strategy",
        help="ddp (whole backbone per process) or fsdp (blocks sharded) [ddp].",
    ),
]


def run_command(
    method: MethodOption = None,
    dataset: DatasetOption = None,
    task: Task = None,
    split: SplitOption = None,
    seed: Seed = None,
    seeds: SeedsOption = None,
    config: ConfigFile = None,
    param: MethodParams = None,
    split_param: SplitParams = None,
    task_param: TaskParams = None,
    backbone: BackboneOption = None,
    cf: CfOption = None,
    tuning: Tuning = None,
    force: ForceOption = False,
    no_wait: NoWaitOption = False,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
    no_predictions: NoPredictionsOption = False,
    launcher: LauncherOption = "none",
    num_processes: NumProcessesOption = 1,
    strategy: StrategyOption = "ddp",
) -> None:
    """Run one method on one dataset and task; write its record and show the leaderboard."""
    if no_wait:  # a run of the same config (or stage) held by another process: exit naming it
        from benchbed.locks import set_no_wait

        set_no_wait(True)
    overrides = {"method": method, "dataset": dataset, "task": task, "split": split, "seed": seed}
    overrides |= {"device": device, "dtype": dtype}
    if no_predictions:
        overrides["save_predictions"] = False
    shorthands = {"backbone": backbone, "cf": cf, "tuning": tuning}
    cfg = config_from_options(config, overrides, param, shorthands, split_param, task_param)
    seed_list = parse_seeds(seeds, seed) if seeds is not None else None
    if seed_list is not None and launcher != "none":
        raise ConfigError("--seeds runs in this process; with --launcher accelerate run one --seed per call")
    if launcher != "none" or num_processes != 1 or strategy != "ddp":
        _launch(cfg, launcher, num_processes, strategy)
    _run_configs([cfg] if seed_list is None else [cfg.with_updates(seed=s) for s in seed_list], force)


def _launch(cfg: RunConfig, launcher: str, num_processes: int, strategy: str) -> None:
    """``--launcher accelerate``: re-run this command line data-parallel (exits with its status)."""
    import sys

    from benchbed.orchestration.launch import check_launch, launch

    check_launch(cfg, launcher, num_processes, strategy)  # one-line errors before any process starts
    if launcher == "accelerate":
        raise typer.Exit(launch(sys.argv[1:], num_processes, strategy))


def _run_configs(configs: list[RunConfig], force: bool) -> None:
    """Run each config (several seeds: each its own record; existing ones are skipped as for one seed),
    show its metrics and cost, then the leaderboard of the last one."""
    from benchbed.orchestration.runner import execute
    from benchbed.parallel import world
    from benchbed.settings import get_settings

    console = Console()
    for one in configs:
        outcome = execute(one, force=force)
        if not world().is_main:  # data parallel: the main process reports
            return
        if outcome.skipped and get_settings().verbosity >= 0:
            console.print(f"[yellow]found an existing record[/] {outcome.path} (use --force to run again)")
        console.print(metrics_table(outcome.record))
        if not outcome.skipped:
            cost = outcome.record.cost
            console.print(
                f"[dim]train {cost.get('train_s')} s · eval {cost.get('eval_s')} s · peak memory "
                f"{cost.get('peak_memory_mb')} MB · {cost.get('device')}/{cost.get('dtype')} · "
                f"{outcome.path}[/]"
            )
    _print_board(console, outcome.record)
    hint = paper_scale_hint(outcome.record)
    if hint:
        console.print(f"[dim]{hint}[/]")


def parse_seeds(text: str, seed: int | None) -> list[int]:
    """``--seeds 0,1,2`` -> [0, 1, 2]: distinct non-negative integers, and not together with ``--seed``."""
    from benchbed.config import SEED_MAX

    if seed is not None:
        raise ConfigError("--seed and --seeds: give one of them")
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(p.isdigit() and int(p) <= SEED_MAX for p in parts):
        raise ConfigError(f"--seeds: expected a comma list of integers in [0, 2**63-1] (0,1,2), got {text!r}")
    values = [int(p) for p in parts]
    if len(set(values)) != len(values):
        raise ConfigError(f"--seeds: {text!r} names a seed twice")
    return values


def paper_scale_hint(record: RunRecord) -> str | None:
    """What it takes to turn a pipeline check into a paper-scale figure (None when the run already is one)."""
    from benchbed.results.leaderboard import random_init_backbone

    if not random_init_backbone(record.backbone):
        return None
    budget = ((record.info.get("method") or {}).get("budget") or {}).get("profile")
    steps = ["--backbone <the paper's pretrained LLM> (e.g. vicuna-7b, gpt2, a local path)"]
    if budget == "cpu":
        steps.append("a GPU (budget 'auto' then trains on the full protocol data, not the CPU subsample)")
    return (
        "° the random-init tiny backbone tests the pipeline, not the method; for paper-scale figures: "
        + "; ".join(steps)
    )


def rescore_command(
    record_file: Annotated[Path, typer.Argument(help="A run record JSON with saved predictions.")],
    write: Annotated[
        bool, typer.Option("--write", help="Store the recomputed metrics in the record.")
    ] = False,
    accept_changes: Annotated[
        bool,
        typer.Option("--accept-changes", help="With --write: store metrics that differ from the record's."),
    ] = False,
) -> None:
    """Recompute a record's metrics from its saved predictions (no model run) and compare.

    ``--write`` refuses predictions that do not cover the record's rows (row count and row-key checksum
    stored at write time, per-subset counts for older records) and, unless ``--accept-changes``, metrics
    that differ from the stored ones: a rescore is for metric-code changes, not for editing results.
    """
    record, metrics, counts, edited = _rescore(record_file)
    console = Console()
    table, changed = _comparison(record_file, record, metrics)
    console.print(table)
    console.print(f"{changed} value(s) differ from the stored record")
    if edited:
        console.print("[yellow]the predictions file changed since the run wrote it (its sha256 differs)[/]")
    if write:
        if changed and not accept_changes:
            raise BenchbedError(
                f"{record_file}: {changed} value(s) would change"
                + (" and the predictions file was edited since the run" if edited else "")
                + "; not written (pass --accept-changes to store them)"
            )
        _store_rescored(record_file, record, metrics, counts, changed, edited)
        console.print(f"record updated: {record_file}")


Metrics = dict[str, dict[str, float]]


def _rescore(record_file: Path) -> tuple[RunRecord, Metrics, dict[str, Any], bool]:
    """The record, its metrics and counts recomputed from its predictions, and whether the predictions
    file was edited since the run wrote it; predictions of another run or other rows are refused."""
    from benchbed.results.record import read_record
    from benchbed.results.store import (
        coverage_problem,
        file_sha256,
        identity_problem,
        predictions_file,
        read_predictions,
    )
    from benchbed.tasks import build_task

    record = read_record(record_file)
    predictions = read_predictions(record_file, record)
    # predictions of another run (another method on the same rows) are refused whatever the flags
    problem = identity_problem(record, record_file) or coverage_problem(record, predictions)
    if problem is not None:
        raise BenchbedError(f"{record_file}: {problem}; not rescoring (re-run the config to rebuild them)")
    task = build_task(record.task, dict(record.task_params))
    try:
        metrics, counts = task.compute_metrics(predictions)
    except ConfigError as exc:
        raise ConfigError(f"{record_file}: {exc}") from exc
    if record.counts and counts != record.counts:
        raise BenchbedError(
            f"{record_file}: the predictions give row/user counts {counts} but the record has "
            f"{record.counts}; not rescoring"
        )
    stored_sha = (record.predictions_check or {}).get("file_sha256")
    edited = stored_sha is not None and file_sha256(predictions_file(record_file, record)) != stored_sha
    return record, metrics, counts, edited


def _comparison(record_file: Path, record: RunRecord, metrics: Metrics) -> tuple[Table, int]:
    """Stored vs recomputed per (subset, metric), and how many values differ (beyond 1e-12)."""
    table = Table(title=f"rescore {record_file}")
    for col in ("subset", "metric", "stored", "recomputed", "delta"):
        table.add_column(col, justify="left" if col in ("subset", "metric") else "right")
    changed = 0
    for subset, values in metrics.items():
        for key, value in values.items():
            old = record.metrics.get(subset, {}).get(key)
            new = None if value != value else float(value)  # NaN -> None, as records store it
            delta = None if old is None or new is None else new - old
            changed += int(old != new and (delta is None or abs(delta) > 1e-12))
            table.add_row(
                subset,
                key,
                "" if old is None else f"{old:.6f}",
                "" if new is None else f"{new:.6f}",
                "" if delta is None else f"{delta:+.2e}",
            )
    return table, changed


def _store_rescored(
    record_file: Path, record: RunRecord, metrics: Metrics, counts: dict[str, Any], changed: int, edited: bool
) -> None:
    """Write the recomputed metrics into the record (atomically), saying when and by which code."""
    import benchbed
    from benchbed.atomic import write_text_atomic
    from benchbed.orchestration.machine import git_sha
    from benchbed.results.record import SCHEMA_VERSION

    record.metrics = {s: {k: float(v) for k, v in m.items()} for s, m in metrics.items()}
    record.counts = counts
    record.schema_version = SCHEMA_VERSION  # written by this benchbed, with its fields
    record.rescored = {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "benchbed_version": benchbed.__version__,
        "git_sha": git_sha(),
        "changed": changed,
        "predictions_edited": edited,
    }
    write_text_atomic(record_file, record.to_json())


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("run")(run_command)
    app.command("rescore")(rescore_command)
