"""One training loop for every LLM stage: AdamW + linear warmup + cosine decay, gradient accumulation,
early stopping on a validation metric (higher is better, e.g. valid AUC), a time budget, and a checkpoint
after every evaluation so that an interrupted stage resumes where it stopped instead of starting over.

The loop knows nothing about prompts: it gets named trainable parameters, a function that yields batches for
an epoch (deterministic per epoch, so resuming replays the same order), a loss function and an eval function.
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

from benchbed.atomic import atomic_path

CHECKPOINT_NAME = "train_state.pt"


@dataclass
class TrainConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-3  # CoLLM: 1e-3 for all LLM-based methods
    epochs: int = 1
    warmup_ratio: float = 0.05
    grad_accum: int = 1
    patience: int = 20  # evaluations without improvement before stopping (CoLLM: 20 epochs)
    evals_per_epoch: int = 1
    max_seconds: float | None = None  # stop (then evaluate) once a stage has trained this long
    max_grad_norm: float | None = 1.0


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
    history: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows_per_s"] = self.rows / self.seconds if self.seconds > 0 else None
        d["tokens_per_s"] = self.tokens / self.seconds if self.seconds > 0 else None
        return d


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float) -> Any:
    from transformers import get_cosine_schedule_with_warmup

    warmup = int(math.ceil(total_steps * warmup_ratio))
    return get_cosine_schedule_with_warmup(optimizer, warmup, max(total_steps, 1))


def train(
    params: dict[str, torch.nn.Parameter],
    batches_for_epoch: Callable[[int], Iterable[Any]],
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

    ``modules`` are put in train mode while stepping and eval mode while evaluating. Batches must have
    ``len()`` (rows) and may have ``n_tokens``.
    """
    say = log or (lambda _m: None)
    named = {n: p for n, p in params.items() if p.requires_grad}
    if not named:
        raise ValueError("nothing to train: no parameter requires grad")
    decay = [p for n, p in named.items() if p.ndim >= 2]
    no_decay = [p for n, p in named.items() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
    )
    steps_per_epoch = max(1, math.ceil(batches_per_epoch / cfg.grad_accum))
    scheduler = make_scheduler(optimizer, steps_per_epoch * cfg.epochs, cfg.warmup_ratio)
    evals = max(1, cfg.evals_per_epoch)
    eval_points = {int(round(batches_per_epoch * (k + 1) / evals)) for k in range(evals)}

    state = _fresh_state()
    ckpt = checkpoint_dir / CHECKPOINT_NAME if checkpoint_dir is not None else None
    resumed = False
    if ckpt is not None and ckpt.is_file():
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)
        _load_params(named, saved["params"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state = saved["state"]
        resumed = True
        say(f"resumed from {ckpt} after epoch {state['epoch']} ({state['steps']} steps)")

    t_start = time.perf_counter() - state["seconds"]
    stopped = state.get("stopped") or "epochs"
    mods = list(modules)

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
            state["best_state"] = {n: p.detach().cpu().clone() for n, p in named.items()}
        else:
            state["bad"] += 1
        say(f"epoch {epoch + 1} eval {k + 1}: valid metric {metric:.4f}{' (best)' if improved else ''}")
        return state["bad"] >= cfg.patience

    while state["epoch"] < cfg.epochs and state.get("stopped") is None:
        epoch = state["epoch"]
        for m in mods:
            m.train()
        optimizer.zero_grad(set_to_none=True)
        k_eval = 0
        stop = None
        for i, batch in enumerate(batches_for_epoch(epoch), start=1):
            loss = loss_fn(batch) / cfg.grad_accum
            loss.backward()
            state["rows"] += len(batch)
            state["tokens"] += int(getattr(batch, "n_tokens", 0))
            if i % cfg.grad_accum == 0 or i == batches_per_epoch:
                if cfg.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(list(named.values()), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state["steps"] += 1
            over_time = cfg.max_seconds is not None and time.perf_counter() - t_start > cfg.max_seconds
            if i in eval_points or over_time:
                if evaluate(epoch, k_eval):
                    stop = "early-stop"
                k_eval += 1
                for m in mods:
                    m.train()
            if over_time and stop is None:
                stop = "time-budget"
            if stop:
                break
        state["epoch"] = epoch + 1
        state["seconds"] = time.perf_counter() - t_start
        if stop:
            state["stopped"] = stop
        if ckpt is not None:
            _save(ckpt, named, optimizer, scheduler, state)
    stopped = state.get("stopped") or "epochs"
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
        resumed=resumed,
        history=state["history"],
    )


def _fresh_state() -> dict[str, Any]:
    return {
        "epoch": 0,
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


def _load_params(named: dict[str, torch.nn.Parameter], values: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for n, p in named.items():
            p.copy_(values[n].to(p.device, p.dtype))


def _save(
    path: Path, named: dict[str, torch.nn.Parameter], optimizer, scheduler, state: dict[str, Any]
) -> None:
    blob = {
        "params": {n: p.detach().cpu().clone() for n, p in named.items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "state": state,
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The batch-order generator of one epoch: the same on a resumed run."""
    return np.random.default_rng([seed, epoch])
