"""The stages of the Yes/No CTR methods (``icl``, ``tallrec``, ``collm``) from the real split and templates.

The prompts are rendered and tokenized by the methods' own :class:`benchbed.llm.yesno.scorer.YesNoScorer`
(the bank's
views, history length, title clipping, ``max_length``), with the backbone's tokenizer when it is available
offline; otherwise with the bundled WordPiece tokenizer, and the plan says so. Budgets resolve as on a GPU
(``benchbed.llm.budget``: ``auto`` = all rows), since a plan prices GPU runs; explicit budget parameters win.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from benchbed.data.schema import Split
from benchbed.llm.backbone.loaded import Backbone
from benchbed.llm.backbone.loader import ENCODER_TYPES
from benchbed.llm.budget import resolve
from benchbed.llm.lora import LoraSpec
from benchbed.llm.yesno.scorer import YesNoScorer, rows_from_frame
from benchbed.plan.counts import lora_count, mlp_parameters
from benchbed.plan.flops import Trainable, mlp_flops
from benchbed.plan.stages import StagePlan

CTR_METHODS = ("icl", "tallrec", "collm")


def scorer_for(
    method: Any, split: Split, tokenizer: Any, name: str, *, is_decoder: bool = True
) -> YesNoScorer:
    p = method.params
    handle = Backbone(
        name=name, model=None, tokenizer=tokenizer, device="cpu", dtype=torch.float32, is_decoder=is_decoder
    )
    return YesNoScorer(
        handle,
        method.bank,
        titles=split.data.item_titles(),
        domain=split.data.domain,
        history_len=int(p["history_len"]),
        max_title_chars=int(p["max_title_chars"]),
        max_length=int(p["max_length"]),
        batch_size=int(p["batch_size"]),
        score_mode=str(p.get("score", "yes-no")),
    )


def _lengths(scorer: YesNoScorer, rows: Any, which: Any, view: str) -> np.ndarray:
    return np.asarray(scorer.encode(rows, which, view).lengths, dtype=np.int64)


def ctr_stages(
    method: Any,
    split: Split,
    tokenizer: Any,
    config: Any,
    *,
    backbone_name: str,
    seed: int,
    test_frame: Any,
    templates: tuple[str, ...],
) -> list[StagePlan]:
    p = method.params
    name = method.name
    # an encoder's prompts end with [MASK] [SEP] (heads.masked_yesno): counted like the other tokens
    encoder = getattr(config, "model_type", "") in ENCODER_TYPES
    scorer = scorer_for(method, split, tokenizer, backbone_name, is_decoder=not encoder)
    hl = int(p["history_len"])
    stages: list[StagePlan] = []
    bs = int(p["batch_size"])
    if name != "icl":
        budget = resolve(p, {}, on_cpu=False)
        prep = _prepare(split, hl, budget, seed)
        train, valid = prep
        n_tpl = int(p["train_templates"])
        which = np.random.default_rng([seed, 29]).integers(0, n_tpl, size=len(train))
        epochs = int(budget["epochs"])
        evals = epochs * int(p["evals_per_epoch"])
        spec = LoraSpec.from_params(p)
        lora = lora_count(config, spec)
        targets = tuple(lora.targets)
        accum = int(p["grad_accum"])
        tuning = p.get("tuning", "default")
        if name == "tallrec" or tuning != "t3":
            stages.append(
                StagePlan(
                    "lora-text",
                    "train",
                    _lengths(scorer, train, which, "text"),
                    bs,
                    epochs=epochs,
                    grad_accum=accum,
                    train=Trainable("lora", targets, spec.r),
                    trainable_in_backbone=lora.trainable,
                )
            )
            stages.append(
                StagePlan(
                    "lora-text valid", "eval", _lengths(scorer, valid, "seen", "text"), 4 * bs, passes=evals
                )
            )
        if name == "collm":
            hidden = int(config.hidden_size if hasattr(config, "hidden_size") else config.n_embd)
            d = cf_dim(p)
            sizes = [d, int(p["mlp_ratio"]) * d, hidden]
            mlp_n = mlp_parameters(sizes)
            both = tuning == "t3"
            # t1/t2 also tune the CF representation tables (collm.CIE, tune_tables)
            tables = (split.n_users + split.n_items) * d if tuning in ("t1", "t2") else 0
            stages.append(
                StagePlan(
                    f"cie-{tuning}",
                    "train",
                    _lengths(scorer, train, which, "cf"),
                    bs,
                    epochs=epochs,
                    grad_accum=accum,
                    train=Trainable("lora" if both else "none", targets, spec.r, inputs_grad=True),
                    trainable_in_backbone=lora.trainable if both else 0,
                    trainable_outside=mlp_n + tables,
                    extra_flops_per_row=mlp_flops(sizes, 2, train=True),
                    notes=[f"CIE MLP {' -> '.join(map(str, sizes))} ({mlp_n:,} parameters)"]
                    + ([f"CF tables tuned ({tables:,} parameters)"] if tables else []),
                )
            )
            stages.append(
                StagePlan(
                    f"cie-{tuning} valid",
                    "eval",
                    _lengths(scorer, valid, "seen", "cf"),
                    4 * bs,
                    passes=evals,
                    extra_flops_per_row=mlp_flops(sizes, 2, train=False),
                )
            )
    view = "cf" if name == "collm" else "text"
    test = rows_from_frame(test_frame, hl)
    for tpl in templates:
        stages.append(StagePlan(f"test ({tpl})", "eval", _lengths(scorer, test, tpl, view), 4 * bs))
    return stages


def _prepare(split: Split, hl: int, budget: dict[str, Any], seed: int) -> tuple[Any, Any]:
    train, valid = rows_from_frame(split.train, hl), rows_from_frame(split.valid, hl)
    rng = np.random.default_rng([seed, 17])
    n_tr, n_va = int(budget["max_train_rows"] or 0), int(budget["max_valid_rows"] or 0)
    tr = np.sort(rng.permutation(len(train))[:n_tr]) if 0 < n_tr < len(train) else np.arange(len(train))
    va = np.sort(rng.permutation(len(valid))[:n_va]) if 0 < n_va < len(valid) else np.arange(len(valid))
    return train.take(tr), valid.take(va)


def cf_dim(params: dict[str, Any]) -> int:
    """The CF embedding width CoLLM maps: the CF model's ``dim`` on ``ctr`` unless ``cf_params`` sets it."""
    from benchbed.methods import method_defaults

    cf = str(params["cf"])
    extra = dict(params.get("cf_params") or {})
    for key in ("dim", "embedding_size"):
        if key in extra:
            return int(extra[key])
    if cf.endswith(".npz"):
        with np.load(cf) as z:
            return int(z["item"].shape[1])
    return int(method_defaults(cf, "ctr")["dim"])
