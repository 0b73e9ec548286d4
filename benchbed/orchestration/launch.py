"""``benchbed run --launcher accelerate --num-processes N``: the same command under ``accelerate launch``.

The CLI checks the run first (method, task, parameters, and that N divides ``grad_accum``: the effective
batch ``batch_size x grad_accum`` is split over the processes, :mod:`benchbed.parallel`), then starts
``accelerate launch --multi_gpu --num_processes N -m benchbed <the same arguments>`` and returns its exit
status. ``--multi_gpu`` is accelerate's torchrun launcher; on a machine without CUDA the processes join over
gloo on CPU (how the tests run it). ``--strategy fsdp`` shards the backbone's transformer blocks over the
processes instead of replicating them (:mod:`benchbed.sharding`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence

from benchbed.config import RunConfig
from benchbed.errors import ConfigError
from benchbed.parallel import LAUNCHER_ENV, STRATEGIES, STRATEGY_ENV, check_divides

LAUNCHERS = ("none", "accelerate")
LAUNCH_GRACE_S = 60.0  # seconds the ranks get to write their failure records after a signal
# options of `benchbed run` that choose the launch and must not reach the launched processes
LAUNCH_OPTIONS = {"--launcher": True, "--num-processes": True, "--strategy": True}


def strip_launch_options(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--launcher X``, ``--num-processes N``, ``--strategy S`` (also ``--opt=value``)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in LAUNCH_OPTIONS:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def check_launch(config: RunConfig, launcher: str, num_processes: int, strategy: str) -> None:
    """One-line errors before anything starts: launcher, strategy, N, and N against the method's batch."""
    from benchbed.orchestration.runner import setup

    if launcher not in LAUNCHERS:
        raise ConfigError(f"--launcher {launcher!r}: expected one of {', '.join(LAUNCHERS)}")
    if strategy not in STRATEGIES:
        raise ConfigError(f"--strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    if num_processes < 1:
        raise ConfigError(f"--num-processes {num_processes}: expected >= 1")
    if launcher == "none" and (num_processes > 1 or strategy != "ddp"):
        raise ConfigError("--num-processes > 1 and --strategy fsdp need --launcher accelerate")
    method, _task = setup(config)
    for key, value in sorted(method.params.items()):  # grad_accum, and a stage's own (stage1_grad_accum)
        if key == "grad_accum" or key.endswith("_grad_accum"):
            check_divides(int(value or 1), num_processes, f"method {config.method!r}", key)


def accelerate_command(argv: Sequence[str], num_processes: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(num_processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "benchbed",
        *strip_launch_options(argv),
    ]


def launch(argv: Sequence[str], num_processes: int, strategy: str) -> int:
    """Run the command in ``num_processes`` processes; their exit status (non-zero if any failed)."""
    try:
        import accelerate  # noqa: F401
    except ImportError as exc:
        raise ConfigError("--launcher accelerate needs accelerate: pip install accelerate") from exc
    env = {**os.environ, STRATEGY_ENV: strategy, LAUNCHER_ENV: "accelerate"}
    proc = subprocess.Popen(accelerate_command(argv, num_processes), env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:  # SIGINT, SIGTERM or SIGHUP (benchbed.orchestration.signals)
        # passed on to the launcher, which ends its ranks (each writes its failure record); killed after
        # a grace period, so no rank outlives the command
        from benchbed.orchestration import signals

        proc.send_signal(signals.received or signal.SIGINT)
        try:
            proc.wait(timeout=LAUNCH_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
