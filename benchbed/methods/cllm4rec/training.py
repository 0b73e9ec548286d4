"""How one CLLM4Rec stage trains or loads: the kit's training loop with the authors' optimiser (plain Adam,
constant lr, no clipping, every epoch trained and the best kept), its dropout seeded from the stage key, and
the stage's blob (the extension's tables; the backbone too when it trains).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from benchbed import sharding
from benchbed.api import RunContext
from benchbed.llm.stages import Stage, StageChain, StageSpec, stage_seed
from benchbed.llm.train import TrainConfig, train
from benchbed.methods.cllm4rec.model import COLLAB, CONTENT, CLLM4RecCore
from benchbed.methods.cllm4rec.params import CLLM4RecParams


class StageHost(Protocol):
    """What one stage reads and writes of the method (``CLLM4Rec``): no import of the method's module."""

    p: CLLM4RecParams
    eff: dict[str, Any]
    fit_info: dict[str, Any]
    core: CLLM4RecCore | None


@dataclass
class StageWork:
    """What one stage trains: ``epochs`` at ``lr``, the tensors ``params``, the batches of an epoch, the MR
    weight per batch kind (``lams``) and the validation metric that keeps the best epoch (fine-tuning)."""

    epochs: int
    lr: float
    params: dict[str, torch.nn.Parameter]
    batches: Callable[[int], list[Any]]
    lams: dict[str, float]
    eval_fn: Callable[[], float] | None = None


def run_stage(
    method: StageHost, ctx: RunContext, chain: StageChain, spec: StageSpec, work: StageWork
) -> None:
    """Train (or load) one stage of ``chain``; what the record says of it lands in ``method.fit_info``."""
    assert method.core is not None
    name = spec.name
    if work.epochs <= 0:
        st = chain.skip(spec)
        method.fit_info[name] = {"skipped": "0 epochs", "key": st.key}
        return
    st = chain.stage(spec)
    train_backbone = bool(method.eff["train_backbone"])
    train_fn = _trainer(method.core, ctx, name, st, work, train_backbone, method.p.grad_accum)
    run = chain.run(spec, train_fn, functools.partial(load_blob, method.core))
    if run.loaded:
        ctx.say(f"cllm4rec: stage {name} loaded from {st.dir}")
    method.fit_info[name] = run.outcome.info()


def _trainer(
    core: CLLM4RecCore,
    ctx: RunContext,
    name: str,
    st: Stage,
    work: StageWork,
    train_backbone: bool,
    grad_accum: int,
) -> Callable[[Path], tuple[dict[str, Any], dict[str, Any]]]:
    """The stage's ``train_fn``: train into ``ckpt`` (resumable), return the blob and the stage's meta."""
    lams = work.lams

    def loss_fn(b: Any) -> torch.Tensor:
        if b.kind == "rec":
            return core.rec_loss(b, lams["rec"])
        return core.doc_loss(b, COLLAB if b.kind == "collab" else CONTENT, lams[b.kind])

    def train_fn(ckpt: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        ctx.say(f"cllm4rec: stage {name} training ({work.epochs} epochs) -> {ckpt}")
        before = frozen_digest(core.model) if not train_backbone else None
        torch.manual_seed(stage_seed(st.key))  # dropout draws: the same whether earlier stages loaded
        n_batches = len(work.batches(0))
        result = train(
            work.params,
            work.batches,
            n_batches,
            loss_fn,
            _config(work, grad_accum),
            eval_fn=work.eval_fn,
            checkpoint_dir=ckpt,
            log=ctx.say,
            modules=[core.model],  # train mode: dropout 0.1 active as in the code
        )
        after = frozen_digest(core.model) if not train_backbone else None
        meta = {"stage": name, "key": st.key, "train": result.as_dict(), "frozen_sha256": [before, after]}
        return stage_blob(core, train_backbone), meta

    return train_fn


def _config(work: StageWork, grad_accum: int) -> TrainConfig:
    return TrainConfig(
        lr=work.lr,
        weight_decay=0.0,  # the code's Adam has none
        epochs=work.epochs,
        warmup_ratio=0.0,
        schedule="constant",  # plain Adam, no scheduler [code; protocols/cllm4rec.md optimiser row]
        patience=work.epochs + 1,  # the code trains every epoch and keeps the best
        max_grad_norm=None,  # no clipping in the code
        grad_accum=grad_accum,
    )


def stage_blob(core: CLLM4RecCore, train_backbone: bool) -> dict[str, Any]:
    """The tensors a stage saves: the extension's tables, and the backbone when it trains."""
    blob: dict[str, Any] = {"ext": {k: v.detach().cpu().clone() for k, v in core.ext.state_dict().items()}}
    if train_backbone:
        blob["backbone"] = {k: v.detach().cpu().clone() for k, v in core.model.state_dict().items()}
    return blob


def load_blob(core: CLLM4RecCore, blob: dict[str, Any]) -> None:
    core.ext.load_state_dict(blob["ext"])
    if "backbone" in blob:
        sharding.load_full_state(core.model, blob["backbone"])


def frozen_digest(model: Any) -> str:
    """SHA-256 of every backbone tensor: equal before and after a stage when the backbone is frozen."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        t = sharding.local_part(t)  # FSDP: this rank's shard (the check is per rank)
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
