"""One training stage of an LM recipe (generative retrieval, item-to-text), as a method declares it.

The recipe turns it into the kit's :class:`benchbed.llm.stages.StageSpec` (its ``reads`` plus ``lr`` and
``epochs``; the recipe's context and the previous stage's key come from the recipe's chain) and trains
``modules``' trainable parameters on next-token loss over the answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from benchbed.errors import ConfigError
from benchbed.llm.lora import named_trainable
from benchbed.llm.stages import StageChain, StageRun, StageSpec, param_loader
from benchbed.llm.train import TrainResult


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


StageTrainer = Callable[[LMStage, dict[str, torch.nn.Parameter], Any], tuple[dict[str, Any], dict[str, Any]]]


def run_lm_stage(
    chain: StageChain,
    spec: LMStage,
    params: dict[str, torch.nn.Parameter],
    trainer: StageTrainer,
    say: Callable[[str], None],
    who: str,
    after: str | None = None,
) -> StageRun:
    """Run ``spec`` as a stage of ``chain``: declared by its reads, lr and epochs (and the earlier stage it
    builds on, ``after``), loaded into ``params`` when it finished before, else ``trainer(spec, params,
    checkpoint_dir) -> (blob, meta)``."""
    declared = StageSpec(
        spec.name,
        {**spec.reads, "lr": spec.lr, "epochs": spec.epochs},
        after={} if after is None else {"after": after},
    )
    load_fn = param_loader(params, chain.stage(declared))
    run = chain.run(declared, lambda ckpt: trainer(spec, params, ckpt), load_fn)
    if run.loaded:
        say(f"{who}: stage {spec.name} loaded from cache ({run.stage.dir.name})")
    return run


def run_logged_stage(
    chain: StageChain,
    spec: LMStage,
    trainer: StageTrainer,
    say: Callable[[str], None],
    who: str,
    stage_log: list[dict[str, Any]],
    after: str | None = None,
) -> StageRun:
    """:func:`run_lm_stage` on the trainable parameters of ``spec.modules`` (refused when there are none: a
    stage that trains nothing is a configuration error), its log entry appended to the method's
    ``stage_log`` (the record's stages)."""
    params = named_trainable(**spec.modules)
    if not params:
        raise ConfigError(f"method {who!r}: stage {spec.name} has no trainable parameters")
    run = run_lm_stage(chain, spec, params, trainer, say, who, after)
    stage_log.append(run.log_entry())
    return run


def stage_result(
    spec: LMStage, examples: int, params: dict[str, torch.nn.Parameter], start: float, result: TrainResult
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a trained LM stage saves: its parameters (the blob) and its meta (name, examples, trainable
    parameters, seconds since ``start``, the training result without its per-evaluation history)."""
    meta = {
        "stage": spec.name,
        "examples": examples,
        "trainable": sum(x.numel() for x in params.values()),
        "seconds": round(time.perf_counter() - start, 2),
        **{k: v for k, v in result.as_dict().items() if k != "history"},
    }
    return {"params": {n: t.detach().cpu().clone() for n, t in params.items()}}, meta
