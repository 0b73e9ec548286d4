"""``embedproj`` (seed 003): user and item CF embeddings projected into the LLM's token space.

Two separate 2-layer MLP projectors (user, item) map ALS (WALS, Hu et al. 2008) embeddings from the ``als``
baseline export to the backbone's hidden size. The user slot follows the user id in the prompt and one item
slot follows each history id, so the LLM reads the projected vectors alongside the id text and writes the next
item's id (next-token loss on the answer). Stage 1 trains the projectors with the LLM frozen; stage 2 trains
projectors + LoRA (``stage: 1|2`` says which one is evaluated; the paper reports both). In the
``straightforward`` sub-task the prompt has no history, so only the user projector is active.

The paper's LLM is a pretrained OpenLLaMA-3B that can already spell numbers. The ``tiny`` preset is randomly
initialised, so with ``warm_start: auto`` it first gets the text-only stage of ``p5-random`` (same settings ->
loaded from the stage cache when p5-random already ran); a pretrained backbone starts from its own weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from benchbed.api import RunContext
from benchbed.cards import MethodCard, generative_llm
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.llm.lora import LoraSpec, add_lora, set_trainable
from benchbed.llm.recipes.fitted import Fitted
from benchbed.llm.recipes.generative import GenerativeLM, LMStage
from benchbed.llm.recipes.generative_params import GenerativeParams
from benchbed.llm.recipes.generative_text_stage import generative_warm_start
from benchbed.llm.recipes.warm_start import wants_warm_start
from benchbed.param_sets import ParamSet, param
from benchbed.params import Param


def projector(d_in: int, d_mid: int, d_out: int) -> nn.Sequential:
    """2-layer MLP (seed 003: "both are two-layer MLPs"); GELU as in LLaVA-style projectors."""
    return nn.Sequential(nn.Linear(d_in, d_mid), nn.GELU(), nn.Linear(d_mid, d_out))


@dataclass(frozen=True)
class EmbedProjParams(GenerativeParams):
    """The recipe's settings, the CF export, the projectors, both stages, the LoRA and the warm start."""

    # 1: projectors only (LLM frozen); 2: then projectors + LoRA (seed 003 reports both); checked with the
    # other parameters, before the p5-random companion trains (it was checked in fit)
    stage: int = param(2, Param(kind="int", choices=(1, 2)))
    cf_model: str = "als"  # seed 003: WALS matrix factorisation
    cf_params: dict[str, Any] | None = None  # parameters of the CF export (None: its defaults)
    proj_hidden: int | None = None  # projector middle width; None = the LLM hidden size
    stage1_epochs: int = 1
    stage1_lr: float = 1e-3
    stage2_epochs: int = 1
    stage2_lr: float = 1e-3
    lora_r: int = 8  # r/alpha/dropout: TALLRec/CoLLM defaults (seed 003 gives none)
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    # every attention and MLP projection (QLoRA practice): q_proj,v_proj alone (TALLRec/CoLLM) leaves a
    # small backbone too little capacity to learn the id strings (see tests/test_generative_methods.py)
    lora_targets: str = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    warm_start: str = "auto"  # auto: text-only stage first on randomly initialised backbones; text | none
    tuning: str = "full"  # how the warm-start text stage trains (as p5-random's `tuning`)


@dataclass
class CFProjection:
    """The CF export's tables (fixed) and the two projectors that write them into the prompt's slots."""

    user_table: torch.Tensor
    item_table: torch.Tensor
    user: nn.Sequential
    item: nn.Sequential
    dtype: torch.dtype  # the backbone's embedding dtype

    def modules(self) -> dict[str, nn.Module]:
        """The trained modules by the names their stage saves them under."""
        return {"proj_user": self.user, "proj_item": self.item}

    def vectors(self, users: torch.Tensor, hist: torch.Tensor) -> torch.Tensor:
        """(B, 1 + L, H): the user slot, then one per history item (the -1 padding reads item 0's row)."""
        u = self.user(self.user_table[users].to(self.dtype))
        i = self.item(self.item_table[hist.clamp(min=0)].to(self.dtype))
        return torch.cat([u.unsqueeze(1), i], dim=1)


