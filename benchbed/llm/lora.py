"""LoRA through peft, and the freezing rules of multi-stage tuning.

Defaults are TALLRec's and CoLLM's: r=8, alpha=16, dropout=0.05 on q_proj and v_proj. Architectures without
those module names (GPT-2's fused ``c_attn``) fall back to peft's per-architecture default targets; the
targets actually used are returned so they can be recorded.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from benchbed import sharding
from benchbed.errors import ConfigError


@dataclass(frozen=True)
class LoraSpec:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    targets: tuple[str, ...] = ("q_proj", "v_proj")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> LoraSpec:
        """From a method's ``lora_r``, ``lora_alpha``, ``lora_dropout``, ``lora_targets`` (a comma list)."""
        targets = tuple(t.strip() for t in str(p["lora_targets"]).split(",") if t.strip())
        return cls(
            r=int(p["lora_r"]), alpha=int(p["lora_alpha"]), dropout=float(p["lora_dropout"]), targets=targets
        )


@dataclass
class LoraInfo:
    targets: list[str]
    trainable: int
    total: int
    spec: dict[str, Any] = field(default_factory=dict)


def _module_leaf_names(model: nn.Module) -> set[str]:
    return {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}


def add_lora(model: nn.Module, spec: LoraSpec | None = None) -> tuple[nn.Module, LoraInfo]:
    """Wrap ``model`` with LoRA adapters (base weights frozen by peft); returns the peft model."""
    from peft import LoraConfig, get_peft_model

    spec = spec or LoraSpec()
    leaves = _module_leaf_names(model)
    targets: list[str] | None = [t for t in spec.targets if t in leaves]
    if not targets:
        targets = None  # peft picks the architecture's default
    try:
        config = LoraConfig(
            r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=targets, bias="none"
        )
        with warnings.catch_warnings():  # peft calls a transformers API deprecated for v6; not ours to fix
            warnings.simplefilter("ignore", FutureWarning)
            peft_model = get_peft_model(model, config)
    except ValueError as exc:
        raise ConfigError(
            f"LoRA: no target modules {list(spec.targets)} in {type(model).__name__} and peft has "
            f"no default for it; set lora_targets"
        ) from exc
    used = sorted(getattr(peft_model.peft_config["default"], "target_modules", None) or [])
    return peft_model, LoraInfo(
        targets=used,
        trainable=count_trainable(peft_model),
        total=sum(p.numel() for p in peft_model.parameters()),
        spec=spec.as_dict(),
    )


def freeze(*modules: nn.Module) -> None:
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(False)


def unfreeze(*modules: nn.Module) -> None:
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(True)


def set_trainable(module: nn.Module, predicate: Callable[[str], bool]) -> int:
    """Make exactly the parameters whose name satisfies ``predicate`` trainable; returns their count."""
    n = 0
    for name, p in module.named_parameters():
        on = bool(predicate(name))
        p.requires_grad_(on)
        n += p.numel() if on else 0
    return n


def is_lora_param(name: str) -> bool:
    return "lora_" in name


def count_trainable(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)


def named_trainable(**modules: nn.Module) -> dict[str, nn.Parameter]:
    """``{"prefix.param": p}`` over the trainable parameters of named modules (what the optimizer gets)."""
    return {
        f"{prefix}.{n}": p
        for prefix, m in modules.items()
        for n, p in m.named_parameters()
        if p.requires_grad
    }


def lora_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if is_lora_param(n)}


def load_lora_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load adapter weights saved by ``lora_state``; names must match exactly (same backbone and spec)."""
    params = {n: p for n, p in model.named_parameters() if is_lora_param(n)}
    if set(params) != set(state):
        missing = sorted(set(params) - set(state))[:1] or sorted(set(state) - set(params))[:1]
        raise ConfigError(
            f"saved LoRA weights do not match this backbone/LoRA spec (first mismatch: {missing[0]})"
        )
    with torch.no_grad():
        for n, p in params.items():
            sharding.assign(p, state[n])


def parameters_of(params: Iterable[nn.Parameter]) -> int:
    return sum(p.numel() for p in params)
