"""Slot injectors: vectors written into ``inputs_embeds`` at placeholder positions.

``SlotVectors`` (one vector per placeholder: CoLLM's ``<UserID>``/``<TargetItemID>``, seed 003's user and
history slots) and ``MultiTokenSlots`` (N vectors per placeholder: ILM's Q-Former query tokens, or an "MLP to
N tokens" baseline). Positions come from ``injectors.prompts.encode``: a placeholder is never a vocabulary
entry, so tokenization of the text around it matches the plain prompt's, and every other position keeps the
backbone's own embedding (gradients reach only the vectors' producers). Padding side does not matter:
``collate`` shifts slot positions with the padding, and position ids count real tokens only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from benchbed.errors import ConfigError
from benchbed.llm.injectors.base import Injector, ModelInputs
from benchbed.llm.injectors.prompts import Batch, EncodedPrompts, splice


def require_slots(enc: EncodedPrompts, needed: Sequence[str], *, method: str, template: str) -> None:
    """One-line error when rows of ``enc`` lack a slot the method fills (a template without its
    placeholder would silently score the text-only prompt)."""
    for name in needed:
        if name not in enc.slot_names:
            raise ConfigError(
                f"method {method!r}: template {template} has no placeholder {{{name}}}; expected "
                f"{', '.join('{' + n + '}' for n in needed)}"
            )
        col = enc.slot_names.index(name)
        missing = int((enc.slot_pos[:, col] < 0).sum())
        if missing:
            raise ConfigError(
                f"method {method!r}: {missing} of {len(enc)} prompt(s) of template {template} lack the "
                f"placeholder {{{name}}}; expected it in every template of the view"
            )


class SlotVectors(Injector):
    """One vector per slot: ``inputs(model, batch, vectors=(B, S, H) | {slot column: (B, H)})``."""

    kind: ClassVar[str] = "slots"

    def inputs(self, model: Any, batch: Batch, **signal: Any) -> ModelInputs:
        embeds = model.get_input_embeddings()(batch.input_ids)
        vectors = signal.get("vectors")
        if vectors is not None:
            embeds = splice(embeds, batch.slot_pos, vectors)
        return ModelInputs(
            inputs_embeds=embeds, attention_mask=batch.attention_mask, position_ids=batch.position_ids
        )


class MultiTokenSlots(Injector):
    """N vectors per slot: ``inputs(model, batch, vectors=(B, S, N, H))`` written at each slot's N positions
    (prompts encoded with ``encode(..., slot_width=N)``)."""

    kind: ClassVar[str] = "multi-slots"

    def __init__(self, n_tokens: int) -> None:
        super().__init__()
        if n_tokens < 1:
            raise ConfigError(f"multi-token slots: n_tokens must be >= 1, got {n_tokens}")
        self.n_tokens = int(n_tokens)

    def inputs(self, model: Any, batch: Batch, **signal: Any) -> ModelInputs:
        embeds = model.get_input_embeddings()(batch.input_ids)
        vectors = signal.get("vectors")
        if vectors is not None:
            if vectors.ndim != 4 or vectors.shape[2] != self.n_tokens:
                raise ConfigError(
                    f"multi-token slots: vectors must be (batch, slots, {self.n_tokens}, hidden); got "
                    f"{tuple(vectors.shape)}"
                )
            b, s, n, h = vectors.shape
            offsets = torch.arange(n, device=batch.slot_pos.device)
            pos = batch.slot_pos[:, :s, None] + offsets  # (B, S, N)
            pos = torch.where(batch.slot_pos[:, :s, None] >= 0, pos, torch.full_like(pos, -1))
            embeds = splice(embeds, pos.reshape(b, s * n), vectors.reshape(b, s * n, h))
        return ModelInputs(
            inputs_embeds=embeds, attention_mask=batch.attention_mask, position_ids=batch.position_ids
        )
