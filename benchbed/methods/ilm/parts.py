"""What both task paths of ``ilm`` share: parameters, the encoder + projector, the item tokens, stage 1.

``ILMParts`` is built after the backbone is loaded (the text tower uses the backbone's tokenizer): it holds
the input tables (``inputs``), the Q-Former (``encoder``) and the linear projector of §3.3 that maps
each of the N query outputs into the LLM token space, and runs stage 1 (``pretrain``). ``stage2_llm`` readies
the LLM for stage 2 on either task path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from benchbed.api import RunContext
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.llm.lora import LoraSpec, add_lora, set_trainable
from benchbed.llm.stages import StageChain, StageRun
from benchbed.llm.train import SCHEDULES
from benchbed.methods.ilm.encoder import EncoderConfig, ILMEncoder
from benchbed.methods.ilm.inputs import build_inputs
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
from benchbed.params import Param

ITEM_ENCODERS = ("qformer", "mlp", "none")

# Types/ranges beyond what benchbed.params infers from the defaults (caps that take None = no cap).
ILM_PARAM_SPECS: dict[str, Param] = {
    "max_train_examples": Param(kind="int", min=1, nullable=True, help="seeded sample; null = all"),
    "stage1_max_pairs": Param(kind="int", min=1, nullable=True, help="per pair kind; null = all"),
    "stage1_pair_ratio": Param(kind="int", min=1, help="pair batches per item-text batch"),
    "memory_tokens": Param(kind="int", min=1, help="cross-attention memory tokens of e"),
    "encoder_layers": Param(kind="int", min=1),
    "encoder_width": Param(kind="int", min=1),
    "encoder_heads": Param(kind="int", min=1),
    "max_text_len": Param(kind="int", min=1),
    "item_encoder": Param(kind="str", choices=ITEM_ENCODERS),
    "input": Param(kind="str", choices=("behavioral", "semantic", "combined")),
    "stage1_pairs": Param(kind="str", choices=("none", "ii", "ui", "ii+ui")),
    "stage1_text_losses": Param(
        kind="str", pattern=r"(itc|itm|itg)(\s*,\s*(itc|itm|itg))*", help="comma list of itc, itm, itg"
    ),
    "stage2_schedule": Param(kind="str", choices=SCHEDULES, help="stage-2 lr decay after the warmup"),
    "stage2_valid_users": Param(
        kind="int", min=0, help="dev users for the best-NDCG@10 checkpoint; 0 = last"
    ),
    "stage2_evals_per_epoch": Param(kind="int", min=1, help="dev evaluations per stage-2 epoch"),
    "stage1_text_fields": Param(
        kind="str",
        nullable=True,
        pattern=r"[\w\-]+(\s*,\s*[\w\-]+)*",
        help="comma list of item fields; null = all",
    ),
}

# Every ILM parameter both task paths accept, with its source (protocols/ilm.md §1f/§1i; T7/T8 = App. B).
ILM_DEFAULTS: dict[str, Any] = {
    "n_queries": 4,  # §5.5 best at 4-8; protocols/ilm.md §1i.1 default 4
    # qformer = ILM; mlp = Fig. 5's "MLP to N tokens" baseline (n_queries=1: CoLLM's 1-token MLP, §4.3), no
    # stage 1; none = text only (item2text: the title in the prompt instead of tokens)
    "item_encoder": "qformer",
    "encoder_layers": 2,  # CPU scale (protocols/ilm.md §1h: 2 layers, d=64); the paper: 8 layers, 168M
    "encoder_width": 64,
    "encoder_heads": 4,
    "memory_tokens": 1,  # e -> a 1-token cross-attention memory (protocols/ilm.md §1i.10, inferred)
    "encoder_dropout": 0.1,  # BERT / BLIP-2 hidden dropout
    "max_text_len": 64,  # stage-1 text tokens
    "input": "behavioral",  # behavioral | semantic | combined (§5.1); OpenP5 uses iALS vectors (§4.1)
    "cf_model": "als",  # WALS / iALS matrix factorisation (§4.1), benchbed's `als` export
    "cf_params": None,
    "semantic_encoder": "minilm",  # sentence encoder of the semantic input (the paper: PaLM2-XS, ELM data)
    "semantic_fields": "title",  # item fields the semantic input embeds (the ELM embeddings describe items)
    "shuffle_input": False,  # negative control (protocols/ilm.md §1h): item/user input rows permuted
    "stage1": True,  # False = no stage-1 training (ILM-R*, §5.3 / T15): a random encoder into stage 2
    "stage1_pairs": "ui",  # none (ILM-IT) | ii (ILM-IT-II) | ui (ILM, OpenP5 default, App. H) | ii+ui
    "stage1_text_losses": "itc,itm,itg",  # §3.2; weights all 1 (protocols/ilm.md §1i.4)
    "stage1_symmetric": False,  # Eq. 3 is item -> text only (protocols/ilm.md §1i.2)
    "stage1_text_fields": None,  # item fields of the stage-1 text; None = all (ML: title + genres, §4.4)
    "stage1_epochs": 2,  # CPU budget (the paper: 40K steps of 256 on ML1M, T8)
    "stage1_lr": 1e-3,  # CPU (a random tiny encoder); the paper: 3e-5 with AdaFactor, batch 256 (T7/T8)
    "stage1_batch_size": 64,  # the paper: 256 (T7/T8)
    # micro-batches per stage-1 step (data parallel: a multiple of the processes; each micro-batch keeps
    # its own in-batch negatives, so batch_size x grad_accum is not one contrastive batch). Not in the paper
    "stage1_grad_accum": 1,
    "stage1_pair_ratio": 1,  # pair batches per item-text batch: alternate 1:1 (protocols/ilm.md §1i.4)
    "stage1_max_pairs": 20000,  # CPU budget: seeded sample per pair kind; None = all (the paper)
    "freeze_llm": False,  # §4.3: encoder and LLM are both trained; True = ILM-F (§5.2, T15)
    "stage2_epochs": 1,
    "stage2_lr": 1e-3,  # CPU; the paper: 5e-4, AdaFactor, batch 32 (T7/T8)
    "compare_with": "none",  # methods run first for the board (a comma list; per task: ILM.task_defaults)
}


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
        params: dict[str, Any],
        split: Split,
        ctx: RunContext,
        *,
        tokenizer: Any,
        hidden: int,
        dtype: Any,
    ) -> None:
        self.params = params
        self.tokenizer = tokenizer
        self.device = ctx.device
        self.tables = build_inputs(split, ctx, params)
        self.cfg = EncoderConfig.from_params(params, self.tables.dim, len(tokenizer))
        self.kind = str(params["item_encoder"])
        if self.kind not in ITEM_ENCODERS:
            raise ConfigError(
                f"method 'ilm': item_encoder must be one of {', '.join(ITEM_ENCODERS)}, got {self.kind!r}"
            )
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
        p = self.params
        pairs_on = parse_pairs(str(p["stage1_pairs"]))
        losses = parse_text_losses(str(p["stage1_text_losses"]))
        if not p["stage1"] or self.kind != "qformer":
            return None
        text = tokenize_texts(self.tokenizer, items, texts, self.cfg.max_text_len)
        cap = None if p["stage1_max_pairs"] is None else int(p["stage1_max_pairs"])
        pairs: dict[str, np.ndarray] = {}
        if "ii" in pairs_on:
            pairs["ii"] = sample_pairs(consecutive_item_pairs(split), cap, ctx.seed)
        if "ui" in pairs_on:
            pairs["ui"] = sample_pairs(user_item_pairs(split), cap, ctx.seed)
        settings = Stage1Settings(
            epochs=int(p["stage1_epochs"]),
            lr=float(p["stage1_lr"]),
            batch_size=int(p["stage1_batch_size"]),
            grad_accum=int(p.get("stage1_grad_accum", 1)),
            pair_ratio=int(p["stage1_pair_ratio"]),
            pairs=pairs_on,
            text_losses=losses,
            symmetric=bool(p["stage1_symmetric"]),
            weight_decay=float(p.get("weight_decay", 0.01)),
            warmup_ratio=float(p.get("warmup_ratio", 0.05)),
            max_seconds=p.get("max_seconds"),
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
    is frozen. ``method`` is either task path (``model``, ``bb``, ``params``, ``parts``)."""
    p = method.params
    frozen = bool(p["freeze_llm"])
    lora = LoraSpec.from_params(p)
    set_trainable(method.model, lambda _n: False)
    if not frozen:
        if p["tuning"] == "lora":
            method.model, _ = add_lora(method.model, lora)
            method.bb.model = method.model
        else:
            set_trainable(method.model, lambda _n: True)
    reads = {
        "ilm": method.parts.identity(),
        "freeze_llm": frozen,
        "tuning": p["tuning"],
        "lora": lora.as_dict() if p["tuning"] == "lora" and not frozen else None,
    }
    return reads, ({} if frozen else {"model": method.model})
