"""``ilm``: the Item-Language Model (seed 000, Yang et al.): a Q-Former item encoder pretrained on item-text,
item-item and user-item contrastive objectives, then co-trained with the LLM, each item entering the prompt as
N query tokens through one linear projector (protocols/ilm.md).

One registered method for two protocols, each with its own recipe:
- ``generative`` (OpenP5, §4.4): ``generative.ILMGenerative`` on the ``GenerativeLM`` recipe;
- ``item2text`` (the ELM-style tasks, §4.3): ``item2text.ILMItem2Text`` on the ``Item2TextLM`` recipe.
``fit`` picks the recipe from the protocol object the task hands over (``ctx.setup.protocol``), never from a
task name; each recipe receives only its own parameters.

Variants (Tables 4, 15, 16) are parameters: ``stage1_pairs`` none | ii | ui | ii+ui (ILM-IT, ILM-IT-II, ILM,
both), ``freeze_llm`` (ILM-F), ``stage1: false`` + ``freeze_llm`` (ILM-RF), ``input`` behavioral | semantic |
combined (T3/T13/T15), ``n_queries`` (Fig. 5), ``shuffle_input`` (the negative control).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from benchbed.api import BaseRecommender, GenerateRequests, Rankings, RankRequests, RunContext
from benchbed.cards import MethodCard
from benchbed.data.schema import Split
from benchbed.methods.ilm.generative import ILMGenerative
from benchbed.methods.ilm.item2text import ILMItem2Text, is_item2text
from benchbed.methods.ilm.params import ILMGenerativeParams
from benchbed.param_sets import ParamSet


class ILM(BaseRecommender):
    """Dispatches to the generative or the item-to-text recipe by the protocol the task hands ``fit``."""

    name: ClassVar[str] = "ilm"
    card: ClassVar[MethodCard] = MethodCard(
        paper="ILM (Yang et al.; seed 000; no public code)",
        role="llm",
        injection="multi-slot",
        head=("constrained-beams", "text"),
        tasks=frozenset({"generative", "item2text"}),
        backbone="decoder",
        variants=("stage1_pairs=none|ii|ui", "freeze_llm", "input=semantic|combined", "shuffle_input"),
    )
    tasks: ClassVar[frozenset[str]] = frozenset({"generative", "item2text"})
    uses_templates: ClassVar[bool] = True
    # every parameter of either path: the item-to-text path's are a subset of the generative path's
    Params: ClassVar[type[ParamSet]] = ILMGenerativeParams
    p: ILMGenerativeParams
    # generation batching, extra beams, and which companion rows the board runs beside it
    evaluation_only: ClassVar[frozenset[str]] = frozenset(
        {"eval_batch_size", "exclude_extra_beams", "compare_with"}
    )
    # stage-1 pairs and the board's companions follow each protocol's paper setting
    task_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        # App. H / T16: the OpenP5 "ILM" = item-text + user-item; p5-random = OpenP5-R, the text-only row
        "generative": {"stage1_pairs": "ui", "compare_with": "p5-random"},
        # §4.3: on the ELM tasks stage 1 uses item-text pairs only; the task's two reference rows
        "item2text": {"stage1_pairs": "none", "compare_with": "i2t-floor,i2t-const,i2t-copy"},
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.impl: ILMGenerative | ILMItem2Text | None = None

    def companions(self) -> list[tuple[str, dict[str, Any]]]:
        """``compare_with`` (a comma list, or none), run first with the same data, split, task and seed.
        p5-random gets our warm-start settings, so its text stage is the one ilm's generative path loads."""
        names = [n.strip() for n in self.p.compare_with.split(",") if n.strip()]
        out: list[tuple[str, dict[str, Any]]] = []
        for name in names:
            if name == "none":
                continue
            if name == "p5-random":
                gen = ILMGenerative(**self._own(ILMGenerative))
                out.append((name, gen.warm_start_params()))
            else:
                out.append((name, {}))
        return out

    def _own(self, cls: type[BaseRecommender]) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if k in cls.defaults}

    def fit(self, split: Split, ctx: RunContext) -> None:
        cls: type[ILMGenerative] | type[ILMItem2Text] = (
            ILMItem2Text if is_item2text(ctx.setup.protocol) else ILMGenerative
        )
        self.impl = cls(**self._own(cls))
        self.impl.fit(split, ctx)
        self.backbone_info = self.impl.backbone_info
        self.template_info = self.impl.template_info

    def _fitted(self) -> ILMGenerative | ILMItem2Text:
        if self.impl is None:
            raise RuntimeError("method 'ilm' is not fitted")
        return self.impl

    def rank(self, requests: RankRequests) -> Rankings:
        return self._fitted().rank(requests)

    def generate(self, requests: GenerateRequests) -> list[str]:
        return self._fitted().generate(requests)

    def score_all(self, users: np.ndarray, histories: list[list[int]]) -> np.ndarray:
        return self._fitted().score_all(users, histories)

    def record_info(self) -> dict[str, Any]:
        return self.impl.record_info() if self.impl is not None else {}

    def trainable_parameters(self) -> int:
        return self.impl.trainable_parameters() if self.impl is not None else 0
