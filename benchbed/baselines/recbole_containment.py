"""Keep RecBole contained while it runs: argv hidden, its root-logger records redirected, cwd in scratch.

RecBole logs to the root logger directly, parses ``--key=value`` from ``sys.argv`` and opens
``./log_tensorboard/`` in the working directory; :func:`recbole_scope` undoes all three afterwards.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchbed.api import RunContext
from benchbed.compat import recbole_shims

RECBOLE_LOGGER = "benchbed.recbole"


# Keeping RecBole contained
# ------------------------------------------------------------------------------------------------------
class _RootRedirect(logging.Filter):
    """Move records logged *directly* on the root logger (RecBole's ``getLogger()``) to our logger."""

    def __init__(self, target: logging.Logger) -> None:
        super().__init__()
        self.target = target

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "root":
            self.target.handle(record)
            return False
        return True


class _ContextHandler(logging.Handler):
    """Forwards RecBole's messages to ``RunContext.say`` (all of them when verbose, else warnings)."""

    def __init__(self, ctx: RunContext | None) -> None:
        super().__init__()
        self.ctx = ctx

    def emit(self, record: logging.LogRecord) -> None:
        if self.ctx is None:
            return
        if record.levelno >= logging.WARNING or self.ctx.verbose > 0:
            import re

            self.ctx.say("recbole: " + re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage()))


@contextmanager
def quiet_recbole() -> Iterator[None]:
    """Silence warnings raised from RecBole's own code (pandas/torch deprecations of its internals)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"recbole(\.|$)")
        # Config eval()s every string value (paths with hashes such as "9e7d..." warn while compiling)
        warnings.filterwarnings("ignore", category=SyntaxWarning, module="<string>")
        # numpy 2 on RecBole's np.argsort(<torch tensor>) calls (attributed to numpy, caused by RecBole)
        warnings.filterwarnings(
            "ignore", message="__array_wrap__ must accept context", category=DeprecationWarning
        )
        yield


@contextmanager
def recbole_scope(work_dir: Path, ctx: RunContext | None = None) -> Iterator[None]:
    """Run RecBole code with argv hidden, logging redirected, cwd in ``work_dir``; restore everything."""
    recbole_shims.apply()
    work_dir = Path(work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    target = logging.getLogger(RECBOLE_LOGGER)
    target.propagate = False
    handler = _ContextHandler(ctx)
    target.addHandler(handler)
    target.setLevel(logging.DEBUG)
    root = logging.getLogger()
    redirect = _RootRedirect(target)
    root.addFilter(redirect)
    old_level = root.level
    if ctx is not None and ctx.verbose > 0:
        root.setLevel(logging.INFO)
    old_argv = sys.argv
    sys.argv = [old_argv[0] if old_argv else "benchbed"]  # RecBole's Config parses --key=value from argv
    old_cuda = os.environ.get("CUDA_VISIBLE_DEVICES")  # Config overwrites it with its gpu_id
    old_cwd = os.getcwd()
    os.chdir(work_dir)  # Trainer opens ./log_tensorboard/ unconditionally
    try:
        with quiet_recbole():
            yield
    finally:
        os.chdir(old_cwd)
        if old_cuda is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = old_cuda
        sys.argv = old_argv
        root.setLevel(old_level)
        root.removeFilter(redirect)
        target.removeHandler(handler)