class EmbedProj(GenerativeLM):
    """Seed 003: user and item ALS embeddings through two MLP projectors into the LLM (stage 1 | 2)."""

    name: ClassVar[str] = "embedproj"
    card: ClassVar[MethodCard] = generative_llm(
        "user and item projectors (seed 003; no public code)", "slot", ("stage=1", "stage=2")
    )
    use_slots: ClassVar[bool] = True
    Params: ClassVar[type[ParamSet]] = EmbedProjParams
    p: EmbedProjParams
    projection = Fitted[CFProjection]("projectors")  # built by ``prepare``

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.cf_manifest: dict[str, Any] = {}  # the CF export's manifest (its params hash names the stages)
        self.projection = None

    def companions(self) -> list[tuple[str, dict[str, Any]]]:
        """Run first by ``benchbed run`` on a randomly initialised backbone: p5-random with the settings of
        our warm-start text stage, so that stage is trained once and the board shows the text-only baseline.
        (SASRec is not a companion: RecBole trains it for up to 100 epochs, hours on a shared CPU.)"""
        if not wants_warm_start(self.params):  # pretrained: p5-random is a separate (LoRA) run (the suites)
            return []
        from benchbed.methods.p5_random import warm_start_companion  # the companion is p5-random's run

        return [("p5-random", warm_start_companion(self.params))]

    def prepare(self, split: Split, ctx: RunContext) -> None:
        p = self.p  # stage, warm_start and tuning are declared (checked when the method is built)
        # the CF model learns from the positives the task declares (generative: every training interaction)
        emb = ctx.embedding_source(self.name).get(
            split, p.cf_model, params=p.cf_params, seed=ctx.seed, feedback=ctx.feedback
        )
        if emb.user.shape[0] != split.n_users or emb.item.shape[0] != split.n_items:
            raise ConfigError(
                f"{p.cf_model} embeddings have {emb.user.shape[0]} users / {emb.item.shape[0]} items, "
                f"the split has {split.n_users} / {split.n_items}; re-export them for this split"
            )
        device = self.bb.device
        user_table = torch.as_tensor(np.asarray(emb.user), dtype=torch.float32, device=device)
        item_table = torch.as_tensor(np.asarray(emb.item), dtype=torch.float32, device=device)
        self.cf_manifest = dict(getattr(emb, "manifest", {}) or {})
        hidden = self.bb.hidden_size
        mid = p.proj_hidden or hidden
        torch.manual_seed(ctx.seed)
        dtype = self.model.get_input_embeddings().weight.dtype
        self.projection = CFProjection(
            user_table,
            item_table,
            user=projector(user_table.shape[1], mid, hidden).to(device=device, dtype=dtype),
            item=projector(item_table.shape[1], mid, hidden).to(device=device, dtype=dtype),
            dtype=dtype,
        )

    def slot_vectors(self, users: torch.Tensor, hist: torch.Tensor) -> torch.Tensor | None:
        return self.projection.vectors(users, hist)

    def train_stages(self, split: Split, ctx: RunContext) -> None:
        p = self.p
        projection = self.projection
        lora = LoraSpec.from_params(self.params)
        after = generative_warm_start(self, p.tuning)
        set_trainable(self.model, lambda _n: False)
        cf = {"model": p.cf_model, "params": p.cf_params, "export": self.cf_manifest.get("params_hash")}
        proj = {"proj_hidden": p.proj_hidden}
        stage1 = self.run_stage(
            LMStage(
                name="embedproj-stage1",
                reads={"after": list(after), "cf": cf, "proj": proj},
                modules=projection.modules(),
                use_slots=True,
                lr=float(p.stage1_lr),  # an int lr stays a float in the stage's identity
                epochs=p.stage1_epochs,
            )
        )
        after.append(stage1.key)
        if p.stage == 2:
            self.model, _ = add_lora(self.model, lora)
            self.bb.model = self.model
            self.run_stage(
                LMStage(
                    name="embedproj-stage2",
                    reads={"after": after, "cf": cf, "proj": proj, "lora": lora.as_dict()},
                    modules={"model": self.model, **projection.modules()},
                    use_slots=True,
                    lr=float(p.stage2_lr),
                    epochs=p.stage2_epochs,
                )
            )
        projection.user.eval()
        projection.item.eval()
