"""RA-Rec's parameters (``RARecParams``, read as ``method.p``) and its budgets, declared once.

Below the method's module so that tuning and the ID vectors, which read the method through a Protocol or
take its parameters, can name their type without importing the method. What is not the paper's (and why)
is said beside each default; ``../shared/protocols/rarec.md`` is the source of every recommended choice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from benchbed.embeddings.store import EXPORTABLE
from benchbed.llm.budget import BudgetProfiles
from benchbed.llm.heads.pooled import POOLINGS
from benchbed.methods.rarec.data import SELECTIONS
from benchbed.methods.rarec.towers import USER_PROMPT, VARIANTS
from benchbed.param_sets import AutoCap, AutoInt, ParamSet, param
from benchbed.params import COUNT, Param

# Budgets in data terms. CPU: a seeded sample of 600 tuning samples, 1 epoch, prompts cut to 64 tokens
# (~6 recent ml-100k titles), no validation passes: `benchbed run --method rarec` then trains in minutes on
# 2 cores. GPU: the paper's scale, ~6% of the candidates (Table 5: 20w of 330w), 512-token prompts.
CPU_BUDGET: dict[str, Any] = {"train_samples": 600, "epochs": 1, "max_tokens": 64, "valid_users": 0}
GPU_BUDGET: dict[str, Any] = {"train_samples": 0.06, "epochs": 3, "max_tokens": 512, "valid_users": 2000}
BUDGETS = BudgetProfiles({"cpu": CPU_BUDGET, "gpu": GPU_BUDGET}, flag_auto=True)
BUDGET_KEYS = BUDGETS.keys
MISSING_TITLES = ("error", "id")
USER_IDS = ("export", "history")
ID_NORMS = ("none", "standardize")
ID_MODEL = Param(
    kind="str",
    pattern="|".join(re.escape(m) for m in EXPORTABLE) + r"|recbole:\w+",
    help=f"a method that exports ID embeddings: {', '.join(EXPORTABLE)} or recbole:<model>",
)


def _choice(choices: tuple[str, ...]) -> Param:
    return Param(kind="str", choices=choices)


@dataclass(frozen=True)
class RARecParams(ParamSet):
    """The variant, the ID model, the tuning set and its training, the towers' prompts and ID vectors.
    Types, ranges and choices not given here come from ``benchbed.params``' naming conventions."""

    backbone: str = "minilm"  # CPU stand-in for SentenceBERT (§4.1.4); any HF encoder/decoder id or path
    # Table 4 ablations and the text towers: see rarec.towers.VARIANTS
    variant: str = param("full", _choice(VARIANTS))
    # §4.1.4: ComiRec with 1 interest; any exporting baseline (sasrec, als, ...)
    id_model: str = param("comirec", ID_MODEL)
    # parameters of the ID model (None: its defaults)
    id_params: dict[str, Any] | None = param(
        None, Param(kind="dict", nullable=True, help="parameters of id_model (checked by it)")
    )
    permute_ids: bool = False  # negative control: ID rows permuted across users and across items
    # §3.4 denoising + diversity buckets; random | all (Table 5)
    selection: str = param("efficient", _choice(SELECTIONS))
    # the budget (BUDGET_KEYS): read from the resolved budget (RARec.budget), never from here
    train_samples: AutoInt = "auto"  # tuning-set size (§4.1.1: 200K/300K); auto: see CPU_BUDGET/GPU_BUDGET
    epochs: AutoInt = "auto"  # not given; auto: CPU 1, GPU 3
    max_tokens: AutoCap = (
        "auto"  # prompt cut (most recent titles kept, rarec.md §3i.8); auto: CPU 64, GPU 512
    )
    valid_users: AutoInt = (
        "auto"  # validation users for best-epoch selection (NDCG@10); auto: CPU 0, GPU 2000
    )
    history_len: int = param(50, COUNT)  # titles considered per history (benchbed's topk history_len)
    batch_size: int = 32  # not given (rarec.md suggests 256 on a GPU; 32 keeps CPU steps short)
    grad_accum: int = 1  # micro-batches per step (data parallel: a multiple of the processes); not given
    lr: float = 5e-4  # §4.1.4: AdamW, initial learning rate 5e-4
    # lambda of Eq. 16 (the InfoNCE alignment loss): not given, and no table ablates it. rarec.md §3i.6:
    # pick it on validation. ml-100k (issue 22: `benchbed tune -m rarec -t topk --split leave-one-out
    # -g lam=0,0.01,0.1,1`) valid NDCG@10: 0.0246 at 0 and 0.01, 0.0240 at 0.1, 0.0212 at 1; the planted
    # two-signal test: HR@5 at 0 vs 0.1 over seeds 0-2 0.906/0.938/0.813 vs 0.688/0.906/0.844. So 0 (BPR
    # alone) by default; lam > 0 (e.g. 0.1, rarec.md's suggestion and the default before) adds Eqs. 14-15.
    lam: float = 0.0
    tau: float = 0.5  # §4.1.4: temperature 0.5
    reg: float = 1e-6  # lambda_Theta of Eq. 13: not given; rarec.md §3f suggests 1e-6
    # not given: mean for encoders, last token for decoders (rarec.md §3b)
    pooling: str = param("auto", _choice(("auto", *POOLINGS)))
    # §3.1.1's hard prompt
    user_prompt: str = param(
        USER_PROMPT, Param(kind="str", pattern=r"(?s).*\S.*", help="the hard prompt text")
    )
    # items without a title: error | id (the raw id as its title)
    missing_titles: str = param("error", _choice(MISSING_TITLES))
    # The user's ID vector: "export" = the ID model's exported user row (§3.1.2: u from the trained ID
    # model; for ComiRec the interest vector of the whole training history, so a training sample's
    # target is inside it); "history" = the mean of the ID model's item vectors over the last 20 items
    # before the prediction point (ComiRec's maxlen), the same history the text tower reads (rarec.md
    # §3i.4 asks for the vector at prediction time, which the array cache cannot give).
    user_ids: str = param("export", _choice(USER_IDS))
    # ID vectors before W^l x + b^l: "standardize" = per dimension zero mean and unit variance over the
    # side's rows (users, items), so the 0.02-bounded init (§4.1.4) meets the same input scale whatever
    # the ID model (ComiRec's rows have norm ~1-2, ALS's others); "none" = as exported. Not in the paper.
    id_norm: str = param("none", _choice(ID_NORMS))
    # Items without a training interaction have no trained ID vector (the ID model exports its random
    # init): "zero" gives them the zero vector, so their prefix is b^l alone and the title decides, the
    # hybrid prompt's cold-start role (§3.1.3); "keep" = the exported rows. Not in the paper.
    cold_ids: str = param("zero", _choice(("zero", "keep")))


# every budget key is a parameter (its "auto" resolves from BUDGETS)
assert set(BUDGET_KEYS) <= set(RARecParams.default_values())
