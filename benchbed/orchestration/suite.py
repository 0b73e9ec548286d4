"""Suite files (``benchmarks/*.yaml``) and the regression check against a stored baseline.

A suite is a list of runs plus what to compare::

    name: ci
    baseline: ci.baseline.json        # relative to the suite file
    defaults: {dataset: ml-100k}      # merged under every run
    metrics: [auc, ndcg@10]           # keys to compare (default: every key a record has)
    subsets: [all, warm, cold]        # subsets to compare (default: all of them)
    tolerance: 0.0001                 # absolute tolerance, per metric key overridable in `tolerances`
    tolerances: {logloss: 0.001}
    runs:
      - {method: pop, task: ctr}

A metric regresses when it moves against its direction (``higher_is_better`` in the metric registry) by more
than its tolerance, or when a value the baseline has is missing now. A move the other way is an improvement
and passes. Unknown keys, methods or tasks, and a baseline that lists other runs than the suite, are one-line
errors naming the file.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchbed.atomic import write_json_atomic
from benchbed.config import RunConfig, load_yaml
from benchbed.errors import ConfigError
from benchbed.registry import RegistryError

SUITE_KEYS = {
    "name",
    "description",
    "baseline",
    "defaults",
    "metrics",
    "subsets",
    "tolerance",
    "tolerances",
    "runs",
    "grid",  # methods x datasets x seeds x parameter values (benchbed.orchestration.grid)
    "resources",  # per cell, for `benchbed sweep` executors
}
BASELINE_VERSION = 1


@dataclass
class Suite:
    name: str
    path: Path
    runs: list[RunConfig]
    baseline: Path
    metrics: list[str] | None = None
    subsets: list[str] | None = None
    tolerance: float = 1e-4
    tolerances: dict[str, float] = field(default_factory=dict)
    description: str = ""
    resources: dict[str, Any] = field(default_factory=dict)  # per cell: cpus, gpus, mem_gb, time_min, ...

    def run_key(self, config: RunConfig) -> str:
        return config.hash()

    def tolerance_for(self, metric: str) -> float:
        base = metric.split("@")[0]
        return float(self.tolerances.get(metric, self.tolerances.get(base, self.tolerance)))

    def selects(self, subset: str, metric: str) -> bool:
        return (self.metrics is None or metric in self.metrics) and (
            self.subsets is None or subset in self.subsets
        )


def _check_names(config: RunConfig, where: str) -> None:
    import benchbed.methods  # noqa: F401 - registers the built-in methods
    import benchbed.tasks  # noqa: F401
    from benchbed.methods import RECBOLE_PREFIX
    from benchbed.registry import METHODS, TASKS

    try:
        if not config.method.startswith(RECBOLE_PREFIX):
            METHODS.canonical(config.method)
        TASKS.canonical(config.task)
    except RegistryError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _str_list(value: Any, where: str, key: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"{where}: {key!r} must be a list of strings")


def load_suite(path: Path) -> Suite:
    """Read and validate a suite file; every problem is a one-line ``ConfigError`` naming the file."""
    path = Path(path)
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'runs' list")
    unknown = sorted(set(raw) - SUITE_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; expected some of {sorted(SUITE_KEYS)}")
    runs_raw = raw.get("runs", [] if "grid" in raw else None)
    if not isinstance(runs_raw, list) or not (runs_raw or "grid" in raw):
        raise ConfigError(f"{path}: 'runs' must be a non-empty list of run configs (or give a 'grid')")
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: 'defaults' must be a mapping")
    runs = []
    for i, item in enumerate(runs_raw):
        where = f"{path} runs[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected a mapping like {{method: pop, task: ctr}}")
        config = RunConfig.from_dict({**defaults, **item}, source=where)
        _check_names(config, where)
        runs.append(config)
    if "grid" in raw:
        from benchbed.orchestration.grid import expand_grid

        for config in expand_grid(raw["grid"], defaults, str(path)):
            _check_names(config, f"{path} grid cell {config.method}/{config.task}")
            runs.append(config)
    hashes = [c.hash() for c in runs]
    dup = sorted({h for h in hashes if hashes.count(h) > 1})
    if dup:
        raise ConfigError(f"{path}: runs[{hashes.index(dup[0])}] appears twice (identical config)")
    tolerances = raw.get("tolerances") or {}
    if not isinstance(tolerances, dict) or not all(isinstance(v, int | float) for v in tolerances.values()):
        raise ConfigError(f"{path}: 'tolerances' must map metric key -> number")
    tolerance = raw.get("tolerance", 1e-4)
    if not isinstance(tolerance, int | float) or tolerance < 0:
        raise ConfigError(f"{path}: 'tolerance' must be a number >= 0")
    name = str(raw.get("name") or path.stem)
    baseline = path.parent / str(raw.get("baseline") or f"{path.stem}.baseline.json")
    return Suite(
        name=name,
        path=path,
        runs=runs,
        baseline=baseline,
        metrics=_str_list(raw.get("metrics"), str(path), "metrics"),
        subsets=_str_list(raw.get("subsets"), str(path), "subsets"),
        tolerance=float(tolerance),
        tolerances={str(k): float(v) for k, v in tolerances.items()},
        description=str(raw.get("description") or ""),
        resources=_resources(raw.get("resources"), str(path)),
    )


def _resources(raw: Any, where: str) -> dict[str, Any]:
    from benchbed.orchestration.grid import parse_resources

    return parse_resources(raw, where)


# --- baseline ---------------------------------------------------------------------------------------------
def run_label(config: RunConfig) -> str:
    extra = ""
    if config.task_params:
        extra = " " + ",".join(f"{k}={v}" for k, v in sorted(config.task_params.items()))
    if config.method_params:
        extra += " " + ",".join(f"{k}={v}" for k, v in sorted(config.method_params.items()))
    return f"{config.method} {config.dataset} {config.task}{extra} s{config.seed}"


def baseline_payload(suite: Suite, metrics: dict[str, dict[str, dict[str, float | None]]]) -> dict[str, Any]:
    """The baseline JSON for ``metrics`` (run key -> subset -> metric -> value), filtered by the suite."""
    runs = {}
    for config in suite.runs:
        key = suite.run_key(config)
        selected = {
            subset: {m: v for m, v in values.items() if suite.selects(subset, m)}
            for subset, values in metrics[key].items()
        }
        runs[key] = {
            "label": run_label(config),
            "config": asdict(config),
            "metrics": {s: v for s, v in selected.items() if v},
        }
    from benchbed.results.environment import collect

    # the environment that produced it, so `check` can say when it compares across library versions
    return {"schema_version": BASELINE_VERSION, "suite": suite.name, "environment": collect(), "runs": runs}


def baseline_environment(path: Path) -> dict[str, Any] | None:
    """The environment a baseline file was written in (None for baselines older than that field)."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    env = raw.get("environment") if isinstance(raw, dict) else None
    return env if isinstance(env, dict) else None


