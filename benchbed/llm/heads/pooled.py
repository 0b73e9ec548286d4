"""Pooled head: one vector per row from the text positions, for two-tower dot-product scoring (RA-Rec).

RA-Rec scores a user against an item as the dot product of their final representations [RA-Rec Eq. 12] and
does not say how a sequence becomes one vector; the protocol (shared/protocols/rarec.md §3b) recommends mean
pooling for SentenceBERT-style encoders and the last token for GPT-2/OPT decoders. Mean pooling is
sentence-transformers' own: all-MiniLM-L6-v2's ``1_Pooling/config.json`` sets ``pooling_mode_mean_tokens``
(a mean over the attention-masked token states, [CLS] and [SEP] included), followed by its ``Normalize``
module (L2), hence ``normalize`` here.

Only text positions are pooled: with a layer prefix (``ModelInputs.text_offset > 0``) the mask has the
prefix's columns first while the hidden states hold the text positions alone, so the mask is cut at
``text_offset``. Positions come from the mask, not from the padding side, so left padding, right padding and
multi-token slots (rows longer than ``Batch.input_ids``) all pool the same real tokens.

The helpers (``hidden_states``, ``last_positions``...) are shared with the multinomial head; the body
unwrap (``backbone_body``) and the encoder list are the backbone facts' (``benchbed.llm.backbone.facts``);
``backbone_body`` stays importable from here.
"""

from __future__ import annotations

from typing import Any

import torch

from benchbed.errors import ConfigError
from benchbed.llm.backbone.facts import backbone_body, is_encoder
from benchbed.llm.injectors.base import ModelInputs
from benchbed.llm.injectors.prompts import Batch

POOLINGS = ("mean", "cls", "last")


def text_mask(inputs: ModelInputs) -> torch.Tensor:
    """(B, T) mask of the text positions: the columns after a layer prefix's, as wide as ``inputs_embeds``."""
    mask = inputs.attention_mask[:, inputs.text_offset :]
    width = inputs.inputs_embeds.shape[1]
    if mask.shape[1] != width:
        raise ConfigError(
            f"head: the attention mask has {inputs.attention_mask.shape[1]} columns, {inputs.text_offset} of "
            f"them a prefix, but inputs_embeds has {width} text positions; expected text_offset + {width}"
        )
    return mask


def last_positions(mask: torch.Tensor) -> torch.Tensor:
    """(B,) column of each row's last real token (left or right padding alike)."""
    cols = torch.arange(mask.shape[1], device=mask.device)
    return torch.where(mask.bool(), cols, -1).amax(dim=1).clamp(min=0)


def first_positions(mask: torch.Tensor) -> torch.Tensor:
    """(B,) column of each row's first real token (where [CLS] sits, also under left padding)."""
    cols = torch.arange(mask.shape[1], device=mask.device)
    return torch.where(mask.bool(), cols, mask.shape[1]).amin(dim=1).clamp(max=mask.shape[1] - 1)


def hidden_states(model: Any, inputs: ModelInputs) -> torch.Tensor:
    """(B, T, H) last-layer hidden states of the text positions (after the final norm of decoders)."""
    body = backbone_body(model)
    out = body(**inputs.kwargs())
    hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    if hidden.shape[1] != inputs.inputs_embeds.shape[1]:
        raise ConfigError(
            f"head: the backbone returned {hidden.shape[1]} positions for {inputs.inputs_embeds.shape[1]} "
            f"input positions; expected hidden states of the text positions only"
        )
    return hidden


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """(B, H) from (B, T, H) states and their (B, T) text mask, in float32.

    ``mean`` is sentence-transformers' mean pooling (sum of masked states / number of real tokens, clamped
    at 1e-9); ``cls`` the first real token; ``last`` the last real token (decoders)."""
    h = hidden.float()
    rows = torch.arange(h.shape[0], device=h.device)
    if pooling == "mean":
        keep = mask.bool().unsqueeze(-1)  # where, not a product: a padding state may be NaN (masked rows)
        return torch.where(keep, h, 0.0).sum(dim=1) / keep.sum(dim=1).to(h.dtype).clamp(min=1e-9)
    if pooling == "cls":
        return h[rows, first_positions(mask)]
    if pooling == "last":
        return h[rows, last_positions(mask)]
    raise ConfigError(f"pooling {pooling!r}: expected one of {', '.join(POOLINGS)}")


def default_pooling(model: Any) -> str:
    """The protocol's default per family: ``mean`` for encoders (SentenceBERT, MiniLM), ``last`` for
    decoders (GPT-2, OPT; rarec.md §3b)."""
    return "mean" if is_encoder(model) else "last"


class PooledHead:
    """``head(model, inputs, batch) -> (B, H)`` float32 representations; ``dot`` scores two towers.

    ``normalize`` L2-normalises (what sentence-transformers' all-MiniLM-L6-v2 does after pooling; RA-Rec's
    score is a plain dot product, so it is off by default)."""

    def __init__(self, pooling: str = "mean", *, normalize: bool = False, method: str = "?") -> None:
        if pooling not in POOLINGS:
            raise ConfigError(
                f"method {method!r}: unknown pooling {pooling!r} for the pooled head; "
                f"expected one of {', '.join(POOLINGS)}"
            )
        self.pooling = pooling
        self.normalize = normalize

    def check(self, model: Any, method: str, backbone: str) -> None:
        """Every family works (encoders and decoders); kept for the same call sequence as injectors."""
        if not hasattr(backbone_body(model), "forward"):  # pragma: no cover - not a torch module
            raise ConfigError(f"method {method!r}: backbone {backbone!r} is not a torch model")

    def __call__(self, model: Any, inputs: ModelInputs, batch: Batch | None = None) -> torch.Tensor:
        vec = pool(hidden_states(model, inputs), text_mask(inputs), self.pooling)
        return torch.nn.functional.normalize(vec, dim=-1) if self.normalize else vec

    @staticmethod
    def dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """All pairs: (B, H) x (N, H) -> (B, N) scores (full-catalogue ranking of users against items)."""
        return u.float() @ v.float().T

    @staticmethod
    def dot_pairs(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Row-wise: (B, H) x (B, H) -> (B,) scores (BPR on (user, item) pairs)."""
        return (u.float() * v.float()).sum(dim=-1)
