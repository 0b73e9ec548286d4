"""The stages of the Yes/No CTR methods (``icl``, ``tallrec``, ``collm``) from the real split and templates.

The prompts are rendered and tokenized by the methods' own :class:`benchbed.llm.yesno.scorer.YesNoScorer`
(the bank's
views, history length, title clipping, ``max_length``), with the backbone's tokenizer when it is available
offline; otherwise with the bundled WordPiece tokenizer, and the plan says so. Budgets resolve as on a GPU
(``benchbed.llm.budget``: ``auto`` = all rows), since a plan prices GPU runs; explicit budget parameters win.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from benchbed.data.schema import Split
from benchbed.llm.backbone.facts import is_encoder
from benchbed.llm.backbone.loaded import Backbone
from benchbed.llm.budget import resolve
from benchbed.llm.lora import LoraSpec
from benchbed.llm.recipes.ctr import LoraPromptParams, PromptParams
from benchbed.llm.yesno.scorer import YesNoScorer, rows_from_frame
from benchbed.plan.counts import lora_count, mlp_parameters
from benchbed.plan.flops import Trainable, mlp_flops
from benchbed.plan.stages import StagePlan

if TYPE_CHECKING:
    from benchbed.methods.collm import CoLLMParams

CTR_METHODS = ("icl", "tallrec", "collm")


def scorer_for(
    method: Any, split: Split, tokenizer: Any, name: str, *, is_decoder: bool = True
) -> YesNoScorer:
    p: PromptParams = method.p
    handle = Backbone(
        name=name, model=None, tokenizer=tokenizer, device="cpu", dtype=torch.float32, is_decoder=is_decoder
    )
    return YesNoScorer(
        handle,
        method.bank,
        titles=split.data.item_titles(),
        domain=split.data.domain,
        history_len=p.history_len,
        max_title_chars=p.max_title_chars,
        max_length=p.max_length,
        batch_size=p.batch_size,
        score_mode=p.score,
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
    from benchbed.methods.collm import CoLLMParams

    p: PromptParams = method.p
    name = method.name
    # an encoder's prompts end with [MASK] [SEP] (yesno.masked_head): counted like the other tokens
    encoder = is_encoder(config)
    scorer = scorer_for(method, split, tokenizer, backbone_name, is_decoder=not encoder)
    hl = p.history_len
    stages: list[StagePlan] = []
    bs = p.batch_size
    if isinstance(p, LoraPromptParams):  # tallrec, collm (icl trains nothing)
        run = _Training.of(p, method.params, split, scorer, config, seed)
        tuning = p.tuning if isinstance(p, CoLLMParams) else "default"
        if tuning != "t3":
            stages += run.text_stages(bs)
        if isinstance(p, CoLLMParams):
            stages += run.cie_stages(p, split, config, bs)
    view = "cf" if name == "collm" else "text"
    test = rows_from_frame(test_frame, hl)
    for tpl in templates:
        stages.append(StagePlan(f"test ({tpl})", "eval", _lengths(scorer, test, tpl, view), 4 * bs))
    return stages


@dataclass
class _Training:
    """The rows a trained CTR method sees (its budget's subsample, one template each) and its LoRA."""

    scorer: YesNoScorer
    train: Any
    valid: Any
    which: np.ndarray
    epochs: int
    evals: int
    spec: LoraSpec
    lora: Any
    accum: int

    @classmethod
    def of(
        cls,
        p: LoraPromptParams,
        params: dict[str, Any],
        split: Split,
        scorer: YesNoScorer,
        config: Any,
        seed: int,
    ) -> _Training:
        """``p`` the method's view, ``params`` the same values as a dict (what the budget resolves)."""
        budget = resolve(params, {}, on_cpu=False)
        train, valid = _prepare(split, p.history_len, budget, seed)
        which = np.random.default_rng([seed, 29]).integers(0, p.train_templates, size=len(train))
        epochs = int(budget["epochs"])
        spec = LoraSpec.from_params(params)
        lora = lora_count(config, spec)
        evals = epochs * p.evals_per_epoch
        return cls(scorer, train, valid, which, epochs, evals, spec, lora, p.grad_accum)

    def text_stages(self, bs: int) -> list[StagePlan]:
        """LoRA on the text prompts (TALLRec; CoLLM's first step) and its validation."""
        targets = tuple(self.lora.targets)
        return [
            StagePlan(
                "lora-text",
                "train",
                _lengths(self.scorer, self.train, self.which, "text"),
                bs,
                epochs=self.epochs,
                grad_accum=self.accum,
                train=Trainable("lora", targets, self.spec.r),
                trainable_in_backbone=self.lora.trainable,
            ),
            StagePlan(
                "lora-text valid",
                "eval",
                _lengths(self.scorer, self.valid, "seen", "text"),
                4 * bs,
                passes=self.evals,
            ),
        ]

    def cie_stages(self, p: CoLLMParams, split: Split, config: Any, bs: int) -> list[StagePlan]:
        """CoLLM's CIE step: the MLP mapping CF embeddings (t3: with LoRA; t1/t2: with the CF tables)."""
        targets = tuple(self.lora.targets)
        hidden = int(config.hidden_size if hasattr(config, "hidden_size") else config.n_embd)
        d = cf_dim(p)
        tuning = p.tuning
        sizes = [d, p.mlp_ratio * d, hidden]
        mlp_n = mlp_parameters(sizes)
        both = tuning == "t3"
        # t1/t2 also tune the CF representation tables (collm.CIE, tune_tables)
        tables = (split.n_users + split.n_items) * d if tuning in ("t1", "t2") else 0
        return [
            StagePlan(
                f"cie-{tuning}",
                "train",
                _lengths(self.scorer, self.train, self.which, "cf"),
                bs,
                epochs=self.epochs,
                grad_accum=self.accum,
                train=Trainable("lora" if both else "none", targets, self.spec.r, inputs_grad=True),
                trainable_in_backbone=self.lora.trainable if both else 0,
                trainable_outside=mlp_n + tables,
                extra_flops_per_row=mlp_flops(sizes, 2, train=True),
                notes=[f"CIE MLP {' -> '.join(map(str, sizes))} ({mlp_n:,} parameters)"]
                + ([f"CF tables tuned ({tables:,} parameters)"] if tables else []),
            ),
            StagePlan(
                f"cie-{tuning} valid",
                "eval",
                _lengths(self.scorer, self.valid, "seen", "cf"),
                4 * bs,
                passes=self.evals,
                extra_flops_per_row=mlp_flops(sizes, 2, train=False),
            ),
        ]


def _prepare(split: Split, hl: int, budget: dict[str, Any], seed: int) -> tuple[Any, Any]:
    train, valid = rows_from_frame(split.train, hl), rows_from_frame(split.valid, hl)
    rng = np.random.default_rng([seed, 17])
    n_tr, n_va = int(budget["max_train_rows"] or 0), int(budget["max_valid_rows"] or 0)
    tr = np.sort(rng.permutation(len(train))[:n_tr]) if 0 < n_tr < len(train) else np.arange(len(train))
    va = np.sort(rng.permutation(len(valid))[:n_va]) if 0 < n_va < len(valid) else np.arange(len(valid))
    return train.take(tr), valid.take(va)


def cf_dim(p: CoLLMParams) -> int:
    """The CF embedding width CoLLM maps: the CF model's ``dim`` on ``ctr`` unless ``cf_params`` sets it."""
    from benchbed.methods import method_defaults

    cf = p.cf
    extra = dict(p.cf_params or {})
    for key in ("dim", "embedding_size"):
        if key in extra:
            return int(extra[key])
    if cf.endswith(".npz"):
        with np.load(cf) as z:
            return int(z["item"].shape[1])
    return int(method_defaults(cf, "ctr")["dim"])
