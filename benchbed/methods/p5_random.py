"""``p5-random``: the text-only generative baseline (OpenP5-R, the "Llama-R" rows of seed 003's tables).

The backbone is trained on the templated examples with items spelled by the split's item index (random ids
from 1001 by default): it must learn the id strings themselves, so ids carry no collaborative signal beyond
what the model memorises. With the ``tiny`` preset this is a small decoder trained from scratch (``tuning:
full``, what ILM's OpenP5 experiments did with an 8-layer decoder); for a pretrained LLM use ``tuning: lora``
(OpenP5's LLaMA runs).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from benchbed.api import RunContext
from benchbed.cards import MethodCard, generative_llm
from benchbed.data.schema import Split
from benchbed.llm.lora import LoraSpec
from benchbed.llm.recipes.generative import GenerativeLM
from benchbed.llm.recipes.generative_params import GenerativeParams
from benchbed.llm.recipes.generative_text_stage import text_stage
from benchbed.param_sets import ParamSet

__all__ = ["P5Random", "P5RandomParams", "warm_start_companion"]


@dataclass(frozen=True)
class P5RandomParams(GenerativeParams):
    """The recipe's settings and how the LLM trains: full (from scratch on ``tiny``) or LoRA."""

    tuning: str = "full"  # full fine-tuning (from scratch on `tiny`); "lora" for pretrained LLMs
    lora_r: int = 8  # LoRA settings when tuning = lora (TALLRec/CoLLM defaults)
    lora_alpha: int = 16
    lora_dropout: float = 0.05


def warm_start_companion(params: dict[str, Any]) -> dict[str, Any]:
    """p5-random's parameters that give the same text stage as ``params`` (the companion run): only what
    differs from p5-random's defaults, so ``benchbed run --method p5-random`` is then the same run."""
    keys = [*(f.name for f in fields(GenerativeParams)), "tuning"]
    return {k: params[k] for k in keys if params[k] != P5Random.defaults[k]}


class P5Random(GenerativeLM):
    """Text-only generative baseline (OpenP5-R): the LLM writes random item ids; constrained beam search."""

    name: ClassVar[str] = "p5-random"
    card: ClassVar[MethodCard] = generative_llm(
        "OpenP5 random indexing; seed 003's Llama-R row", "none", ("tuning=lora",)
    )
    Params: ClassVar[type[ParamSet]] = P5RandomParams
    p: P5RandomParams

    def train_stages(self, split: Split, ctx: RunContext) -> None:
        p = self.p
        lora = LoraSpec(r=p.lora_r, alpha=p.lora_alpha, dropout=float(p.lora_dropout))
        self.run_stage(text_stage(self, p.tuning, lora))
