"""CLLM4Rec's stage schedule: what each of its three stages reads (a ``StageSpec``, so its cache key) and what
it trains (``StageWork``: tables, batches, MR weights, the metric that picks the epoch).

0. ``cllm4rec-warmup``: the content LLM alone on the content documents (no MR) [paper App. B.2].
1. ``cllm4rec-pretrain``: per epoch an L-step pass then a C-step pass [paper Eqs. 7-8].
2. ``cllm4rec-finetune``: RecLLM passes then C-step passes, best validation epoch kept [src/finetuning.py].

The identities are those of the caches written before the kit's ``StageChain`` existed: every field keeps
its name and value, and fields named only when off their default (``code_shift`` on the warm-up,
``mask_train`` on the fine-tuning) stay so, because a stage seeds its dropout from its key
(:func:`benchbed.llm.stages.stage_seed`): a changed key changes the numbers. So the identities are built
from the raw parameters (``method.params``, the dict the run record holds), the training from the typed view
(``method.p``).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from benchbed.api import RunContext
from benchbed.data.schema import Split
from benchbed.llm import stages
from benchbed.llm.backbone.loaded import Backbone
from benchbed.llm.stages import StageChain, StageSpec
from benchbed.methods.cllm4rec.batches import Batches
from benchbed.methods.cllm4rec.model import COLLAB, CONTENT, CLLM4RecCore
from benchbed.methods.cllm4rec.params import CLLM4RecParams
from benchbed.methods.cllm4rec.training import StageWork, run_stage

STAGE_VERSION = 2  # 2: constant lr as the authors' code (was the kit's cosine decay)


class ScheduledMethod(Protocol):
    """What the schedule reads of the method's fit state (``CLLM4Rec`` has it), so that this module needs no
    import of the method's module."""

    params: dict[str, Any]  # the raw parameters: what the stage identities are built from
    p: CLLM4RecParams
    budget: dict[str, Any]
    eff: dict[str, Any]
    fit_info: dict[str, Any]
    backbone: Backbone | None
    core: CLLM4RecCore | None
    train_items: list[np.ndarray]

    def batches(self) -> Batches: ...

    def _tables(self, *tables: str | None) -> dict[str, torch.nn.Parameter]: ...

    def _rec_batches(self, epoch: int, docs: dict[str, Any] | None) -> list[Any]: ...

    def _valid_metric(self, users: np.ndarray, pos: list[np.ndarray]) -> float: ...


def stage_context(
    method: ScheduledMethod, split: Split, ctx: RunContext, source: str, docs: dict[str, Any] | None
) -> dict[str, Any]:
    """What every stage of the fit reads: the split, backbone, variant settings, documents, batch shape."""
    assert method.backbone is not None
    p, eff = method.params, method.eff
    return {
        "split": split.key,
        "backbone": {k: method.backbone.info[k] for k in ("id", "revision", "dtype")},
        "train_backbone": eff["train_backbone"],
        "scratch": eff["scratch"],
        "content": source,
        "content_digest": docs["digest"] if docs is not None else None,
        "positives": method.fit_info["training_positives"],
        "batch_size": int(p["batch_size"]),
        **stages.accumulation_identity(p["grad_accum"]),
        "max_length": method.fit_info["max_length"],
        "seed": int(ctx.seed),
        "version": STAGE_VERSION,
    }


def _code_shift(params: dict[str, Any]) -> dict[str, Any]:
    """The warm-up stage's ``code_shift`` key: present only when on (issue 22: it was missing, so a
    ``code_shift=true`` fit loaded the warm-up a ``false`` fit had trained on a shared cache)."""
    return {"code_shift": True} if params["code_shift"] else {}


def _mr(p: dict[str, Any], eff: dict[str, Any], use_content: bool) -> dict[str, Any]:
    """The mutual-regularisation settings stages 1 and 2 read (none without content documents)."""
    return {"lambda_c": float(eff["lambda_c"]) if use_content else 0.0, "mr_form": p["mr_form"]}


def stage_specs(
    p: dict[str, Any], budget: dict[str, Any], eff: dict[str, Any], use_content: bool
) -> tuple[StageSpec, StageSpec, StageSpec]:
    """The warm-up, pretraining and fine-tuning stages as the chain identifies them. Without content
    documents no warm-up runs: pretraining then reads ``after: "none"`` instead of the warm-up's key."""
    # code_shift changes every LM loss, the warm-up's too; named there only when on, so that the default key
    # (and the stage-key-seeded dropout) keeps its value
    warmup = StageSpec(
        "cllm4rec-warmup", {"epochs": budget["warmup_epochs"], "lr": p["lr_pretrain"], **_code_shift(p)}
    )
    pretrain = StageSpec(
        "cllm4rec-pretrain",
        {
            **({} if use_content else {"after": "none"}),
            "epochs": budget["pretrain_epochs"],
            "lr": p["lr_pretrain"],
            **_mr(p, eff, use_content),
            "reorder": eff["reorder_pretrain"],
            "code_shift": bool(p["code_shift"]),
        },
        after={"after": "cllm4rec-warmup"} if use_content else {},
    )
    finetune = StageSpec(
        "cllm4rec-finetune",
        {
            "epochs": budget["finetune_epochs"],
            "lr": p["lr_finetune"],
            **_mr(p, eff, use_content),
            "reorder": eff["reorder_finetune"],
            "rec_target": p["rec_target"],
            "mask_ratio": float(p["mask_ratio"]),
            "max_valid_users": budget["max_valid_users"],
            # mask_train changes the validation metric that picks the epoch (named only when off)
            **({} if p["mask_train"] else {"mask_train": False}),
        },
        after={"after": "cllm4rec-pretrain"},
    )
    return warmup, pretrain, finetune


def run_schedule(
    method: ScheduledMethod,
    ctx: RunContext,
    chain: StageChain,
    docs: dict[str, Any] | None,
    valid: tuple[np.ndarray, list[np.ndarray]],
) -> None:
    """Train or load the stages of ``method``'s variant in order: warm-up (with content documents),
    pretraining, fine-tuning (not for LLM-PreRec). Each stage's tables are named when it starts."""
    p, budget, eff = method.p, method.budget, method.eff
    lam, use_c = float(eff["lambda_c"]), docs is not None
    warmup, pretrain, finetune = stage_specs(method.params, budget, eff, use_c)
    batches = method.batches()
    tables = (COLLAB, CONTENT if use_c else None)
    if use_c:
        work = StageWork(
            budget["warmup_epochs"],
            float(p.lr_pretrain),
            method._tables(CONTENT),
            lambda e: batches.documents(e, 0, None, docs, reorder=False),
            {"content": 0.0},
        )
        run_stage(method, ctx, chain, warmup, work)
    work = StageWork(
        budget["pretrain_epochs"],
        float(p.lr_pretrain),
        method._tables(*tables),
        lambda e: batches.documents(e, 1, method.train_items, docs, reorder=eff["reorder_pretrain"]),
        {"collab": lam if use_c else 0.0, "content": lam},
    )
    run_stage(method, ctx, chain, pretrain, work)
    if eff["finetune"]:
        valid_users, valid_pos = valid
        work = StageWork(
            budget["finetune_epochs"],
            float(p.lr_finetune),
            method._tables(*tables),
            lambda e: method._rec_batches(e, docs),
            {"rec": lam if use_c else 0.0, "content": lam},
            eval_fn=lambda: method._valid_metric(valid_users, valid_pos),
        )
        run_stage(method, ctx, chain, finetune, work)
