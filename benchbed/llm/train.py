"""One training loop for every LLM stage: AdamW + linear warmup + cosine decay, gradient accumulation,
early stopping on a validation metric (higher is better, e.g. valid AUC), budgets in data terms (epochs of a
fixed row sample), and checkpoints from which an interrupted stage resumes *bit-identically*.

The loop knows nothing about prompts: it gets named trainable parameters, a function that yields batches for
an epoch (deterministic per epoch, e.g. from :func:`epoch_rng`, so resuming replays the same order), a loss
function and an eval function.

Resume contract. A checkpoint (``train_state.pt``, written atomically) holds the trained parameters, the
optimizer and scheduler, the pending (accumulated, not yet applied) gradients, the RNG state (torch CPU,
CUDA when initialised, numpy's global generator, python ``random``) and the loop position (epoch, batches
consumed in the epoch, optimizer steps, evaluations done in the epoch), plus the early-stopping state and
history. It is written at the start, every ``checkpoint_every`` optimizer steps, after every evaluation and
at every epoch end.
Data parallel (``accelerate launch``, :mod:`benchbed.parallel`): with N processes every rank walks the same
batch sequence; micro-batch ``j`` of an accumulation group (``grad_accum`` micro-batches per optimizer step)
runs forward/backward on rank ``j % N`` only, and the gradients are summed over the ranks before the step.
So the effective batch is ``batch_size x grad_accum`` whatever N is (the paper's, when its config is kept),
each process accumulates ``grad_accum / N`` micro-batches (N must divide ``grad_accum``), and the optimizer
sees the gradient one process would have summed, up to float summation order. What differs: dropout masks
(each rank draws from its own copy of the global RNG). Under FSDP (``--strategy fsdp``) every block forward
is a collective, so before an optimizer step or an evaluation the ranks that ran fewer passes in the group
run zero-loss passes on their last batch (gradient 0, same collectives), and the time cap is checked at
optimizer steps only. The loop position, parameters and optimizer state
are the same on every rank, so the main process alone writes checkpoints (pending gradients summed over the
ranks first) and a checkpoint resumes under any N that divides ``grad_accum``.

On resume the epoch's batches are requested again and the consumed ones skipped; the RNG is restored *after*
the skip, so LoRA dropout (torch's global RNG) draws the same masks as in an uninterrupted run. On CPU the two
runs end equal to the bit (tests/test_llm_stages.py); on CUDA, kernels that are not deterministic may differ.

Wall-clock caps: ``max_seconds`` is off by default, because a time cap makes the result depend on how busy
the machine is. When a user sets one and it fires, the result says ``stopped="time-budget"`` and
``time_capped=True``; callers put ``record.info["time_capped"] = True`` into the run record, and the
leaderboard marks such rows (``benchbed.results.render``).
"""

from __future__ import annotations

import inspect
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchbed import parallel, sharding
from benchbed.atomic import atomic_path
from benchbed.errors import ConfigError

CHECKPOINT_NAME = "train_state.pt"
CHECKPOINT_VERSION = 2


@dataclass
class TrainConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-3  # CoLLM: 1e-3 for all LLM-based methods
    epochs: int = 1
    warmup_ratio: float = 0.05
    grad_accum: int = 1
    patience: int = 20  # evaluations without improvement before stopping (CoLLM: 20 epochs)
    evals_per_epoch: int = 1
    # Off by default (a wall-clock cap makes results machine-dependent); when set, training stops once a
    # stage has run this long (checked after every batch, so 0.0 stops after the first one) and evaluates.
    max_seconds: float | None = None
    max_grad_norm: float | None = 1.0
    schedule: str = "cosine"  # after warmup: cosine | linear | constant (``make_scheduler``)
    # optimizer steps between checkpoints (there is always one at the start, at every evaluation and at every
    # epoch end); 50 keeps the replay after a kill short while the saves cost little next to 50 steps
    checkpoint_every: int = 50


