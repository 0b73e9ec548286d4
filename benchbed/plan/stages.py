"""What a plan is made of: one :class:`StagePlan` per training stage and per evaluation pass.

A method planner (``benchbed.plan.ctr``) fills in the data facts (examples, their token lengths from the
real split and templates, batch size, epochs, what trains); :mod:`benchbed.plan.estimate` prices them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from benchbed.plan.flops import Trainable


@dataclass
class StagePlan:
    name: str
    kind: str  # train | eval
    lengths: np.ndarray  # tokens of every example one pass reads
    batch_size: int
    epochs: int = 1
    grad_accum: int = 1
    kept: int = 1  # positions through the LM head per row
    train: Trainable | None = None
    trainable_in_backbone: int = 0  # LoRA (or the whole backbone) trained in this stage
    trainable_outside: int = 0  # injected modules trained in this stage
    extra_flops_per_row: float = 0.0  # injected modules, forward + backward, per example
    passes: int = 1  # eval: how many times the rows are scored (e.g. once per validation)
    kv_rows: int = 1  # eval: KV-cache copies per row (beam search: one per beam)
    kv_extra_tokens: int = 0  # eval: tokens generated after the prompt
    notes: list[str] = field(default_factory=list)

    @property
    def examples(self) -> int:
        return int(len(self.lengths))

    @property
    def tokens(self) -> int:
        return int(self.lengths.sum())

    def batches(self) -> list[tuple[int, int]]:
        """(rows, padded length) of every batch of one pass: length-sorted, as ``bucket_batches`` cuts."""
        order = np.sort(self.lengths)
        return [
            (len(order[i : i + self.batch_size]), int(order[i : i + self.batch_size].max()))
            for i in range(0, len(order), self.batch_size)
        ]

    @property
    def optimizer_steps(self) -> int:
        if self.kind != "train":
            return 0
        per_epoch = -(-len(self.batches()) // max(1, self.grad_accum))
        return per_epoch * self.epochs
