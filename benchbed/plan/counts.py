"""Total and trainable parameters, from the meta-device model and the methods' real LoRA setup.

The LoRA count is not a formula: :func:`benchbed.llm.lora.add_lora` (peft) wraps the meta-device model
exactly as a run wraps the loaded one, so the targets peft picks (``c_attn`` on GPT-2) and its shapes are the
run's. Injected parts outside the backbone (CoLLM's CIE MLP, ...) are counted by the method planners.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from benchbed.llm.lora import LoraSpec, add_lora
from benchbed.plan.configs import meta_model


def total_parameters(model: nn.Module) -> int:
    """Distinct parameters (a tied LM head counts once, as ``model.parameters()`` does)."""
    return int(sum(p.numel() for p in model.parameters()))


@dataclass
class LoraCount:
    trainable: int
    targets: list[str]
    shapes: list[tuple[int, int]] = field(default_factory=list)  # (in, out) of every adapted layer


def lora_count(config: Any, spec: LoraSpec) -> LoraCount:
    """LoRA parameters of ``spec`` on a fresh meta-device model of ``config`` (peft, as a run does)."""
    model = meta_model(config)
    with warnings.catch_warnings():  # peft's Conv1D fan_in_fan_out notice on GPT-2
        warnings.simplefilter("ignore", UserWarning)
        peft_model, info = add_lora(model, spec)
    modules: list[Any] = [
        m for m in peft_model.modules() if isinstance(getattr(m, "lora_A", None), nn.ModuleDict)
    ]
    shapes = [(int(m.lora_A["default"].in_features), int(m.lora_B["default"].out_features)) for m in modules]
    return LoraCount(trainable=int(info.trainable), targets=list(info.targets), shapes=shapes)


def mlp_parameters(sizes: list[int]) -> int:
    """An MLP of Linear layers with biases: ``sizes`` = [in, hidden..., out]."""
    return int(sum(a * b + b for a, b in zip(sizes, sizes[1:], strict=False)))
