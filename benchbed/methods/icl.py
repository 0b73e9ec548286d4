"""ICL: zero-shot P(Yes) from the frozen backbone, no training (the ICL row of CoLLM Table II).

Score = logit(Yes) - logit(No) at the answer position, i.e. the logit of P(Yes) renormalised over the two
answers (TALLRec's zero-shot scoring); ``score=yes`` gives the raw Yes logit instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from benchbed.api import RunContext
from benchbed.cards import MethodCard, ctr_llm
from benchbed.data.schema import Split
from benchbed.llm.recipes.ctr import SCORE_SPEC, PromptCTRMethod, PromptParams
from benchbed.param_sets import ParamSet, param


@dataclass(frozen=True)
class ICLParams(PromptParams):
    """The prompt settings; zero-shot scoring renormalised over Yes/No (TALLRec's zero-shot)."""

    score: str = param("yes-no", SCORE_SPEC)


class ICL(PromptCTRMethod):
    """Zero-shot yes/no from the frozen backbone on the text prompt; no training (CoLLM's ICL row)."""

    name: ClassVar[str] = "icl"
    card: ClassVar[MethodCard] = ctr_llm(
        "zero-shot ICL row of CoLLM Table II (seed 002)", "none", "decoder", ("score=yes",)
    )
    view: ClassVar[str] = "text"
    Params: ClassVar[type[ParamSet]] = ICLParams
    p: ICLParams
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
