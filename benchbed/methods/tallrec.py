"""TALLRec: LoRA-tune the LLM on text-only Yes/No prompts (history titles + target title).

This is the "w/o CIE" row of CoLLM and, step for step, CoLLM's step 1: both run the same cached stage
(``PromptCTRMethod.text_stage``), so `benchbed run --method collm` and `--method tallrec` with the same split,
seed and parameters train it once. Scoring follows the CoLLM code (raw "Yes" logit, BCE); TALLRec's own
P(Yes | Yes or No) is ``score=yes-no``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from benchbed.api import RunContext
from benchbed.data.schema import Split
from benchbed.llm.recipes.ctr import TRAIN_DEFAULTS, PromptCTRMethod
from benchbed.llm.yesno.head import SCORE_MODES
from benchbed.llm.yesno.scorer import SCORE_BATCHING
from benchbed.params import Param

# the prompt CTR methods' (tallrec, icl, collm) parameters that no naming convention covers
CTR_PARAM_SPECS: dict[str, Param] = {
    "score": Param(
        kind="str", choices=SCORE_MODES, help="yes: the Yes logit (CoLLM code); yes-no: P(Yes|Yes,No)"
    ),
    "score_batching": Param(kind="str", choices=SCORE_BATCHING),
    # titles are cut to this many characters (not nullable like other max_* caps: the prompt code needs one)
    "max_title_chars": Param(kind="int", min=1, help="characters of a title kept in the prompt"),
}


class TALLRec(PromptCTRMethod):
    """TALLRec: LoRA on the text-only prompt (history titles + target title); CoLLM's w/o CIE row."""

    name: ClassVar[str] = "tallrec"
    view: ClassVar[str] = "text"
    needs_decoder: ClassVar[bool] = False  # an encoder reads the answer at [MASK] (heads.masked_yesno)
    defaults: ClassVar[dict[str, Any]] = dict(TRAIN_DEFAULTS)
    param_specs: ClassVar[dict[str, Param]] = CTR_PARAM_SPECS

    def fit(self, split: Split, ctx: RunContext) -> None:
        self.setup(split, ctx)
        self.resolve_budget(ctx)
        prep = self.prepare_rows(split, ctx.seed)
        self.announce_budget(prep, ctx)
        self.fit_info = {"stage1": self.text_stage(split, ctx, prep)}
