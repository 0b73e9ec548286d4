"""Signals that end a run or a sweep: SIGINT, SIGTERM (Slurm, CI, ``timeout``) and SIGHUP (a closed
terminal) all end it the same way.

Python turns only SIGINT into an exception; SIGTERM and SIGHUP kill the process where it stands, so a run
wrote no ``.failed.json`` and a sweep's worker processes were left running under PID 1. :func:`install`
makes the other two behave like SIGINT: :class:`Interrupted` (a ``KeyboardInterrupt``) is raised in the main
thread, the runner writes its failure record ("interrupted by SIGTERM"), a sweep stops its workers, and the
command exits with the conventional code 128 + signal number (:func:`exit_code`).
"""

from __future__ import annotations

import os
import signal
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

received: int | None = None  # the first signal that ended this process's work, if any
_count = 0
_worker = False  # a sweep's worker process: between cells it has nothing to clean up and just exits
busy = False  # a worker is inside a cell (set by ``cells.run_cell``)


class Interrupted(KeyboardInterrupt):
    """The run was ended by a signal (``signum``); a ``KeyboardInterrupt``, so every place that cleans up
    after Ctrl-C cleans up after SIGTERM and SIGHUP too."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


def _raise(signum: int, frame: FrameType | None) -> None:
    global received, _count
    _count += 1
    if received is None:
        received = signum
    if _worker and not busy:
        os._exit(128 + signum)  # an idle worker: nothing to record
    if _count == 1:
        raise Interrupted(signum)
    if _count >= 3:  # asked three times: stop now, whatever is left unwritten (writes are atomic)
        os._exit(128 + received)
    # a second signal while cleaning up (Ctrl-C reaches the workers and the sweep forwards it): ignored,
    # so the failure records and the workers' ends complete


def install(worker: bool = False) -> None:
    """SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread (call once, at start);
    ``worker``: a sweep's worker process, which exits at once when a signal finds it between cells."""
    global _worker
    _worker = worker
    for signum in HANDLED:
        signal.signal(signum, _raise)


def worker() -> bool:
    """Whether this process is a sweep's worker (:func:`install` was called with ``worker=True``)."""
    return _worker


def message() -> str:
    """The command's last line when a signal ended it."""
    return f"interrupted by {signal.Signals(received).name}" if received is not None else "interrupted"


def exit_code(default: int = 130) -> int:
    """128 + the number of the signal that ended the work (143 for SIGTERM), else ``default``."""
    return 128 + received if received is not None else default


def describe(exc: BaseException) -> str:
    """What a record says of an interruption: which signal, when one is known."""
    if isinstance(exc, Interrupted):
        return str(exc)
    if received is not None:
        return f"interrupted by {signal.Signals(received).name}"
    return "KeyboardInterrupt"  # raised by code (an API caller, a test), not by a signal
