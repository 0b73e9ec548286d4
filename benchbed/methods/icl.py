"""ICL: zero-shot P(Yes) from the frozen backbone, no training (the ICL row of CoLLM Table II).

Score = logit(Yes) - logit(No) at the answer position, i.e. the logit of P(Yes) renormalised over the two
answers (TALLRec's zero-shot scoring); ``score=yes`` gives the raw Yes logit instead.
"""

from __future__ import annotations

from typing import Any, ClassVar

from benchbed.api import RunContext
from benchbed.cards import MethodCard
from benchbed.data.schema import Split
from benchbed.llm.recipes.ctr import CTR_PARAM_SPECS, PROMPT_DEFAULTS, PromptCTRMethod
from benchbed.params import Param


class ICL(PromptCTRMethod):
    """Zero-shot yes/no from the frozen backbone on the text prompt; no training (CoLLM's ICL row)."""

    name: ClassVar[str] = "icl"
    card: ClassVar[MethodCard] = MethodCard(
        paper="zero-shot ICL row of CoLLM Table II (seed 002)",
        role="llm",
        injection="none",
        head="yes-no",
        tasks=frozenset({"ctr"}),
        backbone="decoder",
        variants=("score=yes",),
    )
    view: ClassVar[str] = "text"
    defaults: ClassVar[dict[str, Any]] = {**PROMPT_DEFAULTS, "score": "yes-no", "batch_size": 16}
    param_specs: ClassVar[dict[str, Param]] = CTR_PARAM_SPECS
    zero_shot: ClassVar[bool] = True  # trains nothing by design (benchbed.orchestration.preflight)

    def fit(self, split: Split, ctx: RunContext) -> None:
        self.setup(split, ctx)
        self.budget = {
            "profile": "none",
            "epochs": 0,
            "max_train_rows": 0,
            "max_valid_rows": 0,
            "max_seconds": 0,
        }
        ctx.say(f"{self.name}: zero-shot, no training")
        self.fit_info = {"training": "none (zero-shot)"}
