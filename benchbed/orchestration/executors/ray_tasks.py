"""The ``ray`` executor: a Ray task per cell with the cell's ``num_cpus`` / ``num_gpus``, against a running
cluster (``--address``, e.g. ``ray://head:10001`` or ``auto``) or a local instance started here and shut down
at the end. Ray schedules the tasks by their resources; ``--workers`` is not used."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchbed.orchestration.cells import Cell, CellResult, SweepOptions


class RayExecutor:
    def __init__(self, options: SweepOptions) -> None:
        self.options = options

    def run(
        self, cells: list[Cell], settings: dict[str, Any], on_result: Callable[[CellResult], None]
    ) -> None:
        import ray

        from benchbed.orchestration.cells import cell_env, run_cell

        res = self.options.resources
        started = not ray.is_initialized()
        if started:
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.options.address:
                kwargs["address"] = self.options.address
            ray.init(**kwargs)
        try:
            remote = ray.remote(num_cpus=int(res.get("cpus") or 1), num_gpus=int(res.get("gpus") or 0))(
                run_cell
            )
            env = cell_env(res)
            pending = [remote.remote(cell, settings, env, self.options.force) for cell in cells]
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                on_result(ray.get(done[0]))
        finally:
            if started:
                ray.shutdown()
