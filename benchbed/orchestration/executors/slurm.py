"""The ``slurm`` executor: one submitit job array, a task per cell, with the cell's partition, GPUs, CPUs,
memory and time limit (suite ``resources`` < command-line options); ``--workers`` caps how many array tasks
run at once. ``cluster="local"`` uses submitit's LocalExecutor (subprocesses on this machine, how the tests
run it) with the same code path. Logs and pickles go to ``options.folder``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchbed.errors import ConfigError
from benchbed.settings import get_settings

if TYPE_CHECKING:
    from benchbed.orchestration.cells import Cell, CellResult, SweepOptions


class SlurmExecutor:
    def __init__(self, options: SweepOptions) -> None:
        self.options = options
        if options.cluster not in ("slurm", "local"):
            raise ConfigError(f"--cluster {options.cluster!r}: expected slurm or local")

    def parameters(self) -> dict[str, Any]:
        """submitit's parameters for the cluster: Slurm's own names (``SlurmExecutor``), or the few the
        local executor knows (time limit, GPUs); the other resources only mean something to Slurm."""
        res, opt = self.options.resources, self.options
        if opt.cluster == "local":
            local: dict[str, Any] = {"timeout_min": int(res.get("time_min") or 60)}
            if res.get("gpus"):
                local["gpus_per_node"] = int(res["gpus"])
            return local
        params: dict[str, Any] = {"job_name": "benchbed-sweep", "array_parallelism": opt.workers}
        if res.get("time_min"):
            params["time"] = int(res["time_min"])
        if res.get("cpus"):
            params["cpus_per_task"] = int(res["cpus"])
        if res.get("gpus"):
            params["gpus_per_node"] = int(res["gpus"])
        if res.get("mem_gb"):
            params["mem"] = f"{int(res['mem_gb'])}GB"
        if res.get("partition"):
            params["partition"] = str(res["partition"])
        return params

    def run(
        self, cells: list[Cell], settings: dict[str, Any], on_result: Callable[[CellResult], None]
    ) -> None:
        # submitit >= 1.5.4 (older ones import pkg_resources, gone from setuptools >= 81)
        import submitit
        from submitit.helpers import as_completed

        from benchbed.orchestration.cells import CellResult, cell_env, run_cell

        folder = Path(self.options.folder or Path(get_settings().results_dir) / "sweeps" / "submitit")
        make = submitit.LocalExecutor if self.options.cluster == "local" else submitit.SlurmExecutor
        executor = make(folder=folder)
        executor.update_parameters(**self.parameters())
        env = cell_env(self.options.resources)
        n = len(cells)
        jobs = executor.map_array(run_cell, cells, [settings] * n, [env] * n, [self.options.force] * n)
        by_job = {job.job_id: cell for job, cell in zip(jobs, cells, strict=True)}
        for job in as_completed(jobs):
            cell = by_job[job.job_id]
            try:
                result = job.result()
            except Exception as exc:  # the job itself died (time limit, node failure, OOM kill)
                lines = str(exc).strip().splitlines()
                why = lines[-1] if lines else type(exc).__name__
                result = CellResult(cell.key, cell.label, "failed", f"job {job.job_id}: {why}")
            on_result(result)
