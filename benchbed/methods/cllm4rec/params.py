"""CLLM4Rec's parameters (``CLLM4RecParams``, read as ``method.p``) and its budgets, declared once.

Below the method's module so that the schedule and the stage trainer, which read the method through
Protocols, can name the type of ``p`` without importing the method. Defaults cite the paper (Zhu et al.,
WWW 2024) or the authors' code (yaochenzhu/LLM4Rec); ``../shared/protocols/cllm4rec.md`` has the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchbed.llm.budget import BudgetProfiles
from benchbed.methods.cllm4rec.model import MR_FORMS
from benchbed.param_sets import AutoCap, AutoInt, ParamSet, param
from benchbed.params import Param

VARIANTS = ("cllm4rec", "llm-cf", "llm-scratch", "llm-ftall", "llm-fixord", "llm-prerec")
REC_TARGETS = ("all", "heldout")
CONTENT_MODES = ("auto", "reviews", "item-metadata", "none")
PROMPT_HISTORIES = ("train", "given")
TRAIN_POSITIVES = ("auto", "all", "label")
# Budgets in data terms. GPU = the paper's schedule [App. B.2; code]; CPU = a small one for ml-100k + tiny on
# 2 cores (minutes): a few epochs per stage and a fixed seeded sample of content documents.
PAPER_BUDGET: dict[str, Any] = {
    "warmup_epochs": 10,
    "pretrain_epochs": 100,
    "finetune_epochs": 150,
    "max_content_docs": 0,  # 0 = all
    "max_content_tokens": 1024,  # the code's max length
    "max_valid_users": 0,
}
CPU_BUDGET: dict[str, Any] = {
    "warmup_epochs": 1,
    "pretrain_epochs": 3,
    "finetune_epochs": 4,
    "max_content_docs": 2000,
    "max_content_tokens": 48,
    "max_valid_users": 0,
}
BUDGETS = BudgetProfiles(
    {"cpu": CPU_BUDGET, "gpu": PAPER_BUDGET}, labels={"gpu": "gpu (paper schedule)"}, as_int=True
)
BUDGET_KEYS = BUDGETS.keys


def _choice(choices: tuple[str, ...], help: str = "") -> Param:
    return Param(kind="str", choices=choices, help=help)


# choices and the open mask interval are declared below; the rest (lambda_c >= 0, lr > 0, epochs >= 0 or
# auto, ...) comes from benchbed.params' naming conventions and the defaults' types
@dataclass(frozen=True)
class CLLM4RecParams(ParamSet):
    """The variant, the losses and their schedule, the documents, and the budget (``BUDGETS``)."""

    backbone: str = "tiny"  # tiny GPT-2 (tied head) on CPU; "gpt2" = the paper's GPT-2 (124M)
    # or llm-cf | llm-scratch | llm-ftall | llm-fixord | llm-prerec (Table 1)
    variant: str = param("cllm4rec", _choice(VARIANTS, "Table 1 variant"))
    lambda_c: float = 1.0  # MR strength; best ~1 on all public sets (Fig. 4), scripts/run.sh uses 1
    # "code": lambda*sum(d^2) (MSELoss sum); "paper": lambda/2*sum(d^2) (§2i.3)
    mr_form: str = param("code", _choice(MR_FORMS))
    # code: all training items; "heldout": the masked ones (paper §3.4.2; §2i.1)
    rec_target: str = param("all", _choice(REC_TARGETS))
    # masked share of a user's items per epoch, at least one (code: data.py)
    mask_ratio: float = param(0.2, Param(kind="float", min=0, max=1, exclusive_min=True, exclusive_max=True))
    reorder_pretrain: bool = True  # paper §3.3.4; the code does not permute (False = code-faithful)
    reorder_finetune: bool = True  # paper and code: rec prompts shuffled
    code_shift: bool = False  # False: first main token predicted from the prompt (paper A.1); True: code
    lr_pretrain: float = 1e-3  # Adam, warm-up + L-step + C-step (code: training.py)
    lr_finetune: float = 1e-4  # Adam, RecLLM + C-step (code: finetuning.py)
    batch_size: int = 20  # per process in the code (x8 processes); keeps the code's LM-vs-MR weighting
    # micro-batches per optimizer step: the code's 8 processes x 20 are batch_size=20, grad_accum=8
    # under --num-processes 8 here (1 in one process, the CPU default: no accumulation)
    grad_accum: int = 1
    eval_batch_size: int = 64  # the code's 256 does not change results; smaller fits CPU memory
    max_length: int = 1024  # tokens (code: data.py), capped by the backbone's positions
    content: str = param("auto", _choice(CONTENT_MODES))  # auto | reviews | item-metadata | none
    shuffle_content: bool = False  # negative control: permute texts across content documents
    # prompts from all training items (code); "given": the task's histories
    prompt_history: str = param("train", _choice(PROMPT_HISTORIES))
    # auto: the task's feedback; "label": label-1 rows only (ratings > 3)
    train_positives: str = param("auto", _choice(TRAIN_POSITIVES))
    mask_train: bool = True  # training items never ranked (paper §3.5), whatever the task excludes
    # the budget (BUDGET_KEYS, in its order); auto: CPU_BUDGET on CPU, the paper's on a GPU. Read from the
    # resolved budget (CLLM4Rec.budget), never from here
    warmup_epochs: AutoInt = "auto"
    pretrain_epochs: AutoInt = "auto"
    finetune_epochs: AutoInt = "auto"
    # 0 used to mean "no cap" silently; "auto": the budget's (every document with the paper's budget)
    max_content_docs: AutoInt = param(
        "auto", Param(kind="int", min=1, auto=True, help="content documents sampled")
    )
    max_content_tokens: AutoInt = "auto"
    max_valid_users: AutoCap = "auto"


# every budget key is a parameter (its "auto" resolves from BUDGETS), declared last as the defaults were
assert tuple(CLLM4RecParams.default_values())[-len(BUDGET_KEYS) :] == BUDGET_KEYS
