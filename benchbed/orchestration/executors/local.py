"""The ``local`` executor: cells one after another in this process (``--workers 1``), or in N worker
processes (spawned, so no CUDA or torch state is shared), each with ``cpus`` threads and, with ``gpus``,
its own GPUs (``CUDA_VISIBLE_DEVICES`` set per worker from the GPUs this process sees)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from benchbed.errors import ConfigError

if TYPE_CHECKING:
    from benchbed.orchestration.cells import Cell, CellResult, SweepOptions

# how long a signalled worker may take to write its cell's failure record before it is killed
GRACE_S = 30.0


def visible_gpus() -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip()]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except ImportError:  # pragma: no cover
        return []


def _init_worker(slots: Any, gpus: int) -> None:
    """Take this worker's GPUs (a slot of ``gpus`` ids) before torch initialises CUDA; SIGTERM and SIGHUP
    end its cell as SIGINT does (a failure record), and end the worker when it is between cells."""
    from benchbed.orchestration import signals

    signals.install(worker=True)
    if gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = slots.get()


class LocalExecutor:
    def __init__(self, options: SweepOptions) -> None:
        self.options = options
        self.gpus = int(options.resources.get("gpus") or 0)
        self.cpus = int(options.resources.get("cpus") or 0)
        if self.gpus:
            have = visible_gpus()
            need = self.gpus * options.workers
            if len(have) < need:
                raise ConfigError(
                    f"--gpus {self.gpus} x --workers {options.workers} = {need} GPUs, but this machine shows "
                    f"{len(have)}; lower --workers or --gpus"
                )
            self.slots = [",".join(have[i * self.gpus : (i + 1) * self.gpus]) for i in range(options.workers)]

    def run(
        self, cells: list[Cell], settings: dict[str, Any], on_result: Callable[[CellResult], None]
    ) -> None:
        from benchbed.orchestration.cells import cell_env, run_cell

        env = cell_env(self.options.resources)
        force = self.options.force
        if self.options.workers == 1 and not self.gpus:
            for cell in cells:
                on_result(run_cell(cell, settings, env, force))
            return
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        slots = ctx.Queue()
        for slot in getattr(self, "slots", []):
            slots.put(slot)
        pool = ProcessPoolExecutor(
            max_workers=self.options.workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(slots, self.gpus),
        )
        pending: set[Future[CellResult]] = set()
        try:
            pending = {pool.submit(run_cell, cell, settings, env, force) for cell in cells}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    on_result(future.result())
        except BaseException:  # a signal (or a bug): no worker may outlive the sweep
            stop_workers(pool)
            raise
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)


def stop_workers(pool: ProcessPoolExecutor, grace_s: float = GRACE_S) -> None:
    """Pass the signal that stops the sweep on to its workers (SIGTERM reaches only the sweep; Ctrl-C
    reached them already, and a second one is ignored), so each writes its cell's failure record and
    exits; a worker still alive after ``grace_s`` is killed. Queued cells are cancelled."""
    from benchbed.orchestration import signals

    signum = signals.received or signal.SIGTERM
    processes = list((getattr(pool, "_processes", None) or {}).values())  # the pool keeps no public list
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive() and proc.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signum)
    deadline = time.monotonic() + grace_s
    for proc in processes:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join(5)
