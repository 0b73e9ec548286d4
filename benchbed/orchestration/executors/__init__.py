"""Where the cells of a sweep run: ``local`` (this process, or N worker processes), ``slurm`` (a submitit
job array) and ``ray`` (Ray tasks). Each executor takes the cells, runs
:func:`benchbed.orchestration.cells.run_cell` for each and hands every :class:`CellResult` to a callback as
it arrives; none of them knows what a run is.

:func:`make_executor` checks, before anything starts, that the executor's package is installed (the error
names the extra to install) and that the options fit it (Slurm's partition, memory and time limit on the
local executor are errors, not silently dropped).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from benchbed.errors import ConfigError

if TYPE_CHECKING:
    from benchbed.orchestration.cells import Cell, CellResult, SweepOptions

EXECUTORS = {
    "local": "benchbed.orchestration.executors.local:LocalExecutor",
    "slurm": "benchbed.orchestration.executors.slurm:SlurmExecutor",
    "ray": "benchbed.orchestration.executors.ray_tasks:RayExecutor",
}
# the package each executor needs and the extra that installs it
NEEDS = {"slurm": ("submitit", "slurm"), "ray": ("ray", "ray")}
SLURM_ONLY = ("partition", "mem_gb", "time_min")


class Executor(Protocol):
    def run(
        self, cells: list[Cell], settings: dict[str, Any], on_result: Callable[[CellResult], None]
    ) -> None: ...


def require(module: str, extra: str, executor: str) -> Any:
    """Import ``module`` or fail in one line naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except Exception as exc:  # ImportError, or a broken install (ray 2.6.3 without pkg_resources)
        why = "not installed" if isinstance(exc, ModuleNotFoundError) and exc.name == module else str(exc)
        raise ConfigError(
            f"--executor {executor} needs {module} ({why}); install it with pip install 'benchbed[{extra}]'"
        ) from exc


def check_options(options: SweepOptions) -> None:
    name = options.executor
    if name not in EXECUTORS:
        raise ConfigError(f"--executor {name!r}: expected one of {', '.join(EXECUTORS)}")
    if options.workers < 1:
        raise ConfigError(f"--workers {options.workers}: expected >= 1")
    res = options.resources
    if name != "slurm":
        given = [k for k in SLURM_ONLY if k in options.given and res.get(k) not in (None, "", 0)]
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise ConfigError(f"{flags}: Slurm options, but the executor is {name!r} (use --executor slurm)")
    if options.address is not None and name != "ray":
        raise ConfigError(f"--address is for --executor ray (a running Ray cluster), not {name!r}")


def make_executor(options: SweepOptions) -> Executor:
    import importlib

    check_options(options)
    if options.executor in NEEDS:
        module, extra = NEEDS[options.executor]
        require(module, extra, options.executor)
    mod, _, cls = EXECUTORS[options.executor].partition(":")
    return getattr(importlib.import_module(mod), cls)(options)
