"""What both task paths of ``ilm`` share: parameters, the encoder + projector, the item tokens, stage 1.

``ILMParts`` is built after the backbone is loaded (the text tower uses the backbone's tokenizer): it holds
the input tables (``inputs``), the Q-Former (``encoder``) and the linear projector of §3.3 that maps
each of the N query outputs into the LLM token space, and runs stage 1 (``pretrain``). ``stage2_llm`` readies
the LLM for stage 2 on either task path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, TypeAlias

import numpy as np
import torch
from torch import nn

from benchbed.api import RunContext
from benchbed.data.schema import Split
from benchbed.llm.lora import LoraSpec, add_lora, set_trainable
from benchbed.llm.stages import StageChain, StageRun
from benchbed.methods.ilm.encoder import EncoderConfig, ILMEncoder
from benchbed.methods.ilm.inputs import build_inputs
from benchbed.methods.ilm.params import ILMGenerativeParams, ILMItem2TextParams
from benchbed.methods.ilm.pretrain import (
    Stage1Settings,
    TextPairs,
    consecutive_item_pairs,
    parse_pairs,
    parse_text_losses,
    run_stage1,
    sample_pairs,
    tokenize_texts,
    user_item_pairs,
)

# what ILMParts reads: either path's parameters (both hold ILMParams and the recipe's training settings)
RunParams: TypeAlias = ILMGenerativeParams | ILMItem2TextParams


def text_digest(data: TextPairs) -> str:
    h = hashlib.sha256()
    h.update(np.asarray(data.items, dtype=np.int64).tobytes())
    for ids in data.ids:
        h.update(np.asarray(ids, dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


class ILMParts:
    """Input tables + Q-Former + projector for one fitted method; ``item_tokens``/``user_tokens`` give the
    (.., N, H) vectors spliced into the LLM's input."""

    def __init__(
        self,
        p: RunParams,
        split: Split,
        ctx: RunContext,
        *,
        tokenizer: Any,
        hidden: int,
        dtype: Any,
    ) -> None:
        self.p = p
        self.tokenizer = tokenizer
        self.device = ctx.device
        self.tables = build_inputs(split, ctx, p)
        self.cfg = EncoderConfig.from_params(p, self.tables.dim, len(tokenizer))
        self.kind = p.item_encoder  # one of ITEM_ENCODERS (its Param checks it)
        torch.manual_seed(ctx.seed)
        self.encoder = ILMEncoder(self.cfg).to(ctx.device)
        self.proj = nn.Linear(self.cfg.width, hidden).to(device=ctx.device, dtype=dtype)  # §3.3: one linear
        self.mlp: nn.Module | None = None
        if self.kind == "mlp":  # CoLLM: two layers, intermediate 10x the input width (ILM §4.3)
            d = self.tables.dim
            self.mlp = nn.Sequential(
                nn.Linear(d, 10 * d), nn.GELU(), nn.Linear(10 * d, self.cfg.n_queries * hidden)
            ).to(device=ctx.device, dtype=dtype)
        self.dtype = dtype

    @property
    def n_queries(self) -> int:
        return self.cfg.n_queries

    def identity(self) -> dict[str, Any]:
        """What the encoder's inputs and shape are: part of every stage key that trains or uses it."""
        return {"inputs": self.tables.identity, "encoder": self.cfg.as_dict(), "kind": self.kind}

    def modules(self) -> dict[str, nn.Module]:
        if self.mlp is not None:
            return {"mlp": self.mlp}
        return {"encoder": self.encoder, "proj": self.proj}

    def _tokens(self, e: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        if self.mlp is not None:
            return self.mlp(e.to(self.dtype)).view(*shape, self.n_queries, -1)
        return self.proj(self.encoder.queries(e).to(self.dtype)).view(*shape, self.n_queries, -1)

    def item_tokens(self, items: torch.Tensor) -> torch.Tensor:
        """Item ids (...) -> (..., N, H) projected query outputs (ids < 0 read item 0; splice skips them)."""
        return self._tokens(self.tables.item[items.clamp(min=0).reshape(-1)], items.shape)

    def user_tokens(self, users: torch.Tensor) -> torch.Tensor:
        """(B,) user ids -> (B, N, H): the user CF vector through the same encoder (§4.4 footnote)."""
        return self._tokens(self.tables.user[users.reshape(-1)], users.shape)

    def stage1(
        self,
        split: Split,
        ctx: RunContext,
        items: np.ndarray,
        texts: list[str],
        *,
        chain: StageChain,
        reads: dict[str, Any],
        held_out: tuple[np.ndarray, list[str]] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> StageRun | None:
        """Train (or load) stage 1 on ``(items, texts)`` and the configured pairs, in ``chain`` (its context
        carries the seed) under ``reads`` + the encoder's identity; None when it is off."""
        p = self.p
        pairs_on = parse_pairs(p.stage1_pairs)
        losses = parse_text_losses(p.stage1_text_losses)
        if not p.stage1 or self.kind != "qformer":
            return None
        text = tokenize_texts(self.tokenizer, items, texts, self.cfg.max_text_len)
        cap = p.stage1_max_pairs
        pairs: dict[str, np.ndarray] = {}
        if "ii" in pairs_on:
            pairs["ii"] = sample_pairs(consecutive_item_pairs(split), cap, ctx.seed)
        if "ui" in pairs_on:
            pairs["ui"] = sample_pairs(user_item_pairs(split), cap, ctx.seed)
        settings = Stage1Settings(
            epochs=p.stage1_epochs,
            lr=float(p.stage1_lr),
            batch_size=p.stage1_batch_size,
            grad_accum=p.stage1_grad_accum,
            pair_ratio=p.stage1_pair_ratio,
            pairs=pairs_on,
            text_losses=losses,
            symmetric=p.stage1_symmetric,
            weight_decay=float(p.weight_decay),
            warmup_ratio=float(p.warmup_ratio),
            max_seconds=p.max_seconds,
            max_pairs=cap,
        )
        held = None
        if held_out is not None:
            held = tokenize_texts(self.tokenizer, held_out[0], held_out[1], self.cfg.max_text_len)
        return run_stage1(
            self.encoder,
            self.tables,
            text,
            pairs,
            settings,
            chain=chain,
            reads={**reads, **self.identity(), "text": text_digest(text)},
            seed=ctx.seed,
            device=ctx.device,
            log=log,
            held_out=held,
        )


def stage2_llm(method: Any) -> tuple[dict[str, Any], dict[str, nn.Module]]:
    """Ready ``method``'s LLM for stage 2 (§4.3: trained with the encoder, fully or by LoRA; ``freeze_llm``
    = ILM-F, §5.2) and say so: the stage identity's LLM entries, and the LLM as a module to train unless it
    is frozen. ``method`` is either task path (``model``, ``bb``, ``p``, ``params``, ``parts``)."""
    p: RunParams = method.p
    frozen = p.freeze_llm
    lora = LoraSpec.from_params(method.params)
    set_trainable(method.model, lambda _n: False)
    if not frozen:
        if p.tuning == "lora":
            method.model, _ = add_lora(method.model, lora)
            method.bb.model = method.model
        else:
            set_trainable(method.model, lambda _n: True)
    reads = {
        "ilm": method.parts.identity(),
        "freeze_llm": frozen,
        "tuning": p.tuning,
        "lora": lora.as_dict() if p.tuning == "lora" and not frozen else None,
    }
    return reads, ({} if frozen else {"model": method.model})
