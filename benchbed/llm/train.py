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

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchbed import parallel, sharding
from benchbed.errors import ConfigError
from benchbed.llm.train_config import TrainConfig
from benchbed.llm.train_resume import (
    CHECKPOINT_NAME,
    check_signature,
    epoch_batches,
    fresh_state,
    full_params,
    load_params,
    loop_signature,
    read_checkpoint,
    save_checkpoint,
    set_grads,
    set_rng_state,
    shard_optimizer_state,
)


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
    loop = _TrainLoop(
        params,
        batches_for_epoch,
        batches_per_epoch,
        loss_fn,
        cfg,
        eval_fn=eval_fn,
        checkpoint_dir=checkpoint_dir,
        log=log,
        modules=modules,
    )
    return loop.run()


def _make_optimizer(
    named: dict[str, torch.nn.Parameter], cfg: TrainConfig, sharded: bool
) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices only (biases and norms: none)."""
    decay = [p for n, p in named.items() if p.ndim >= 2]
    no_decay = [p for n, p in named.items() if p.ndim < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        foreach=False if sharded else None,  # foreach kernels do not take shards and tensors mixed
    )


class _TrainLoop:
    """One call of :func:`train`: the optimizer, the loop position (``state``) and the steps of the loop,
    each a method, in the order the module doc describes."""

    def __init__(
        self,
        params: dict[str, torch.nn.Parameter],
        batches_for_epoch: Callable[..., Iterable[Any]],
        batches_per_epoch: int,
        loss_fn: Callable[[Any], torch.Tensor],
        cfg: TrainConfig,
        *,
        eval_fn: Callable[[], float] | None,
        checkpoint_dir: Path | None,
        log: Callable[[str], None] | None,
        modules: Iterable[torch.nn.Module],
    ) -> None:
        self.say = log or (lambda _m: None)
        self.named = {n: p for n, p in params.items() if p.requires_grad}
        if not self.named:
            raise ValueError("nothing to train: no parameter requires grad")
        self.batches_for_epoch, self.batches_per_epoch = batches_for_epoch, batches_per_epoch
        self.loss_fn, self.cfg, self.eval_fn = loss_fn, cfg, eval_fn
        self.w = parallel.world()
        parallel.check_divides(cfg.grad_accum, self.w.size, "training")
        # FSDP: a fine-tune of the blocks
        self.sharded = any(sharding.is_sharded(p) for p in self.named.values())
        self.optimizer = _make_optimizer(self.named, cfg, self.sharded)
        steps_per_epoch = max(1, math.ceil(batches_per_epoch / cfg.grad_accum))
        self.scheduler = make_scheduler(
            self.optimizer, steps_per_epoch * cfg.epochs, cfg.warmup_ratio, cfg.schedule
        )
        evals = max(1, cfg.evals_per_epoch)
        self.eval_points = {int(round(batches_per_epoch * (k + 1) / evals)) for k in range(evals)}
        self.signature = loop_signature(self.named, batches_per_epoch, cfg)
        self.state = fresh_state()
        self.ckpt = checkpoint_dir / CHECKPOINT_NAME if checkpoint_dir is not None else None
        self.resumed_at: dict[str, int] | None = None
        self.pending_rng: dict[str, Any] | None = None
        self.pending_grads: dict[str, torch.Tensor] = {}
        self.saved = self._resume()
        self.t_start = time.perf_counter() - self.state["seconds"]
        self.mods = list(modules)

    # --- the loop -------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        if self.saved is None:  # position 0 with the RNG the stage started with: a kill before step 1
            self.save()  # resumes exactly too
        while self.state["epoch"] < self.cfg.epochs and self.state["stopped"] is None:
            self._run_epoch()
        self.restore_rng()  # resumed a finished run: leave the RNG where the uninterrupted run left it
        return self._result()

    def _run_epoch(self) -> None:
        state, optimizer = self.state, self.optimizer
        epoch = state["epoch"]
        start = int(state["batch"])
        self._train_mode()
        if start == 0:
            optimizer.zero_grad(set_to_none=True)
            self.restore_rng()  # saved before this epoch's batches were asked for
        batches = epoch_batches(self.batches_for_epoch, epoch, start)
        self.restore_rng()  # saved after batch ``start``: restored once the consumed batches are skipped
        set_grads(self.named, self.pending_grads, self.w.is_main)  # saved summed over ranks: main adds once
        self.pending_grads = {}
        stop = None
        # FSDP: forward/backward passes each rank has run in the current accumulation group (the same
        # figures on every rank); before any other collective the ranks are evened out (``_even_out``)
        passes = [0] * self.w.size
        for i, batch in enumerate(batches, start=start + 1):
            stop = self._batch(epoch, i, batch, passes)
            if stop:
                break
        state["epoch"] = epoch + 1
        state["batch"] = 0
        state["k_eval"] = 0
        if stop:
            state["stopped"] = stop
        optimizer.zero_grad(set_to_none=True)  # a short epoch's trailing gradients never carry over
        self.save()

    def _batch(self, epoch: int, i: int, batch: Any, passes: list[int]) -> str | None:
        """Batch ``i`` (1-based) of the epoch: its passes, the optimizer step at a group end, an evaluation
        at an evaluation point or the time cap, a checkpoint; the reason to stop, if any."""
        state = self.state
        self._forward_backward(i, batch, passes)
        stepped = self._step_at_group_end(i, batch, passes)
        over_time = self._over_time(stepped)
        evaluated = i in self.eval_points or over_time
        stop = None
        if evaluated:
            if self._evaluate(epoch, state["k_eval"]):
                stop = "early-stop"
            state["k_eval"] += 1
            self._train_mode()
        if over_time and stop is None:
            stop = "time-budget"
        if stop:
            return stop
        every = self.cfg.checkpoint_every
        if evaluated or (stepped and every > 0 and state["steps"] % every == 0):
            self.save()
        return None

    def _forward_backward(self, i: int, batch: Any, passes: list[int]) -> None:
        """Micro-batch ``i``'s forward/backward on its owner rank; the loop position counts it everywhere."""
        w, cfg, state = self.w, self.cfg, self.state
        owner = ((i - 1) % cfg.grad_accum) % w.size
        if not w.distributed or owner == w.rank:
            loss = self.loss_fn(batch) / cfg.grad_accum
            loss.backward()
        passes[owner] += 1
        state["rows"] += len(batch)  # rows of the whole world: the same figure under any N
        state["tokens"] += int(getattr(batch, "n_tokens", 0))
        state["batch"] = i

    def _step_at_group_end(self, i: int, batch: Any, passes: list[int]) -> bool:
        """The optimizer step when batch ``i`` ends an accumulation group (or the epoch); True if it ran."""
        w, cfg = self.w, self.cfg
        group_end = i % cfg.grad_accum == 0 or i == self.batches_per_epoch
        if w.lockstep and (group_end or i in self.eval_points):
            self._even_out(batch, passes)
        if not group_end:
            return False
        passes[:] = [0] * w.size
        parallel.all_reduce_grads(self.named.values())
        if cfg.max_grad_norm:
            sharding.clip_grad_norm(list(self.named.values()), cfg.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state["steps"] += 1
        return True

    def _over_time(self, stepped: bool) -> bool:
        """Whether the wall-clock cap fired (the main process decides for all)."""
        cfg = self.cfg
        over_time = cfg.max_seconds is not None and time.perf_counter() - self.t_start >= cfg.max_seconds
        if self.w.lockstep and not stepped:
            return False  # FSDP: checked at optimizer steps only, where the ranks are even
        if cfg.max_seconds is not None:
            over_time = parallel.from_main(over_time)
        return over_time

    def _even_out(self, batch: Any, passes: list[int]) -> None:
        """FSDP: zero-loss passes on the ranks that ran fewer in this group (only the collectives count)."""
        most = max(passes)
        for _ in range(most - passes[self.w.rank]):
            (self.loss_fn(batch) * 0.0).backward()
        passes[:] = [most] * self.w.size

    def _evaluate(self, epoch: int, k: int) -> bool:
        """Evaluate, keep the best state; True when early stopping says stop."""
        state = self.state
        if self.eval_fn is None:
            state["best_state"] = None
            return False
        for m in self.mods:
            m.eval()
        metric = float(self.eval_fn())
        state["history"].append(
            {
                "epoch": epoch,
                "eval": k,
                "metric": metric,
                "steps": state["steps"],
                "seconds": round(time.perf_counter() - self.t_start, 2),
            }
        )
        improved = state["best"] is None or metric > state["best"]
        if improved:
            state["best"], state["best_at"], state["bad"] = metric, (epoch, k), 0
            state["best_state"] = full_params(self.named)
        else:
            state["bad"] += 1
        self.say(f"epoch {epoch + 1} eval {k + 1}: valid metric {metric:.4f}{' (best)' if improved else ''}")
        return state["bad"] >= self.cfg.patience

    def _train_mode(self) -> None:
        for m in self.mods:
            m.train()

    # --- checkpoints and RNG --------------------------------------------------------------------------
    def _resume(self) -> dict[str, Any] | None:
        """Read the checkpoint (every rank, before the main process writes a new one) and restore from it."""
        saved = read_checkpoint(self.ckpt, self.say) if self.ckpt is not None else None
        parallel.barrier()  # every rank has read the checkpoint before the main process writes a new one
        if saved is None:
            return None
        ckpt, state = self.ckpt, self.state
        assert ckpt is not None
        check_signature(ckpt, saved.get("signature"), self.signature)
        load_params(self.named, saved["params"])
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.sharded:
            shard_optimizer_state(self.optimizer)
        self.scheduler.load_state_dict(saved["scheduler"])
        self.state = state = {**fresh_state(), **saved["state"]}
        self.pending_rng = saved.get("rng")
        self.pending_grads = saved.get("grads") or {}
        self.resumed_at = {"epoch": state["epoch"], "batch": state["batch"], "steps": state["steps"]}
        self.say(
            f"resumed from {ckpt} at epoch {state['epoch'] + 1}, batch {state['batch']} "
            f"({state['steps']} steps done)"
        )
        return saved

    def save(self) -> None:
        if self.ckpt is None:
            return
        named, optimizer, sharded = self.named, self.optimizer, self.sharded
        self.state["seconds"] = time.perf_counter() - self.t_start
        grads = parallel.summed_grads(named)  # collective: every rank is at the same point
        full = full_params(named) if sharded else None  # FSDP: collective too
        optim = sharding.gather_full(optimizer.state_dict()) if sharded else None
        if self.w.is_main:
            save_checkpoint(
                self.ckpt, named, optimizer, self.scheduler, self.state, self.signature, grads, full, optim
            )

    def restore_rng(self) -> None:
        if self.pending_rng is not None:
            set_rng_state(self.pending_rng)
            self.pending_rng = None

    def _result(self) -> TrainResult:
        """Leave the parameters at the best evaluated state, the modules in eval mode; the result."""
        state = self.state
        stopped = state["stopped"] or "epochs"
        if state["best_state"] is not None:
            load_params(self.named, state["best_state"])
        for m in self.mods:
            m.eval()
        return TrainResult(
            best_metric=state["best"],
            best_at=tuple(state["best_at"]) if state["best_at"] else None,
            epochs_run=state["epoch"],
            steps=state["steps"],
            rows=state["rows"],
            tokens=state["tokens"],
            seconds=round(time.perf_counter() - self.t_start, 3),
            stopped=stopped,
            resumed=self.resumed_at is not None,
            resumed_at=self.resumed_at,
            time_capped=stopped == "time-budget",
            history=state["history"],
            world_size=self.w.size,
            grad_accum=self.cfg.grad_accum,
        )


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The batch-order generator of one epoch: the same on a resumed run."""
    return np.random.default_rng([seed, epoch])
