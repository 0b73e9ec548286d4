"""One training stage of an LM recipe (generative retrieval, item-to-text), as a method declares it.

The recipe turns it into the kit's :class:`benchbed.llm.stages.StageSpec` (its ``reads`` plus ``lr`` and
``epochs``; the recipe's context and the previous stage's key come from the recipe's chain) and trains
``modules``' trainable parameters on next-token loss over the answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class LMStage:
    """A stage's name, what it reads besides the recipe's context, the modules it trains, how long.

    The keyword fields default to the recipe's behaviour: ``use_slots`` (generative: the slots hold the
    method's vectors), ``before`` (e.g. freeze or unfreeze the LLM before the stage's parameters are read),
    ``prompt_mode`` (item-to-text: how items enter this stage's prompts; None = the method's ``mode``),
    ``schedule`` (the lr decay after warmup; None = cosine). ``valid_users``, ``evals_per_epoch`` and
    ``patience`` (generative) override the recipe's early stopping; a method that sets them names them in
    ``reads`` (ILM stage 2: linear decay and the best dev NDCG@10 checkpoint, §4.4 / T8)."""

    name: str
    reads: dict[str, Any]  # what the stage reads besides the recipe's context (see StageSpec.reads)
    modules: dict[str, torch.nn.Module]  # name -> module whose requires_grad parameters are trained
    lr: float
    epochs: int
    use_slots: bool = False
    before: Callable[[], None] | None = None
    prompt_mode: str | None = None
    schedule: str | None = None
    valid_users: int | None = None
    evals_per_epoch: int | None = None
    patience: int | None = None
