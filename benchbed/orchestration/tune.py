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

from benchbed.atomic import write_json_atomic
from benchbed.config import RunConfig, parse_value, stable_hash
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
    from benchbed.methods import build_method
    from benchbed.orchestration.runner import make_context, seed_everything
    from benchbed.tasks import build_task

    fixed = dict(fixed or {})
    clash = sorted(set(grid) & set(fixed))
    if clash:
        raise ConfigError(f"--grid and --param both set {clash}")
    combos = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    for combo in combos:  # unknown parameters fail before any training
        build_method(method, {**fixed, **combo}, task=task)
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
        split_hash=data.hash or data.compute_hash(),
        metric=metric,
        seed=seed,
        grid=grid,
        fixed=fixed,
    )
    for n, combo in enumerate(combos, 1):
        params = {**fixed, **combo}
        model = build_method(method, params, task=task)
        trial_config = RunConfig(
            method=method,
            dataset=dataset,
            task=task,
            split=split,
            split_params=dict(split_params or {}),
            method_params=params,
            task_params=dict(task_params or {}),
            seed=seed,
            device=device,
        )
        # the same device, dtype, cache and work dirs as `benchbed run` would give this trial
        ctx = make_context(trial_config, log=None, setup=setup)
        seed_everything(seed)
        start = time.perf_counter()
        model.fit(data, ctx)
        fit_s = time.perf_counter() - start
        evaluated = task_obj.evaluate(model, data, ctx, stage="valid")
        value = float(evaluated.metrics["all"][metric])
        info = model.backbone_info or {}
        trial = {
            "params": combo,
            "value": value,
            "fit_s": round(fit_s, 3),
            "epochs_run": info.get("epochs_run"),
            "resolved_params": model.params,
        }
        result.trials.append(trial)
        if log is not None:
            log(f"[{n}/{len(combos)}] {combo}: valid {metric} = {value:.4f} ({fit_s:.1f}s)")
    finite = [t for t in result.trials if not math.isnan(t["value"])]
    if finite:
        best = max(finite, key=lambda t: t["value"])
        result.best = {
            "params": best["params"],
            "value": best["value"],
            "method_params": {**fixed, **best["params"]},
        }
    safe_dataset = Path(dataset).name or "dataset"
    grid_hash = stable_hash([grid, fixed, seed], 8)
    name = f"{method.replace(':', '_')}-{safe_dataset}-{task}-{result.split_hash}-{grid_hash}.json"
    result.path = settings.results_dir / TUNING_DIR / name
    write_json_atomic(result.path, result.as_dict())
    return result