@dataclass
class TrainResult:
    best_metric: float | None
    best_at: tuple[int, int] | None  # (epoch, evaluation within epoch)
    epochs_run: int
    steps: int
    rows: int
    tokens: int
    seconds: float
    stopped: str  # "epochs", "early-stop", "time-budget"
    resumed: bool = False
    # where the run resumed: {"epoch": e, "batch": batches of epoch e already consumed, "steps": n}
    resumed_at: dict[str, int] | None = None
    # True when the wall-clock cap (``max_seconds``) ended training: the caller records
    # ``record.info["time_capped"] = True`` so the leaderboard marks the row
    time_capped: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    # data parallel: processes, and micro-batches per optimizer step over all of them (``grad_accum``)
    world_size: int = 1
    grad_accum: int = 1

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows_per_s"] = self.rows / self.seconds if self.seconds > 0 else None
        d["tokens_per_s"] = self.tokens / self.seconds if self.seconds > 0 else None
        return d


SCHEDULES = ("cosine", "linear", "constant")


def make_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float, schedule: str = "cosine"
) -> Any:
    """Linear warmup, then cosine decay (CoLLM/TALLRec), linear decay (RA-Rec §4.1.4) or a constant lr
    (CLLM4Rec's code)."""
    from transformers import (
        get_constant_schedule_with_warmup,
        get_cosine_schedule_with_warmup,
        get_linear_schedule_with_warmup,
    )

    if schedule not in SCHEDULES:
        raise ConfigError(f"lr schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")
    warmup = int(math.ceil(total_steps * warmup_ratio))
    if schedule == "constant":
        return get_constant_schedule_with_warmup(optimizer, warmup)
    make = get_linear_schedule_with_warmup if schedule == "linear" else get_cosine_schedule_with_warmup
    return make(optimizer, warmup, max(total_steps, 1))


