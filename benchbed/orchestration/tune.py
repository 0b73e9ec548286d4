"""A small grid search: every combination is trained (early stopping inside) and scored on validation.

The test set is never looked at: each trial is ``method.fit`` on the split followed by the task's
``evaluate(stage="valid")``; the best trial by the task's validation metric (AUC for ctr, NDCG@10 for topk)
is recorded with all trials as JSON under ``<results>/tune/``. This gives the ID baselines the tuning
budget the papers gave theirs (CoLLM: lr in {1e-2, 1e-3, 1e-4}, dim in {64, 128, 256}).
"""

from __future__ import annotations

import itertools
import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchbed.api import TaskSetup
from benchbed.atomic import write_json_atomic
from benchbed.config import RunConfig, parse_value, stable_hash
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.results.store import TUNING_DIR
from benchbed.settings import get_settings


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["lr=1e-2,1e-3", "dim=64,256"]`` -> ``{"lr": [0.01, 0.001], "dim": [64, 256]}``.

    Commas inside brackets belong to one value (``hidden=[64,64],[128]``).
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise ConfigError(f"--grid: expected KEY=V1,V2,..., got {item!r}")
        if key in grid:
            raise ConfigError(f"--grid: {key!r} is given twice")
        parts = [p.strip() for p in re.split(r",(?![^\[]*\])", values) if p.strip()]
        grid[key] = [parse_value(p) for p in parts]
    if not grid:
        raise ConfigError("--grid: give at least one KEY=V1,V2,... (e.g. --grid lr=1e-2,1e-3 dim=64,256)")
    return grid


@dataclass
class TuneResult:
    method: str
    dataset: str
    task: str
    split_protocol: str
    split_hash: str
    metric: str
    seed: int
    grid: dict[str, list[Any]]
    fixed: dict[str, Any]
    trials: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    path: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "dataset": self.dataset,
            "task": self.task,
            "split_protocol": self.split_protocol,
            "split_hash": self.split_hash,
            "metric": self.metric,
            "stage": "valid",
            "seed": self.seed,
            "grid": self.grid,
            "fixed": self.fixed,
            "trials": self.trials,
            "best": self.best,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }


def tune(
    method: str,
    dataset: str,
    grid: dict[str, list[Any]],
    *,
    task: str = "ctr",
    split: str | None = None,
    split_params: dict[str, Any] | None = None,
    task_params: dict[str, Any] | None = None,
    fixed: dict[str, Any] | None = None,
    seed: int = 0,
    device: str | None = None,
    log: Any = None,
) -> TuneResult:
    """Run the grid and write ``<results>/tune/<method>-<dataset>-<task>-<split hash>-<grid hash>.json``."""
    from benchbed.data.prepare import prepare_split
    from benchbed.tasks import build_task

    fixed = dict(fixed or {})
    combos = _combos(method, task, grid, fixed)
    task_obj = build_task(task, dict(task_params or {}))
    metric = task_obj.validation_metric_key
    prepared = prepare_split(dataset, split, dict(split_params or {}))
    data = prepared.split
    task_obj.check_split(data)
    setup = task_obj.method_setup(data)
    settings = get_settings()
    result = TuneResult(
        method=method,
        dataset=dataset,
        task=task,
        split_protocol=data.protocol,
        split_hash=data.key,
        metric=metric,
        seed=seed,
        grid=grid,
        fixed=fixed,
    )
    for n, combo in enumerate(combos, 1):
        trial_config = RunConfig(
            method=method,
            dataset=dataset,
            task=task,
            split=split,
            split_params=dict(split_params or {}),
            method_params={**fixed, **combo},
            task_params=dict(task_params or {}),
            seed=seed,
            device=device,
        )
        trial = _trial(trial_config, task_obj, data, setup)
        result.trials.append({"params": combo, **trial})
        if log is not None:
            log(f"[{n}/{len(combos)}] {combo}: valid {metric} = {trial['value']:.4f} ({trial['fit_s']:.1f}s)")
    result.best = _best(result.trials, fixed)
    result.path = settings.results_dir / TUNING_DIR / _file_name(result)
    write_json_atomic(result.path, result.as_dict())
    return result


def _file_name(result: TuneResult) -> str:
    """``<method>-<dataset>-<task>-<split hash>-<grid hash>.json``: one file per search."""
    safe_dataset = Path(result.dataset).name or "dataset"
    grid_hash = stable_hash([result.grid, result.fixed, result.seed], 8)
    return (
        f"{result.method.replace(':', '_')}-{safe_dataset}-{result.task}-{result.split_hash}-{grid_hash}.json"
    )


def _combos(
    method: str, task: str, grid: dict[str, list[Any]], fixed: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every grid point; a key in both grid and fixed parameters, or an unknown parameter, fails first."""
    from benchbed.methods import build_method

    clash = sorted(set(grid) & set(fixed))
    if clash:
        raise ConfigError(f"--grid and --param both set {clash}")
    combos = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    for combo in combos:  # unknown parameters fail before any training
        build_method(method, {**fixed, **combo}, task=task)
    return combos


def _best(trials: list[dict[str, Any]], fixed: dict[str, Any]) -> dict[str, Any] | None:
    """The trial with the highest finite validation value (None when every trial gave NaN)."""
    finite = [t for t in trials if not math.isnan(t["value"])]
    if not finite:
        return None
    best = max(finite, key=lambda t: t["value"])
    return {"params": best["params"], "value": best["value"], "method_params": {**fixed, **best["params"]}}


def _trial(config: RunConfig, task: Any, data: Split, setup: TaskSetup) -> dict[str, Any]:
    """Fit one grid point and score it on validation: its value, fit time, epochs and resolved parameters."""
    from benchbed.methods import build_method
    from benchbed.orchestration.machine import seed_everything
    from benchbed.orchestration.runner import make_context

    model = build_method(config.method, dict(config.method_params), task=config.task)
    # the same device, dtype, cache and work dirs as `benchbed run` would give this trial
    ctx = make_context(config, log=None, setup=setup)
    seed_everything(config.seed)
    start = time.perf_counter()
    model.fit(data, ctx)
    fit_s = time.perf_counter() - start
    evaluated = task.evaluate(model, data, ctx, stage="valid")
    value = float(evaluated.metrics["all"][task.validation_metric_key])
    info = model.backbone_info or {}
    return {
        "value": value,
        "fit_s": round(fit_s, 3),
        "epochs_run": info.get("epochs_run"),
        "resolved_params": model.params,
    }
