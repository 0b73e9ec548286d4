"""``ilm`` on the generative task (ILM §4.4, OpenP5 with random indexing): the ``GenerativeLM`` recipe with
each item written as its random-index id text followed by its N ILM tokens, and the user id followed by the
user's N tokens (Fig. 1 shows ``{user}`` too; protocols/ilm.md §1i.11). Constrained beams write the target id.

Stages: (0) on a randomly initialised backbone the text-only stage of ``p5-random`` (the paper pretrains its
8-layer decoder on OpenP5 text with random ids first, App. B; cached, so p5-random and embedproj share it);
(1) the ILM encoder on item-text (title + metadata, §4.4) and user-item pairs (App. H), no LLM involved;
(2) co-training: encoder + projector + the LLM (full, §4.3; ``freeze_llm`` = ILM-F) on the templated examples,
with the learning rate decaying linearly (Table 8, OpenP5 stage 2: "linear decay"; the kit's linear warmup of
``warmup_ratio`` first, which T8 does not mention) and the checkpoint with the best development NDCG@10 kept,
not the last state (§4.4: "we select the checkpoint with the best NDCG@10 metric on the development set").
The development rows are the kit's valid rows of the leave-one-out split (``generative.examples.eval_rows``):
each user's second-to-last item as the target, the training items as history, the seen template; the test item
(the last one) is never read. ``stage2_valid_users`` users (the first by id; the paper: all) are decoded
``stage2_evals_per_epoch`` times per epoch; no early stopping (the paper trains a fixed number of steps).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from benchbed.api import RunContext
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.llm.injectors.slots import MultiTokenSlots
from benchbed.llm.recipes.generative import GenerativeLM, LMStage
from benchbed.llm.recipes.generative_text_stage import generative_warm_start
from benchbed.llm.stages import StageChain
from benchbed.methods.ilm.inputs import item_texts
from benchbed.methods.ilm.params import ILMGenerativeParams
from benchbed.methods.ilm.parts import ILMParts, stage2_llm
from benchbed.param_sets import ParamSet


class ILMGenerative(GenerativeLM):
    """The generative path of ``ilm`` (built by ``benchbed.methods.ilm.method.ILM`` for the generative
    task).
    """

    name: ClassVar[str] = "ilm"
    use_slots: ClassVar[bool] = True
    Params: ClassVar[type[ParamSet]] = ILMGenerativeParams
    p: ILMGenerativeParams

    def prepare(self, split: Split, ctx: RunContext) -> None:
        dtype = self.model.get_input_embeddings().weight.dtype
        self.parts = ILMParts(self.p, split, ctx, tokenizer=self.tok, hidden=self.bb.hidden_size, dtype=dtype)
        if self.parts.kind == "none":
            raise ConfigError("method 'ilm': item_encoder none on the generative task is p5-random; run that")
        self.slot_width = self.parts.n_queries
        self.injector = MultiTokenSlots(self.parts.n_queries)  # type: ignore[assignment]  # N per slot

    def slot_vectors(self, users: torch.Tensor, hist: torch.Tensor) -> torch.Tensor | None:
        u = self.parts.user_tokens(users)
        i = self.parts.item_tokens(hist)
        return torch.cat([u.unsqueeze(1), i], dim=1)  # (B, 1 + L, N, H)

    def warm_start_params(self) -> dict[str, Any]:
        """p5-random's parameters that give the same text stage (the companion run)."""
        from benchbed.methods.p5_random import warm_start_companion  # the companion is p5-random's run

        return warm_start_companion(self.params)

    def train_stages(self, split: Split, ctx: RunContext) -> None:
        p = self.p
        after = generative_warm_start(self, p.tuning)
        texts = item_texts(split, _fields(p.stage1_text_fields))
        items = np.asarray([i for i, t in enumerate(texts) if t], dtype=np.int64)
        # stage 1 reads the backbone's tokenizer only: a chain of its own, shared across backbones
        context = {"split": split.key, "tokenizer": self.bb.info.get("id"), "seed": ctx.seed}
        stage1 = self.parts.stage1(
            split,
            ctx,
            items,
            [texts[i] for i in items],
            chain=StageChain(ctx.cache_dir, context),
            reads={"task": "generative"},
            log=ctx.say,
        )
        if stage1 is not None:
            self.stage_log.append(stage1.log_entry())
            after.append(stage1.key)
        llm, trained_llm = stage2_llm(self)
        epochs = p.stage2_epochs
        selection = stage2_selection(p)
        self.run_stage(
            LMStage(
                name="ilm-stage2",
                reads={"after": after, **llm, "schedule": p.stage2_schedule, "select": selection},
                modules={**trained_llm, **self.parts.modules()},
                use_slots=True,
                lr=float(p.stage2_lr),
                epochs=epochs,
                schedule=p.stage2_schedule,
                valid_users=0 if selection is None else selection["valid_users"],
                evals_per_epoch=None if selection is None else selection["evals_per_epoch"],
                patience=epochs * p.stage2_evals_per_epoch + 1,  # never fires: selection, no stopping
            )
        )
        self.parts.encoder.eval()
        self.parts.proj.eval()


def stage2_selection(p: ILMGenerativeParams) -> dict[str, Any] | None:
    """How stage 2 picks its checkpoint (part of the stage identity): the best dev NDCG@10 over
    ``evals_per_epoch`` evaluations per epoch on ``valid_users`` users, or None (the last state)."""
    users = p.stage2_valid_users
    if users == 0:
        return None
    return {
        "metric": "ndcg@10",
        "rows": "valid",
        "valid_users": users,
        "evals_per_epoch": p.stage2_evals_per_epoch,
    }


def _fields(value: Any) -> list[str] | None:
    if value in (None, "", "all"):
        return None
    return [f.strip() for f in str(value).split(",") if f.strip()]
