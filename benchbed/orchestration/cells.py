"""One cell of a sweep: what it is (a pickleable :class:`Cell`), what the executor is asked for
(:class:`SweepOptions`), and :func:`run_cell`, which every executor calls wherever it runs the cell.

Below both the sweep (which makes the cells and collects the results) and the executors (which only decide
where :func:`run_cell` runs), so neither imports the other's caller.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchbed.config import RunConfig
from benchbed.settings import Settings, get_settings


@dataclass(frozen=True)
class Cell:
    """One run of the sweep, in a form every executor can pickle."""

    index: int
    key: str  # config hash
    label: str
    config: dict[str, Any]

    def run_config(self) -> RunConfig:
        return RunConfig.from_dict(dict(self.config), source=f"cell {self.label}")


@dataclass
class CellResult:
    key: str
    label: str
    status: str  # "done" (ran now), "skipped" (its record was there), "failed", "interrupted" (a signal)
    error: str | None = None
    seconds: float = 0.0
    record: str | None = None


@dataclass
class SweepOptions:
    """What the executor is asked for; ``resources`` per cell (suite file < command line)."""

    executor: str = "local"
    workers: int = 1
    resources: dict[str, Any] = field(default_factory=dict)
    # the resources given on the command line (Slurm-only ones are errors on other executors; those of the
    # suite file are the suite's Slurm settings and are not used elsewhere)
    given: frozenset[str] = frozenset()
    address: str | None = None  # ray: a running cluster
    folder: Path | None = None  # slurm: submitit's logs and pickles
    cluster: str = "slurm"  # submitit cluster: slurm, or local (submitit's LocalExecutor)
    force: bool = False


def settings_payload(settings: Settings | None = None) -> dict[str, Any]:
    s = settings or get_settings()
    return {"data_dir": str(s.data_dir), "cache_dir": str(s.cache_dir), "results_dir": str(s.results_dir)}


def cell_env(resources: dict[str, Any]) -> dict[str, str]:
    """Environment of a worker: threads capped at the cell's CPUs (torch, BLAS)."""
    cpus = int(resources.get("cpus") or 0)
    if cpus <= 0:
        return {}
    return {k: str(cpus) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def run_cell(cell: Cell, settings: dict[str, Any], env: dict[str, str], force: bool = False) -> CellResult:
    """Run one cell (in whatever process the executor chose) and say how it ended; never raises for a
    failing run: the runner has written its ``failed`` record, the result carries the one-line error."""
    from benchbed.orchestration import signals
    from benchbed.orchestration.failures import one_line
    from benchbed.orchestration.runner import execute
    from benchbed.settings import set_settings

    os.environ.update(env)
    if env.get("OMP_NUM_THREADS"):
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    set_settings(Settings(**{k: Path(v) for k, v in settings.items()}, verbosity=-1))
    start = time.perf_counter()
    if signals.received is not None:  # the sweep is stopping: a cell queued to this worker does not start
        return CellResult(cell.key, cell.label, "interrupted", signals.describe(KeyboardInterrupt()))
    signals.busy = True
    try:
        outcome = execute(cell.run_config(), force=force, progress=False)
    except KeyboardInterrupt:
        if not signals.worker():
            raise  # in the sweep's own process: the sweep stops
        # a worker: the runner wrote the cell's failure record. The worker ends here, without handing a
        # result back: the sweep is stopping anyway, and a signal raised inside library code (RecBole's
        # logging, torch) may have left a lock held that would hang the way back to the pool
        os._exit(128 + (signals.received or 2))  # 2: SIGINT
    except Exception as exc:
        return CellResult(cell.key, cell.label, "failed", one_line(exc), time.perf_counter() - start)
    finally:
        signals.busy = False
    status = "skipped" if outcome.skipped else "done"
    return CellResult(cell.key, cell.label, status, None, time.perf_counter() - start, str(outcome.path))