def train(
    params: dict[str, torch.nn.Parameter],
    batches_for_epoch: Callable[..., Iterable[Any]],
    batches_per_epoch: int,
    loss_fn: Callable[[Any], torch.Tensor],
    cfg: TrainConfig,
    *,
    eval_fn: Callable[[], float] | None = None,
    checkpoint_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
    modules: Iterable[torch.nn.Module] = (),
) -> TrainResult:
    """Train ``params`` and leave them at the best evaluated state (the last one without ``eval_fn``).

    ``batches_for_epoch(epoch)`` must give the same batches in the same order whenever it is called for an
    epoch, and must not draw from the global RNGs. To make resuming cheap it may accept a keyword ``skip``
    (``batches_for_epoch(epoch, skip=i)`` then yields the batches after the first ``i``); otherwise a list is
    sliced and any other iterable is advanced past the first ``i``. ``modules`` are put in train mode while
    stepping and eval mode while evaluating. Batches must have ``len()`` (rows) and may have ``n_tokens``.
    With ``checkpoint_dir`` an interrupted call resumes where it stopped when called again (see module doc).
    """
    say = log or (lambda _m: None)
    named = {n: p for n, p in params.items() if p.requires_grad}
    if not named:
        raise ValueError("nothing to train: no parameter requires grad")
    w = parallel.world()
    parallel.check_divides(cfg.grad_accum, w.size, "training")
    sharded = any(sharding.is_sharded(p) for p in named.values())  # FSDP: a fine-tune of the blocks
    decay = [p for n, p in named.items() if p.ndim >= 2]
    no_decay = [p for n, p in named.items() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        foreach=False if sharded else None,  # foreach kernels do not take shards and tensors mixed
    )
    steps_per_epoch = max(1, math.ceil(batches_per_epoch / cfg.grad_accum))
    scheduler = make_scheduler(optimizer, steps_per_epoch * cfg.epochs, cfg.warmup_ratio, cfg.schedule)
    evals = max(1, cfg.evals_per_epoch)
    eval_points = {int(round(batches_per_epoch * (k + 1) / evals)) for k in range(evals)}
    signature = _signature(named, batches_per_epoch, cfg)

    state = _fresh_state()
    ckpt = checkpoint_dir / CHECKPOINT_NAME if checkpoint_dir is not None else None
    resumed_at: dict[str, int] | None = None
    pending_rng: dict[str, Any] | None = None
    pending_grads: dict[str, torch.Tensor] = {}
    saved = _read_checkpoint(ckpt, say) if ckpt is not None else None
    parallel.barrier()  # every rank has read the checkpoint before the main process writes a new one
    if saved is not None:
        assert ckpt is not None
        _check_signature(ckpt, saved.get("signature"), signature)
        _load_params(named, saved["params"])
        optimizer.load_state_dict(saved["optimizer"])
        if sharded:
            _shard_optimizer_state(optimizer)
        scheduler.load_state_dict(saved["scheduler"])
        state = {**_fresh_state(), **saved["state"]}
        pending_rng = saved.get("rng")
        pending_grads = saved.get("grads") or {}
        resumed_at = {"epoch": state["epoch"], "batch": state["batch"], "steps": state["steps"]}
        say(
            f"resumed from {ckpt} at epoch {state['epoch'] + 1}, batch {state['batch']} "
            f"({state['steps']} steps done)"
        )

    t_start = time.perf_counter() - state["seconds"]
    mods = list(modules)

    def save() -> None:
        if ckpt is not None:
            state["seconds"] = time.perf_counter() - t_start
            grads = parallel.summed_grads(named)  # collective: every rank is at the same point
            full = _full_params(named) if sharded else None  # FSDP: collective too
            optim = sharding.gather_full(optimizer.state_dict()) if sharded else None
            if w.is_main:
                _save(ckpt, named, optimizer, scheduler, state, signature, grads, full, optim)

    def restore_rng() -> None:
        nonlocal pending_rng
        if pending_rng is not None:
            set_rng_state(pending_rng)
            pending_rng = None

    def evaluate(epoch: int, k: int) -> bool:
        """Evaluate, keep the best state; True when early stopping says stop."""
        if eval_fn is None:
            state["best_state"] = None
            return False
        for m in mods:
            m.eval()
        metric = float(eval_fn())
        state["history"].append(
            {
                "epoch": epoch,
                "eval": k,
                "metric": metric,
                "steps": state["steps"],
                "seconds": round(time.perf_counter() - t_start, 2),
            }
        )
        improved = state["best"] is None or metric > state["best"]
        if improved:
            state["best"], state["best_at"], state["bad"] = metric, (epoch, k), 0
            state["best_state"] = _full_params(named)
        else:
            state["bad"] += 1
        say(f"epoch {epoch + 1} eval {k + 1}: valid metric {metric:.4f}{' (best)' if improved else ''}")
        return state["bad"] >= cfg.patience

    def even_out(batch: Any, passes: list[int]) -> None:
        """FSDP: zero-loss passes on the ranks that ran fewer in this group (only the collectives count)."""
        most = max(passes)
        for _ in range(most - passes[w.rank]):
            (loss_fn(batch) * 0.0).backward()
        passes[:] = [most] * w.size

    if saved is None:
        save()  # position 0 with the RNG the stage started with: a kill before step 1 resumes exactly too

    while state["epoch"] < cfg.epochs and state["stopped"] is None:
        epoch = state["epoch"]
        start = int(state["batch"])
        for m in mods:
            m.train()
        if start == 0:
            optimizer.zero_grad(set_to_none=True)
            restore_rng()  # saved before this epoch's batches were asked for
        batches = _epoch_batches(batches_for_epoch, epoch, start)
        restore_rng()  # saved after batch ``start``: restored once the consumed batches are skipped
        _set_grads(named, pending_grads, w.is_main)  # saved summed over ranks: main adds them once
        pending_grads = {}
        stop = None
        # FSDP: forward/backward passes each rank has run in the current accumulation group (the same
        # figures on every rank); before any other collective the ranks are evened out (``even_out``)
        passes = [0] * w.size
        for i, batch in enumerate(batches, start=start + 1):
            owner = ((i - 1) % cfg.grad_accum) % w.size
            if not w.distributed or owner == w.rank:
                loss = loss_fn(batch) / cfg.grad_accum
                loss.backward()
            passes[owner] += 1
            state["rows"] += len(batch)  # rows of the whole world: the same figure under any N
            state["tokens"] += int(getattr(batch, "n_tokens", 0))
            state["batch"] = i
            stepped = False
            group_end = i % cfg.grad_accum == 0 or i == batches_per_epoch
            if w.lockstep and (group_end or i in eval_points):
                even_out(batch, passes)
            if group_end:
                passes[:] = [0] * w.size
                parallel.all_reduce_grads(named.values())
                if cfg.max_grad_norm:
                    sharding.clip_grad_norm(list(named.values()), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state["steps"] += 1
                stepped = True
            over_time = cfg.max_seconds is not None and time.perf_counter() - t_start >= cfg.max_seconds
            if w.lockstep and not stepped:
                over_time = False  # FSDP: checked at optimizer steps only, where the ranks are even
            elif cfg.max_seconds is not None:
                over_time = parallel.from_main(over_time)
            evaluated = i in eval_points or over_time
            if evaluated:
                if evaluate(epoch, state["k_eval"]):
                    stop = "early-stop"
                state["k_eval"] += 1
                for m in mods:
                    m.train()
            if over_time and stop is None:
                stop = "time-budget"
            if stop:
                break
            every = cfg.checkpoint_every
            if evaluated or (stepped and every > 0 and state["steps"] % every == 0):
                save()
        state["epoch"] = epoch + 1
        state["batch"] = 0
        state["k_eval"] = 0
        if stop:
            state["stopped"] = stop
        optimizer.zero_grad(set_to_none=True)  # a short epoch's trailing gradients never carry over
        save()
    restore_rng()  # resumed a finished run: leave the RNG where the uninterrupted run left it
    stopped = state["stopped"] or "epochs"
    if state["best_state"] is not None:
        _load_params(named, state["best_state"])
    for m in mods:
        m.eval()
    return TrainResult(
        best_metric=state["best"],
        best_at=tuple(state["best_at"]) if state["best_at"] else None,
        epochs_run=state["epoch"],
        steps=state["steps"],
        rows=state["rows"],
        tokens=state["tokens"],
        seconds=round(time.perf_counter() - t_start, 3),
        stopped=stopped,
        resumed=resumed_at is not None,
        resumed_at=resumed_at,
        time_capped=stopped == "time-budget",
        history=state["history"],
        world_size=w.size,
        grad_accum=cfg.grad_accum,
    )


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
def _accepts_skip(fn: Callable[..., Any]) -> bool:
    try:
        return "skip" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return False


def _epoch_batches(fn: Callable[..., Iterable[Any]], epoch: int, skip: int) -> Iterator[Any]:
    """The epoch's batches after the first ``skip``: cheaply when ``fn`` takes ``skip`` or gives a list."""
    if skip and _accepts_skip(fn):
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
def _fresh_state() -> dict[str, Any]:
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


def _signature(named: dict[str, torch.nn.Parameter], batches_per_epoch: int, cfg: TrainConfig) -> dict:
    """What a checkpoint must agree on to be resumed by this call (a stage key normally guarantees it)."""
    return {
        "params": {n: list(p.shape) for n, p in named.items()},
        "batches_per_epoch": batches_per_epoch,
        "grad_accum": cfg.grad_accum,
        "epochs": cfg.epochs,
        "evals_per_epoch": cfg.evals_per_epoch,
    }


def _check_signature(path: Path, saved: dict[str, Any] | None, now: dict[str, Any]) -> None:
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


def _read_checkpoint(path: Path, say: Callable[[str], None]) -> dict[str, Any] | None:
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


def _load_params(named: dict[str, torch.nn.Parameter], values: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for n, p in named.items():
            sharding.assign(p, values[n])


def _full_params(named: dict[str, torch.nn.Parameter]) -> dict[str, torch.Tensor]:
    """CPU copies of the parameters, whole (under FSDP a collective: every rank calls it)."""
    return {n: sharding.gather_full(p.detach()).cpu().clone() for n, p in named.items()}


def _set_grads(named: dict[str, torch.nn.Parameter], grads: dict[str, torch.Tensor], main: bool) -> None:
    """Put saved pending gradients (summed over the ranks) back: the main process adds a replicated
    parameter's once; a sharded parameter's every rank takes its shard of."""
    for n, g in grads.items():
        p = named[n]
        if sharding.is_sharded(p):
            p.grad = sharding.shard_like(p, g.to(p.dtype))
        elif main:
            p.grad = g.to(p.device, p.dtype).clone()


def _shard_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """After ``load_state_dict`` of whole tensors: the state of a sharded parameter becomes its shard."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            if not sharding.is_sharded(p):
                continue
            for key, value in optimizer.state.get(p, {}).items():
                if isinstance(value, torch.Tensor) and tuple(value.shape) == tuple(p.shape):
                    optimizer.state[p][key] = sharding.shard_like(p, value.to(p.dtype))


def _save(
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


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The batch-order generator of one epoch: the same on a resumed run."""
    return np.random.default_rng([seed, epoch])
