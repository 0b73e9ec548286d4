"""The injector contract shared by the four kinds (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from benchbed.compat.hf_cache import cache_kwarg
from benchbed.errors import ConfigError
from benchbed.llm.backbone import facts
from benchbed.llm.injectors.prompts import Batch


@dataclass
class ModelInputs:
    """Keyword arguments for ``model(**inputs.kwargs())``: what every head consumes.

    ``attention_mask`` and ``position_ids`` cover the text positions (a layer prefix adds its own columns to
    the mask it returns and shifts the text positions); ``past_key_values`` carries layer prefixes.
    ``text_offset`` = how many non-text key positions precede the text (0 without a layer prefix).
    """

    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor | None = None
    past_key_values: Any = None
    text_offset: int = 0

    def kwargs(self, *, use_cache: bool | None = None) -> dict[str, Any]:
        """Forward kwargs; the cache under the keyword this transformers version takes
        (``compat.hf_cache``). ``use_cache`` defaults to whether a cache is passed in (a head that decodes
        on from the prompt sets it True)."""
        out: dict[str, Any] = {"inputs_embeds": self.inputs_embeds, "attention_mask": self.attention_mask}
        if self.position_ids is not None:
            out["position_ids"] = self.position_ids
        if self.past_key_values is not None:
            out[cache_kwarg()] = self.past_key_values
        out["use_cache"] = self.past_key_values is not None if use_cache is None else use_cache
        return out


class Injector(torch.nn.Module):
    """Base of every injector: ``check`` refuses unsupported backbones, ``inputs`` builds the forward kwargs.

    Subclasses set ``kind`` and ``families`` (the backbone ``model_type`` values they support; empty = all)
    and implement ``inputs(model, batch, **signal)``. Trainable parameters of an injector are its own
    (``parameters()``); the backbone stays as the method froze it.
    """

    kind: ClassVar[str] = "none"
    families: ClassVar[frozenset[str]] = frozenset()

    def check(self, model: Any, method: str, backbone: str) -> None:
        """One-line ``ConfigError`` naming the method, backbone and what was expected."""
        family = facts.family(model)
        if self.families and family not in self.families:
            raise ConfigError(
                f"method {method!r}: the {self.kind} injector does not support backbone {backbone!r} "
                f"(model_type {family!r}); expected one of {sorted(self.families)}"
            )

    def inputs(self, model: Any, batch: Batch, **signal: Any) -> ModelInputs:
        raise NotImplementedError


def plain_inputs(model: Any, batch: Batch) -> ModelInputs:
    """The backbone's own embeddings: what a text-only method (TALLRec, p5-random) feeds its head."""
    return ModelInputs(
        inputs_embeds=model.get_input_embeddings()(batch.input_ids),
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
    )
