"""``ilm`` on the item-to-text task (ILM §4.3, the ELM tasks): each ``{item1}``/``{item2}`` marker becomes the
item's N ILM tokens (the title is *not* in the prompt: ELM replaces the movie title by its embedding, §4.1),
next-token loss on the reference text only (Eq. 6), greedy or beam decoding with the kit's text head.

The item-to-text recipe (``benchbed.llm.recipes.item2text``) does the prompts, batches, loss, stage runs and
decoding; this path adds the ILM parts and its stages. Stages: (0) on a randomly initialised backbone a
text-only warm start on the same examples with the titles in the prompt (protocols/ilm.md §1h: the tiny LM is
"briefly pretrained on the template corpus"; the paper's PaLM 2-S is pretrained); (1) the ILM encoder on
item-text pairs = the training examples' prompt with the title filled in + the reference (§4.3: "title(s)
and task specific information + the target"; single-item examples, since how two items enter stage 1 is not
stated), no LLM; test and valid items never appear, and the valid items' texts give the held-out ITG loss of
Table 5; (2) co-training of encoder + projector + LLM (§4.3; ``freeze_llm`` = ILM-F). The LM stages decay the
learning rate linearly (T7, protocols/ilm.md §1i.5).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from benchbed.api import RunContext
from benchbed.config import stable_hash
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.item2text.prompts import to_pieces
from benchbed.item2text.setup import Item2TextProtocol
from benchbed.llm.budget import time_capped
from benchbed.llm.injectors.slots import MultiTokenSlots
from benchbed.llm.lora import set_trainable
from benchbed.llm.recipes.generative import TRAIN_IDENTITY_KEYS
from benchbed.llm.recipes.item2text import Item2TextLM, LMStage
from benchbed.llm.recipes.warm_start import warm_start
from benchbed.methods.ilm.params import ILMItem2TextParams
from benchbed.methods.ilm.parts import ILMParts, stage2_llm
from benchbed.param_sets import ParamSet

LM_SCHEDULE = "linear"  # T7: stage-2 linear decay (protocols/ilm.md §1i.5); the warm start too


def is_item2text(protocol: Any) -> bool:
    """True when the task handed over the item-to-text protocol (``benchbed.item2text.setup``)."""
    return isinstance(protocol, Item2TextProtocol)


class ILMItem2Text(Item2TextLM):
    """The item-to-text path of ``ilm`` (built by ``benchbed.methods.ilm.method.ILM`` for the
    item2text task).
    """

    name: ClassVar[str] = "ilm"
    Params: ClassVar[type[ParamSet]] = ILMItem2TextParams
    p: ILMItem2TextParams
    whole_llm_trains: ClassVar[bool] = False  # the trainer switches the trained modules (ILM-F: LLM in eval)

    # --- the recipe's hooks ---------------------------------------------------------------------------
    def prepare(self, split: Split, ctx: RunContext) -> None:
        if not self._examples:
            raise ConfigError("method 'ilm': the item2text task gave no training examples")
        dtype = self.model.get_input_embeddings().weight.dtype
        self.parts = ILMParts(self.p, split, ctx, tokenizer=self.tok, hidden=self.bb.hidden_size, dtype=dtype)
        self.n_tokens = self.parts.n_queries
        self.injector = MultiTokenSlots(self.n_tokens)

    def max_prompt_tokens(self) -> int | None:
        return self.p.max_length

    @property
    def mode(self) -> str:
        return "title" if self.parts.kind == "none" else "slot"  # text only: titles, no tokens

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor | None:
        return self.parts.item_tokens(items)  # (B, 2, N, H); -1 columns are skipped

    def base_identity(self) -> dict[str, Any]:
        """The recipe's context as ILM's stages have always named it: no method name, the whole setup
        (decoding included), the shared example sample, and the generative recipe's training keys."""
        base = {k: v for k, v in super().base_identity().items() if k != "method"}
        train = {k: self.params[k] for k in TRAIN_IDENTITY_KEYS}
        return {**base, "setup": self.proto.setup.as_dict(), "sample": "shared", "train": train}

    def run_stages(self, split: Split, ctx: RunContext) -> None:
        """Warm start, stage 1, stage 2; stage 2 names the keys of the stages before it (``after``)."""
        text_only = self.parts.kind == "none"
        if text_only and self.p.freeze_llm:
            raise ConfigError("method 'ilm': item_encoder none with freeze_llm leaves nothing to train")
        after = warm_start(self.params, lambda: self.run_stage(self._warm_start_stage()))
        items, texts = self._stage1_texts(self._examples)
        held = self._stage1_texts(list(self.proto.valid))
        stage1 = self.parts.stage1(
            split,
            ctx,
            items,
            texts,
            chain=self.chain,
            reads={"task": "item2text"},
            held_out=held if len(held[0]) else None,
            log=ctx.say,
        )
        if stage1 is not None:
            self.stage_log.append(stage1.log_entry())
            after.append(stage1.key)
        llm, trained_llm = stage2_llm(self)
        modules = {**trained_llm, **({} if text_only else self.parts.modules())}
        stage2 = LMStage(
            "ilm-i2t-stage2",
            {"after": after, **llm, "mode": self.mode},
            modules,
            float(self.p.stage2_lr),
            self.p.stage2_epochs,
            prompt_mode=self.mode,
            schedule=LM_SCHEDULE,
        )
        self.run_stage(stage2)
        self.parts.encoder.eval()
        self.parts.proj.eval()

    def _warm_start_stage(self) -> LMStage:
        """The whole LLM on the training examples with the titles in the prompt (protocols/ilm.md §1h)."""
        return LMStage(
            "ilm-i2t-text",
            {"mode": "title"},
            {"model": self.model},
            float(self.p.lr),
            self.p.epochs,
            before=self._unfreeze_llm,
            prompt_mode="title",
            schedule=LM_SCHEDULE,
        )

    def _unfreeze_llm(self) -> None:
        set_trainable(self.model, lambda _n: True)

    def _stage1_texts(self, examples: list[Any]) -> tuple[np.ndarray, list[str]]:
        """Single-item examples as (item, prompt with the title filled in + reference)."""
        titles = self.proto.facts.title
        items, texts = [], []
        for ex in examples:
            if len(ex.items) != 1:
                continue
            prompt = "".join(str(x) for x in to_pieces(ex.prompt, ex.items, mode="title", titles=titles))
            items.append(int(ex.items[0]))
            texts.append(f"{prompt} {ex.reference}")
        return np.asarray(items, dtype=np.int64), texts

    # --- the record -----------------------------------------------------------------------------------
    def record_info(self) -> dict[str, Any]:
        log = self.stage_log
        info: dict[str, Any] = {
            "train_examples": len(self._examples),
            "stages": log,
            "stage_seconds": {s.get("stage", "?"): s.get("seconds") for s in log},
            "params_hash": stable_hash(self.params, length=12),
        }
        if time_capped(log):
            info["time_capped"] = True
        return info
