"""``p5-random``: the text-only generative baseline (OpenP5-R, the "Llama-R" rows of seed 003's tables).

The backbone is trained on the templated examples with items spelled by the split's item index (random ids
from 1001 by default): it must learn the id strings themselves, so ids carry no collaborative signal beyond
what the model memorises. With the ``tiny`` preset this is a small decoder trained from scratch (``tuning:
full``, what ILM's OpenP5 experiments did with an 8-layer decoder); for a pretrained LLM use ``tuning: lora``
(OpenP5's LLaMA runs).
"""

from __future__ import annotations

from typing import Any, ClassVar

from benchbed.api import RunContext
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.llm.generative_recipe import GenerativeLM, StageSpec
from benchbed.llm.lora import LoraSpec, add_lora, set_trainable

TUNINGS = ("full", "lora")


def text_stage(method: GenerativeLM, tuning: str, lora: LoraSpec) -> StageSpec:
    """The text-only stage (also embedproj's warm start on a randomly initialised backbone): same identity
    for the same settings, so the second method loads it from the stage cache."""
    if tuning not in TUNINGS:
        raise ConfigError(f"method {method.name!r}: tuning must be one of {list(TUNINGS)}, got {tuning!r}")
    if tuning == "full":
        set_trainable(method.model, lambda _n: True)
    else:
        method.model, _ = add_lora(method.model, lora)
        method.bb.model = method.model
    return StageSpec(
        name="generative-text",
        identity={"tuning": tuning, "lora": lora.as_dict() if tuning == "lora" else None},
        modules={"model": method.model},
        use_slots=False,
        lr=float(method.params["lr"]),
        epochs=int(method.params["epochs"]),
    )


class P5Random(GenerativeLM):
    """Text-only generative baseline (OpenP5-R): the LLM writes random item ids; constrained beam search."""

    name: ClassVar[str] = "p5-random"
    defaults: ClassVar[dict[str, Any]] = {
        **GenerativeLM.common_defaults,
        "tuning": "full",  # full fine-tuning (from scratch on `tiny`); "lora" for pretrained LLMs
        "lora_r": 8,  # LoRA settings when tuning = lora (TALLRec/CoLLM defaults)
        "lora_alpha": 16,
        "lora_dropout": 0.05,
    }

    def train_stages(self, split: Split, ctx: RunContext) -> None:
        p = self.params
        lora = LoraSpec(r=int(p["lora_r"]), alpha=int(p["lora_alpha"]), dropout=float(p["lora_dropout"]))
        self.run_stage(text_stage(self, str(p["tuning"]), lora))
