"""TALLRec: LoRA-tune the LLM on text-only Yes/No prompts (history titles + target title).

This is the "w/o CIE" row of CoLLM and, step for step, CoLLM's step 1: both run the same cached stage
(``PromptCTRMethod.text_stage``), so `benchbed run --method collm` and `--method tallrec` with the same split,
seed and parameters train it once. Scoring follows the CoLLM code (raw "Yes" logit, BCE); TALLRec's own
P(Yes | Yes or No) is ``score=yes-no``.
"""

from __future__ import annotations

from typing import ClassVar

from benchbed.api import RunContext
from benchbed.cards import MethodCard, ctr_llm
from benchbed.data.schema import Split
from benchbed.llm.recipes.ctr import LoraPromptParams, PromptCTRMethod
from benchbed.param_sets import ParamSet


class TALLRec(PromptCTRMethod):
    """TALLRec: LoRA on the text-only prompt (history titles + target title); CoLLM's w/o CIE row."""

    name: ClassVar[str] = "tallrec"
    card: ClassVar[MethodCard] = ctr_llm(
        "TALLRec (Bao et al., RecSys 2023); CoLLM's w/o CIE row",
        "none",
        "decoder-or-encoder",
        ("score=yes-no",),
        "SAI990323/TALLRec",
    )
    view: ClassVar[str] = "text"
    needs_decoder: ClassVar[bool] = False  # an encoder reads the answer at [MASK] (yesno.masked_head)
    Params: ClassVar[type[ParamSet]] = LoraPromptParams
    p: LoraPromptParams

    def fit(self, split: Split, ctx: RunContext) -> None:
        self.setup(split, ctx)
        self.resolve_budget(ctx)
        prep = self.prepare_rows(split, ctx.seed)
        self.announce_budget(prep, ctx)
        self.fit_info = {"stage1": self.text_stage(self.stage_chain(split, ctx), ctx, prep)}
