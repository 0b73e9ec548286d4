"""One run of a configuration at a time: a file lock per record id (and per stage identity).

Two identical ``run``s, or two sweeps of one suite, used to both do all the work. The lock is a POSIX
record lock (``fcntl.lockf``) on a small ``<name>.lock`` file beside what it protects: it works on NFS
(through the NFS lock manager, unlike ``flock`` on some kernels) and the kernel drops it when the holding
process dies, so a killed run never leaves a stale lock behind. The file says who holds it (pid, host,
since when) for the message the second process prints.

The second process waits for the lock; with ``--no-wait`` (``BENCHBED_NO_WAIT=1``, which sweep workers
inherit) it fails at once with a one-line message naming the holder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from benchbed.errors import BenchbedError

NO_WAIT_ENV = "BENCHBED_NO_WAIT"
POLL_S = 0.5


class LockBusy(BenchbedError):
    """The lock is held by another process and ``--no-wait`` was given."""

    exit_code = 3


def no_wait() -> bool:
    return os.environ.get(NO_WAIT_ENV, "").strip().lower() in ("1", "true", "yes")


def set_no_wait(value: bool) -> None:
    """``--no-wait`` for this process and the worker processes it starts."""
    if value:
        os.environ[NO_WAIT_ENV] = "1"
    else:
        os.environ.pop(NO_WAIT_ENV, None)


def holder(lock_file: Path) -> str:
    """Who holds ``lock_file``, as its holder wrote it ("pid 123 on node7 since ...")."""
    try:
        text = lock_file.read_text(errors="replace").strip()
    except OSError:
        text = ""
    return text or "another process"


def _try_lock(fd: int) -> bool:
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EAGAIN):
            return False
        raise
    return True


@contextlib.contextmanager
def hold(
    lock_file: Path,
    what: str,
    *,
    wait: bool | None = None,
    on_wait: Callable[[str], None] | None = None,
    optional: bool = False,
) -> Iterator[None]:
    """Hold the exclusive lock ``lock_file`` for ``what`` (a run, a stage) while the block runs.

    ``wait`` (default: not ``--no-wait``) waits for a holder to finish; else :class:`LockBusy` names it.
    ``on_wait`` is told once, with the holder, when the lock is busy and this process waits.
    ``optional``: where the lock file cannot be made (a read-only results tree, a file in the way) the block
    runs unlocked; nothing can be written there either, and the caller's own check says so in one line.
    """
    wait = (not no_wait()) if wait is None else wait
    try:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o664)
    except OSError:
        if not optional:
            raise
        yield
        return
    try:
        if not _try_lock(fd):
            who = holder(lock_file)
            if not wait:
                raise LockBusy(
                    f"{what} is being run by {who} (lock {lock_file}); wait for it, or run without --no-wait"
                )
            if on_wait is not None:
                on_wait(f"waiting for {who}, which is running {what} (lock {lock_file})")
            while not _try_lock(fd):  # polled, not blocking: a signal still ends the wait at once
                time.sleep(POLL_S)
        since = datetime.now(timezone.utc).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {since}\n".encode(), 0)
        try:
            yield
        finally:
            # the file stays (removing it would race a waiter that opened it); emptied: nobody holds it
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                fcntl.lockf(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
