"""The settings of one training run of the kit's loop (:func:`benchbed.llm.train.train`), in their own
module so that the loop and its resume logic (:mod:`benchbed.llm.train_resume`) both read them without
importing each other."""

from __future__ import annotations

from dataclasses import dataclass


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
