"""A suite's ``grid``: methods x datasets x tasks x seeds x parameter values as run configs, and its
per-cell ``resources`` (what ``benchbed sweep`` asks an executor for).

::

    grid:                                   # a mapping, or a list of them (each expanded on its own)
      - method: [pop, random]               # a list is an axis; a scalar is fixed
        task: [ctr, topk]
        seed: [0, 1, 2]
      - method: mf
        method_params: {dim: [16, 64]}      # parameter axes: every combination
    resources: {cpus: 2, gpus: 0, mem_gb: 16, time_min: 120, partition: gpu}

Keys are :class:`benchbed.config.RunConfig` fields; the suite's ``defaults`` are merged under every cell.
Cells come out in a fixed order (the grid's key order, last axis fastest), so a cell's position and its
config hash are stable between invocations.
"""

from __future__ import annotations

import itertools
from dataclasses import fields
from typing import Any

from benchbed.config import RunConfig
from benchbed.errors import ConfigError

PARAM_KEYS = ("method_params", "split_params", "task_params")
RESOURCE_KEYS = {
    "cpus": int,  # CPU cores per cell (threads for torch; Slurm cpus_per_task; Ray num_cpus)
    "gpus": int,  # GPUs per cell
    "mem_gb": int,  # Slurm only
    "time_min": int,  # Slurm only: the job's time limit
    "partition": str,  # Slurm only
}


def _axis(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _expand_one(grid: dict[str, Any], where: str) -> list[dict[str, Any]]:
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(grid) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown grid key(s) {unknown}; expected RunConfig keys {sorted(known)}")
    names: list[tuple[str, str | None]] = []  # (config key, parameter name or None)
    axes: list[list[Any]] = []
    for key, value in grid.items():
        if key in PARAM_KEYS:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: grid {key!r} must map parameter -> value or list of values")
            for param, values in value.items():
                names.append((key, str(param)))
                axes.append(_axis(values))
        else:
            names.append((key, None))
            axes.append(_axis(value))
    empty = [f"{k}.{p}" if p else k for (k, p), a in zip(names, axes, strict=True) if not a]
    if empty:
        raise ConfigError(f"{where}: grid axis {empty[0]!r} is an empty list")
    cells = []
    for combo in itertools.product(*axes):
        cell: dict[str, Any] = {}
        for (key, param), value in zip(names, combo, strict=True):
            if param is None:
                cell[key] = value
            else:
                cell.setdefault(key, {})[param] = value
        cells.append(cell)
    return cells


def expand_grid(grid: Any, defaults: dict[str, Any], where: str) -> list[RunConfig]:
    """The run configs of ``grid`` (a mapping or a list of mappings) with ``defaults`` merged under them;
    parameter maps merge key by key with the defaults' maps."""
    parts = grid if isinstance(grid, list) else [grid]
    out = []
    for g, part in enumerate(parts):
        at = f"{where} grid[{g}]" if isinstance(grid, list) else f"{where} grid"
        if not isinstance(part, dict) or not part:
            raise ConfigError(f"{at}: expected a mapping like {{method: [pop, random], seed: [0, 1]}}")
        for i, cell in enumerate(_expand_one(part, at)):
            raw = {**defaults, **cell}
            for key in PARAM_KEYS:
                if key in cell and isinstance(defaults.get(key), dict):
                    raw[key] = {**defaults[key], **cell[key]}
            out.append(RunConfig.from_dict(raw, source=f"{at} cell {i}"))
    return out


def parse_resources(raw: Any, where: str) -> dict[str, Any]:
    """The suite's ``resources`` mapping, checked: known keys with values of the right type."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: 'resources' must be a mapping like {{cpus: 2, gpus: 1}}")
    unknown = sorted(set(raw) - set(RESOURCE_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown resource(s) {unknown}; expected some of {sorted(RESOURCE_KEYS)}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        kind = RESOURCE_KEYS[key]
        if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ConfigError(f"{where}: resources.{key} must be an integer >= 0, got {value!r}")
        if kind is str and not isinstance(value, str):
            raise ConfigError(f"{where}: resources.{key} must be a string, got {value!r}")
        out[key] = value
    return out
