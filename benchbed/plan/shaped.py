"""A stage whose batches are not one token run through the LM head of the vocabulary.

:class:`benchbed.plan.stages.StagePlan` prices batches of ``rows x length`` tokens with ``kept`` positions
through the vocabulary head. CLLM4Rec's documents are a prompt and a main text run as two segments (the
second against the first's KV cache) with their own heads. Such a stage knows its batches itself
(``shapes``, from the method's own batch builders) and prices its FLOPs with ``flops``;
:mod:`benchbed.plan.estimate` asks it instead of the generic formulas, and still prices its memory at its
largest ``rows x tokens`` batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from benchbed.plan.flops import Arch
from benchbed.plan.stages import StagePlan


@dataclass
class ShapedStage(StagePlan):
    # (rows, padded tokens) of every batch of one pass, in the method's own batching
    shapes: list[tuple[int, int]] = field(default_factory=list)
    # FLOPs of one pass (all batches, forward and, for training, backward); set by the planner
    pass_flops: Callable[[Arch], float] | None = None

    def batches(self) -> list[tuple[int, int]]:
        return list(self.shapes)

    def flops(self, arch: Arch) -> float:
        assert self.pass_flops is not None
        return self.pass_flops(arch) * (self.epochs if self.kind == "train" else self.passes)


def shaped(
    name: str,
    kind: str,
    shapes: list[tuple[int, int]],
    lengths: np.ndarray,
    batch_size: int,
    pass_flops: Callable[[Arch], float],
    **kwargs: object,
) -> ShapedStage:
    """A :class:`ShapedStage` (``lengths``: real tokens of every example, for the token totals)."""
    return ShapedStage(
        name,
        kind,
        lengths,
        batch_size,
        shapes=shapes,
        pass_flops=pass_flops,
        **kwargs,  # type: ignore[arg-type]
    )
