"""``benchbed sweep SUITE``: every run of a suite (its ``runs`` and its ``grid``) as an independent cell.

A cell is one :class:`RunConfig`, keyed by its config hash, and writes one record through the runner, which
already skips a config whose ``ok`` record is there (for the same data). So a sweep that was interrupted, or
whose cells partly failed, is finished by running it again: finished cells are skipped, failed and missing
ones run. A cell that raises leaves the runner's ``failed`` record and the sweep goes on; the command's exit
status is the number of failed cells (at most 100).

Executors (``benchbed.orchestration.executors``) only decide where a cell runs (``cells.run_cell``): in this
process or N local worker processes, a Slurm job array (submitit) or Ray tasks. Everything that can be
checked is checked before the first cell starts (:func:`prepare`): executor installed, options that fit the
executor, every cell's method, task and parameters.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchbed.errors import BenchbedError, ConfigError
from benchbed.orchestration.cells import Cell, CellResult, SweepOptions, settings_payload
from benchbed.orchestration.executors import make_executor
from benchbed.orchestration.suite import Suite, run_label

__all__ = [
    "Cell",
    "CellResult",
    "SweepOptions",
    "SweepReport",
    "cell_status",
    "cells_of",
    "prepare",
    "run_sweep",
]

MAX_EXIT = 100


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
    from benchbed.orchestration.failures import one_line
    from benchbed.orchestration.runner import find_existing
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
