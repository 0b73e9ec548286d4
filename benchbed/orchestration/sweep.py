"""``benchbed sweep SUITE``: every run of a suite (its ``runs`` and its ``grid``) as an independent cell.

A cell is one :class:`RunConfig`, keyed by its config hash, and writes one record through the runner, which
already skips a config whose ``ok`` record is there (for the same data). So a sweep that was interrupted, or
whose cells partly failed, is finished by running it again: finished cells are skipped, failed and missing
ones run. A cell that raises leaves the runner's ``failed`` record and the sweep goes on; the command's exit
status is the number of failed cells (at most 100).

Executors (``benchbed.orchestration.executors``) only decide where :func:`run_cell` runs: in this process or
N local worker processes, a Slurm job array (submitit) or Ray tasks. Everything that can be checked is
checked before the first cell starts (:func:`prepare`): executor installed, options that fit the
executor, every cell's method, task and parameters.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchbed.config import RunConfig
from benchbed.errors import BenchbedError, ConfigError
from benchbed.orchestration.suite import Suite, run_label
from benchbed.settings import Settings, get_settings

MAX_EXIT = 100


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
    status: str  # "done" (ran now), "skipped" (its record was there), "failed"
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


@dataclass
class SweepReport:
    results: list[CellResult]
    seconds: float

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def exit_code(self) -> int:
        return min(self.failed, MAX_EXIT)


def cells_of(suite: Suite) -> list[Cell]:
    return [
        Cell(index=i, key=config.hash(), label=run_label(config), config=asdict(config))
        for i, config in enumerate(suite.runs)
    ]


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
    from benchbed.orchestration.runner import execute, one_line
    from benchbed.settings import set_settings

    os.environ.update(env)
    if env.get("OMP_NUM_THREADS"):
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    set_settings(Settings(**{k: Path(v) for k, v in settings.items()}, verbosity=-1))
    start = time.perf_counter()
    try:
        outcome = execute(cell.run_config(), force=force, progress=False)
    except Exception as exc:
        return CellResult(cell.key, cell.label, "failed", one_line(exc), time.perf_counter() - start)
    status = "skipped" if outcome.skipped else "done"
    return CellResult(cell.key, cell.label, status, None, time.perf_counter() - start, str(outcome.path))


# --- status -----------------------------------------------------------------------------------------------
@dataclass
class CellStatus:
    cell: Cell
    status: str  # done | failed | pending
    path: Path | None
    error: str | None = None


def cell_status(cell: Cell) -> CellStatus:
    """What the results tree says of a cell: ``done`` (an ok record for the data as it is now),
    ``failed`` (its last run failed: the record or ``.failed.json`` beside it), else ``pending``."""
    from benchbed.orchestration.runner import find_existing, one_line
    from benchbed.results.record import RecordError, read_record
    from benchbed.results.store import failed_path

    try:
        path, record = find_existing(cell.run_config())
    except BenchbedError as exc:
        return CellStatus(cell, "failed", None, one_line(exc))
    if record is not None:
        return CellStatus(cell, "done", path)
    for candidate in (failed_path(path), path):
        if candidate.exists():
            try:
                rec = read_record(candidate)
            except RecordError:
                continue
            if rec.status == "failed":
                return CellStatus(cell, "failed", candidate, rec.error)
    return CellStatus(cell, "pending", path)


# --- checks and the run -----------------------------------------------------------------------------------
def prepare(suite: Suite, options: SweepOptions) -> tuple[list[Cell], Any]:
    """The cells and the executor, after every check that can fail before a cell starts."""
    from benchbed.orchestration.executors import make_executor
    from benchbed.orchestration.runner import setup

    executor = make_executor(options)  # installed? options that fit it?
    cells = cells_of(suite)
    for cell in cells:
        try:
            setup(cell.run_config())  # method, task and parameters, as `benchbed run` checks them
        except BenchbedError as exc:
            raise ConfigError(f"{suite.path}: cell {cell.index} ({cell.label}): {exc}") from exc
    return cells, executor


def run_sweep(
    suite: Suite,
    options: SweepOptions,
    on_result: Callable[[CellResult], None] | None = None,
    prepared: tuple[list[Cell], Any] | None = None,
) -> SweepReport:
    """Run every cell through the executor; ``on_result`` is called as each one ends (progress).
    ``prepared``: what :func:`prepare` returned, when the caller checked before showing progress."""
    cells, executor = prepared or prepare(suite, options)
    start = time.perf_counter()
    results: list[CellResult] = []

    def collect(result: CellResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    # finished cells are not sent anywhere (no worker pool, no Slurm job): the runner's own skip, done here
    todo = []
    for cell in cells:
        st = None if options.force else cell_status(cell)
        if st is not None and st.status == "done":
            collect(CellResult(cell.key, cell.label, "skipped", None, 0.0, str(st.path)))
        else:
            todo.append(cell)
    if todo:
        executor.run(todo, settings_payload(), collect)
    order = {c.key: c.index for c in cells}
    results.sort(key=lambda r: order.get(r.key, len(order)))
    return SweepReport(results, time.perf_counter() - start)
