"""What resuming one :func:`benchbed.llm.train.train` call needs: its checkpoint file, the RNG state that
file carries, and the epoch's batches after the ones already consumed.

What a checkpoint holds and when it is written is the training loop's resume contract (the module doc of
``benchbed.llm.train``); this module reads, writes (atomically, ``benchbed.atomic``) and checks the file, and
captures/restores every global RNG a training step may draw from.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchbed import sharding
from benchbed.atomic import atomic_path
from benchbed.errors import ConfigError
from benchbed.llm.train_config import TrainConfig

CHECKPOINT_NAME = "train_state.pt"
CHECKPOINT_VERSION = 2


# --- RNG state ----------------------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """Every global RNG a training step may draw from: torch CPU (dropout on CPU), CUDA (dropout on GPU, only
    when CUDA is initialised: otherwise nothing drew from it), numpy's global generator, python ``random``."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- batches ------------------------------------------------------------------------------------------------
def accepts_skip(fn: Callable[..., Any]) -> bool:
    try:
        return "skip" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return False


def epoch_batches(fn: Callable[..., Iterable[Any]], epoch: int, skip: int) -> Iterator[Any]:
    """The epoch's batches after the first ``skip``: cheaply when ``fn`` takes ``skip`` or gives a list."""
    if skip and accepts_skip(fn):
        return iter(fn(epoch, skip=skip))
    source = fn(epoch)
    if skip and isinstance(source, Sequence):
        return iter(source[skip:])
    it = iter(source)
    for _ in range(skip):
        if next(it, _END) is _END:
            break
    return it


_END = object()


# --- checkpoints --------------------------------------------------------------------------------------------
def fresh_state() -> dict[str, Any]:
    return {
        "epoch": 0,
        "batch": 0,  # batches of the current epoch consumed
        "k_eval": 0,  # evaluations done in the current epoch
        "steps": 0,
        "rows": 0,
        "tokens": 0,
        "seconds": 0.0,
        "best": None,
        "best_at": None,
        "bad": 0,
        "best_state": None,
        "history": [],
        "stopped": None,
    }


def loop_signature(named: dict[str, torch.nn.Parameter], batches_per_epoch: int, cfg: TrainConfig) -> dict:
    """What a checkpoint must agree on to be resumed by this call (a stage key normally guarantees it)."""
    return {
        "params": {n: list(p.shape) for n, p in named.items()},
        "batches_per_epoch": batches_per_epoch,
        "grad_accum": cfg.grad_accum,
        "epochs": cfg.epochs,
        "evals_per_epoch": cfg.evals_per_epoch,
    }


def check_signature(path: Path, saved: dict[str, Any] | None, now: dict[str, Any]) -> None:
    if saved is None:  # a version-1 checkpoint: written at an epoch end, nothing to compare
        return
    for key in now:
        if saved.get(key) != now[key]:
            what = "trainable parameters" if key == "params" else key
            was, want = repr(saved.get(key))[:80], repr(now[key])[:80]
            raise ConfigError(
                f"checkpoint {path} was written for other {what} ({was} vs {want}); "
                f"delete {path.parent} to train this stage from scratch"
            )


def read_checkpoint(path: Path, say: Callable[[str], None]) -> dict[str, Any] | None:
    """The saved checkpoint, or None when there is none or it cannot be read (then training starts over:
    a checkpoint only saves time, the stage's result does not depend on it)."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated or foreign file; writes are atomic, so this is rare
        say(f"ignoring unreadable checkpoint {path} ({type(exc).__name__}); training from the start")
        return None
    return saved if isinstance(saved, dict) and "params" in saved else None


def load_params(named: dict[str, torch.nn.Parameter], values: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for n, p in named.items():
            sharding.assign(p, values[n])


def full_params(named: dict[str, torch.nn.Parameter]) -> dict[str, torch.Tensor]:
    """CPU copies of the parameters, whole (under FSDP a collective: every rank calls it)."""
    return {n: sharding.gather_full(p.detach()).cpu().clone() for n, p in named.items()}


def set_grads(named: dict[str, torch.nn.Parameter], grads: dict[str, torch.Tensor], main: bool) -> None:
    """Put saved pending gradients (summed over the ranks) back: the main process adds a replicated
    parameter's once; a sharded parameter's every rank takes its shard of."""
    for n, g in grads.items():
        p = named[n]
        if sharding.is_sharded(p):
            p.grad = sharding.shard_like(p, g.to(p.dtype))
        elif main:
            p.grad = g.to(p.device, p.dtype).clone()


def shard_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """After ``load_state_dict`` of whole tensors: the state of a sharded parameter becomes its shard."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            if not sharding.is_sharded(p):
                continue
            for key, value in optimizer.state.get(p, {}).items():
                if isinstance(value, torch.Tensor) and tuple(value.shape) == tuple(p.shape):
                    optimizer.state[p][key] = sharding.shard_like(p, value.to(p.dtype))


def save_checkpoint(
    path: Path,
    named: dict[str, torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    signature: dict[str, Any],
    grads: dict[str, torch.Tensor],
    full: dict[str, torch.Tensor] | None = None,
    optim: dict[str, Any] | None = None,
) -> None:
    """Write the checkpoint; ``full``/``optim``: the parameters and optimizer state gathered whole (FSDP)."""
    blob = {
        "version": CHECKPOINT_VERSION,
        "params": full if full is not None else {n: p.detach().cpu().clone() for n, p in named.items()},
        "grads": grads,
        "optimizer": optim if optim is not None else optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
        "state": state,
        "signature": signature,
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