def write_baseline(path: Path, payload: dict[str, Any]) -> None:
    write_json_atomic(path, payload)


def create_hint(suite: Suite, path: Path) -> str:
    """One line saying how to write ``path``: the exact command, and that it runs (trains) the whole suite."""
    command = f"benchbed check --suite {suite.path}"
    if Path(path) != Path(suite.baseline):
        command += f" --baseline {path}"
    n = len(suite.runs)
    return f"create it with `{command} --update-baseline` (trains and scores the suite's {n} run(s))"


def load_baseline(path: Path, suite: Suite) -> dict[str, dict[str, dict[str, float | None]]]:
    """Run key -> subset -> metric -> value; the file must list exactly the suite's runs."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no baseline file yet; {create_hint(suite, path)}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: corrupt JSON (line {exc.lineno})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); not a benchbed baseline") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{path}: a directory, not a baseline file") from exc
    if (
        not isinstance(raw, dict)
        or raw.get("schema_version") != BASELINE_VERSION
        or not isinstance(raw.get("runs"), dict)
    ):
        raise ConfigError(
            f"{path}: not a benchbed baseline (schema_version {BASELINE_VERSION} with a 'runs' mapping)"
        )
    want = {suite.run_key(c): run_label(c) for c in suite.runs}
    missing = [want[k] for k in want if k not in raw["runs"]]
    extra = [
        str(v.get("label", k)) if isinstance(v, dict) else k for k, v in raw["runs"].items() if k not in want
    ]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"suite runs missing from it: {missing}")
        if extra:
            parts.append(f"runs not in the suite: {extra}")
        raise ConfigError(
            f"{path}: does not match suite {suite.path} ({'; '.join(parts)}); rerun with --update-baseline"
        )
    out = {}
    for key, entry in raw["runs"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("metrics"), dict):
            raise ConfigError(f"{path}: run {key!r} has no 'metrics' mapping")
        for subset, values in entry["metrics"].items():
            if not isinstance(values, dict):
                raise ConfigError(
                    f"{path}: run {key!r}, subset {subset!r}: expected a mapping of metric values"
                )
            for metric, value in values.items():
                number = isinstance(value, (int, float)) and not isinstance(value, bool)
                if value is not None and not (number and not math.isinf(value)):  # NaN: undefined (LogLoss)
                    raise ConfigError(
                        f"{path}: run {key!r}, {subset}/{metric} = {value!r}; expected a number, NaN or null "
                        "(rerun with --update-baseline)"
                    )
        out[key] = entry["metrics"]
    return out


# --- comparison -------------------------------------------------------------------------------------------
@dataclass
class Comparison:
    run: str
    subset: str
    metric: str
    baseline: float | None
    current: float | None
    tolerance: float
    status: str  # "pass", "better", "regression", "missing", "failed"
    note: str = ""

    @property
    def regressed(self) -> bool:
        return self.status in ("regression", "missing", "failed")

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline


def _defined(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def compare(
    suite: Suite,
    baseline: dict[str, dict[str, dict[str, float | None]]],
    current: dict[str, dict[str, dict[str, float | None]] | str],
) -> list[Comparison]:
    """Compare each baseline value with the current run; ``current[key]`` is a metrics dict or an error."""
    from benchbed.results.leaderboard import metric_direction

    out = []
    for config in suite.runs:
        key = suite.run_key(config)
        label = run_label(config)
        now = current[key]
        for subset, values in baseline[key].items():
            for metric, base in values.items():
                if not suite.selects(subset, metric):
                    continue
                tol = suite.tolerance_for(metric)
                if isinstance(now, str):
                    out.append(Comparison(label, subset, metric, base, None, tol, "failed", now))
                    continue
                # an undefined metric (NaN: e.g. no warm rows in a small subsample) is None on both sides, so
                # undefined then and now is unchanged, not a regression
                base, value = _defined(base), _defined(now.get(subset, {}).get(metric))
                if base is None:
                    status = "pass" if value is None else "better"
                elif value is None or not math.isfinite(value):
                    status = "missing"
                else:
                    gain = (value - base) if metric_direction(metric) else (base - value)
                    status = "regression" if gain < -tol else ("better" if gain > tol else "pass")
                out.append(Comparison(label, subset, metric, base, value, tol, status))
    return out
