"""What ``icl``, ``tallrec`` and ``collm`` share: backbone + prompt bank setup, the CPU/GPU budget, the
text-only LoRA stage (TALLRec = CoLLM step 1, cached and shared), and scoring ``ScoreRequests``.

Budget: parameters ``epochs``, ``max_train_rows``, ``max_valid_rows`` and ``max_seconds`` default to
``auto``, resolved at fit time from the device: on CPU a small budget that lets
``benchbed run --method collm`` finish in minutes on 2 cores (``benchbed.llm.budget.CPU_BUDGET``: a seeded
subsample of training rows, a couple of epochs, no time cap); on a GPU the full protocol data (all rows).
The resolved budget is printed and recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from benchbed.api import BaseRecommender, RunContext, ScoreRequests
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.llm import stages
from benchbed.llm.backbone.loader import Backbone, check_backbone_name, load_backbone
from benchbed.llm.budget import (
    BUDGET_KEYS,
    CTR_BUDGETS,
    BudgetProfiles,
    device_profile,
    seconds_cap,
    time_capped,
)
from benchbed.llm.lora import LoraSpec, add_lora, load_lora_state, lora_state
from benchbed.llm.stages import StageChain, StageSpec
from benchbed.llm.train import TrainConfig, TrainResult, train
from benchbed.llm.yesno.head import SCORE_MODES, bce_loss
from benchbed.llm.yesno.masked_head import HEAD_INFO, HEAD_NAME
from benchbed.llm.yesno.scorer import SCORE_BATCHING, Rows, VectorFn, YesNoScorer, rows_from_frame
from benchbed.param_sets import AutoCap, AutoInt, AutoNumber, ParamSet, param
from benchbed.params import Param
from benchbed.prompts import load_bank

# the prompt CTR methods' (tallrec, icl, collm) specs that no naming convention covers
SCORE_SPEC = Param(
    kind="str", choices=SCORE_MODES, help="yes: the Yes logit (CoLLM code); yes-no: P(Yes|Yes,No)"
)


@dataclass(frozen=True)
class PromptParams(ParamSet):
    """What every Yes/No prompt method reads (icl, tallrec, collm): backbone, prompt and scoring."""

    backbone: str = "tiny"  # preset, alias (vicuna-7b, qwen2-1.5b, ...), hub id or local path
    bank: str = "ctr"  # prompt bank name or YAML path
    history_len: int = 10  # TALLRec/CoLLM: last 10 history items
    # titles are cut to this many characters (not nullable like other max_* caps: the prompt code needs one)
    max_title_chars: int = param(
        100, Param(kind="int", min=1, help="characters of a title kept in the prompt")
    )
    max_length: int = 512  # tokens; oldest history is cut first
    batch_size: int = 16  # CoLLM ML-1M: 16 (Amazon: 8)
    # scoring batches: rows (as the committed records) | tokens (token budget) | prefix (rows of one user and
    # history share the prompt prefix, encoded once; 2.3x on CPU, scores within ~1e-7;
    # benchbed.llm.yesno.fast_scoring)
    score_batching: str = param("rows", Param(kind="str", choices=SCORE_BATCHING))
    # test also scores the held-out unseen template (false halves test scoring: the encoder CPU runs)
    eval_unseen: bool = True
    # CoLLM code: raw logit of "Yes"; "yes-no" = TALLRec's P(Yes | Yes or No)
    score: str = param("yes", SCORE_SPEC)


@dataclass(frozen=True)
class PromptTrainParams(PromptParams):
    """The recipe's training loop (``train_prompts``): CoLLM's settings for LLM-based methods."""

    # seen paraphrases sampled per training row (1 = template 0 only, as the papers)
    train_templates: int = 10
    lr: float = 1e-3  # CoLLM ML-1M: 1e-3 (TALLRec: 1e-4)
    weight_decay: float = 1e-3  # CoLLM: 1e-3 for LLM-based methods
    warmup_ratio: float = 0.05
    grad_accum: int = 1
    patience: int = 20  # CoLLM: early stop after 20 evaluations without valid-AUC improvement
    evals_per_epoch: int = 1


@dataclass(frozen=True)
class LoraPromptParams(PromptTrainParams):
    """A prompt method that LoRA-tunes the backbone (tallrec, collm): the LoRA and the budget."""

    lora_r: int = 8  # TALLRec/CoLLM LoRA: r=8, alpha=16, dropout=0.05 on q_proj,v_proj
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: str = "q_proj,v_proj"
    epochs: AutoInt = "auto"
    max_train_rows: AutoCap = "auto"  # 0 = all
    max_valid_rows: AutoCap = "auto"  # 0 = all
    max_seconds: AutoNumber = (
        "auto"  # per training stage; 0 = no cap (the default: budgets are in data terms)
    )


# the parameters that determine the text-only LoRA stage (shared by tallrec and collm step 1)
TEXT_STAGE_KEYS = (
    "backbone",
    "bank",
    "history_len",
    "max_title_chars",
    "max_length",
    "batch_size",
    "score",
    "train_templates",
    "lr",
    "weight_decay",
    "warmup_ratio",
    "grad_accum",
    "patience",
    "evals_per_epoch",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_targets",
    *BUDGET_KEYS,
)


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Validation AUC for early stopping; 0.5 when the subsample has a single class."""
    from sklearn.metrics import roc_auc_score

    if len(np.unique(labels)) < 2:
        return 0.5
    return float(roc_auc_score(labels, scores))


@dataclass
class Prepared:
    """Training/validation rows of a fit, after the budget's subsampling."""

    train: Rows
    valid: Rows
    n_train_total: int
    n_valid_total: int


class PromptCTRMethod(BaseRecommender):
    """Base for Yes/No prompt methods; subclasses set ``view`` and implement ``fit``."""

    tasks: ClassVar[frozenset[str]] = frozenset({"ctr"})
    uses_templates: ClassVar[bool] = True
    score_kind: ClassVar[str] = "logit"  # scores are logits: sigmoid gives P(Yes)
    # how test rows are batched for scoring, and whether the unseen template is scored too
    evaluation_only: ClassVar[frozenset[str]] = frozenset({"score_batching", "eval_unseen"})
    Params: ClassVar[type[ParamSet]] = PromptParams
    p: PromptParams
    budgets: ClassVar[BudgetProfiles] = CTR_BUDGETS  # cpu / gpu / cpu-encoder (benchbed.llm.budget)
    view: ClassVar[str] = "text"
    needs_decoder: ClassVar[bool] = True
    # slots whose vector depends on the user only, so prefix reuse may share them within a (user, history)
    shared_slots: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)  # checks every parameter against the specs of Params
        # fail before a run starts: bad backbone names and templates without their placeholders
        check_backbone_name(self.p.backbone)
        if self.needs_decoder and self.p.backbone == "minilm":
            raise ConfigError(
                f"backbone 'minilm' is encoder-only (BertModel); method {self.name!r} needs a causal "
                f"decoder (it reads an untrained answer head zero-shot): use --backbone tiny or a local path "
                f"to a causal LM, or tallrec/collm, which train a masked-answer head on an encoder"
            )
        # the test also scores the unseen template unless eval_unseen is false (benchbed.tasks.subsets)
        self.eval_unseen = self.p.eval_unseen
        self.bank = load_bank(self.p.bank)
        train_templates = self.p.train_templates if isinstance(self.p, PromptTrainParams) else 1
        if not 1 <= train_templates <= len(self.bank.seen):
            raise ConfigError(
                f"method {self.name!r}: train_templates={train_templates}; the bank "
                f"{self.bank.name!r} has {len(self.bank.seen)} seen templates"
            )
        self.template_set: dict[str, Any] = self.bank.info(self.view, train_templates)
        # what the runner writes as the record's ``templates``
        self.template_info: dict[str, Any] = {"set": f"{self.bank.name}/{self.view}", **self.template_set}
        self.budget: dict[str, Any] = {}
        self.fit_info: dict[str, Any] = {}
        self.backbone: Backbone | None = None
        self.scorer: YesNoScorer | None = None
        self.model: Any = None
        self._trainable = 0

    # --- setup ----------------------------------------------------------------------------------------------
    def setup(self, split: Split, ctx: RunContext) -> None:
        if not split.labeled:
            raise ConfigError(
                f"method {self.name!r} needs a labeled split (CTR labels); {split.data.name!r} has none"
            )
        self.backbone = load_backbone(self.p.backbone, device=ctx.device or None, dtype=ctx.dtype or None)
        if self.needs_decoder:
            self.backbone.require_decoder(self.name)
        self.backbone_info = self.backbone.record_info()
        if not self.backbone.is_decoder:  # the record names the masked-answer head and its initialisation
            self.backbone_info["head"] = dict(HEAD_INFO)
        self.scorer = YesNoScorer(
            self.backbone,
            self.bank,
            titles=split.data.item_titles(),
            domain=split.data.domain,
            history_len=self.p.history_len,
            max_title_chars=self.p.max_title_chars,
            max_length=self.p.max_length,
            batch_size=self.p.batch_size,
            score_mode=self.p.score,
            batching=self.p.score_batching,
            shared_slots=self.shared_slots,
        )
        self.model = self.backbone.model
        ctx.say(
            f"{self.name}: backbone {self.backbone.info['id']} ({self.backbone.info['revision']}, "
            f"{self.backbone.info['dtype']} on {self.backbone.device}); templates "
            f"{self.bank.name}/{self.view} #{self.template_set['hash']}"
        )

    def resolve_budget(self, ctx: RunContext) -> dict[str, Any]:
        """``auto`` budget values from the device profile (``benchbed.llm.budget``)."""
        on_cpu = self.backbone is None or self.backbone.device == "cpu"
        encoder = self.backbone is not None and not self.backbone.is_decoder
        self.budget = self.budgets.resolve(self.params, ctx.budget, device_profile(on_cpu, encoder=encoder))
        return self.budget

    def prepare_rows(self, split: Split, seed: int) -> Prepared:
        hl = self.p.history_len
        train, valid = rows_from_frame(split.train, hl), rows_from_frame(split.valid, hl)
        rng = np.random.default_rng([seed, 17])
        n_tr, n_va = int(self.budget["max_train_rows"] or 0), int(self.budget["max_valid_rows"] or 0)
        tr_idx = (
            np.sort(rng.permutation(len(train))[:n_tr]) if 0 < n_tr < len(train) else np.arange(len(train))
        )
        va_idx = (
            np.sort(rng.permutation(len(valid))[:n_va]) if 0 < n_va < len(valid) else np.arange(len(valid))
        )
        return Prepared(train.take(tr_idx), valid.take(va_idx), len(train), len(valid))

    def announce_budget(self, prep: Prepared, ctx: RunContext) -> None:
        b = self.budget
        secs = f"{b['max_seconds']} s per stage" if b["max_seconds"] else "no time cap"
        ctx.say(
            f"{self.name}: budget ({b['profile']} profile) epochs={b['epochs']}, "
            f"train rows={len(prep.train)} of {prep.n_train_total}, "
            f"valid rows={len(prep.valid)} of {prep.n_valid_total}, {secs}"
        )

    @property
    def trained_p(self) -> PromptTrainParams:
        """The training settings: declared by the methods that train (tallrec, collm), not by icl."""
        if not isinstance(self.p, PromptTrainParams):
            raise TypeError(f"method {self.name!r} declares no training parameters")
        return self.p

    def train_config(self, lr: float | None = None) -> TrainConfig:
        p = self.trained_p
        return TrainConfig(
            lr=float(lr if lr is not None else p.lr),
            weight_decay=float(p.weight_decay),
            epochs=int(self.budget["epochs"]),
            warmup_ratio=float(p.warmup_ratio),
            grad_accum=p.grad_accum,
            patience=p.patience,
            evals_per_epoch=p.evals_per_epoch,
            max_seconds=seconds_cap(self.budget["max_seconds"]),
        )

    def lora_spec(self) -> LoraSpec:
        return LoraSpec.from_params(self.params)

    def stage_chain(self, split: Split, ctx: RunContext) -> StageChain:
        """The fit's stages, with what all of them read: the split, the backbone, the seed, the budget (and,
        for encoders only, the head that reads the answer: decoder keys stay as they were)."""
        assert self.backbone is not None
        head = {} if self.backbone.is_decoder else {"head": HEAD_NAME}
        budget = {k: self.budget[k] for k in BUDGET_KEYS}
        context = stages.run_context(
            split.key, self.backbone.info, ctx.seed, budget=budget, version=1, **head
        )
        return StageChain(ctx.cache_dir, context)

    def stage_params(self, keys: tuple[str, ...]) -> dict[str, Any]:
        """The ``params`` a stage reads (its training settings; the budget is in the chain's context)."""
        return {k: self.params[k] for k in keys if k not in BUDGET_KEYS}

    # --- the text-only LoRA stage ---------------------------------------------------------------------------
    def text_stage(self, chain: StageChain, ctx: RunContext, prep: Prepared) -> dict[str, Any]:
        """TALLRec's tuning = CoLLM's step 1: LoRA on text-only prompts; loaded when already on disk."""
        assert self.scorer is not None and self.backbone is not None
        reads = {
            "params": self.stage_params(TEXT_STAGE_KEYS),
            "stage": "lora-text",
            "bank": self.bank.hash("text"),
        }
        spec = StageSpec("lora-text", reads)
        st = chain.stage(spec)
        torch.manual_seed(ctx.seed)
        self.model, lora_info = add_lora(self.backbone.model, self.lora_spec())
        self.backbone_info["lora_targets"] = lora_info.targets

        def train_fn(ckpt: Any) -> tuple[dict[str, Any], dict[str, Any]]:
            ctx.say(f"{self.name}: stage 1 (LoRA on text prompts) training -> {ckpt}")
            result = self.train_prompts(
                self.model, prep, view="text", vector_fn=None, ctx=ctx, ckpt=ckpt, modules=[self.model]
            )
            meta = {"stage": "lora-text", "key": st.key, "train": result.as_dict(), "lora": lora_info.spec}
            return {"lora": lora_state(self.model)}, meta

        run = chain.run(spec, train_fn, lambda blob: load_lora_state(self.model, blob["lora"]))
        if run.loaded:
            ctx.say(f"{self.name}: stage 1 (LoRA on text prompts) loaded from {st.dir}")
        info = run.outcome.info()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.model.eval()
        self._trainable += lora_info.trainable
        return info

    def train_prompts(
        self,
        model: Any,
        prep: Prepared,
        *,
        view: str,
        vector_fn: Any,
        ctx: RunContext,
        ckpt: Any,
        modules: list[Any],
        extra_params: dict[str, torch.nn.Parameter] | None = None,
        lr: float | None = None,
    ) -> TrainResult:
        """Train whatever requires grad in ``model`` (+ ``extra_params``) on Yes/No BCE, early-stopped on
        valid AUC of template 0. ``vector_fn(rows, batch)`` gives slot vectors (None for text prompts)."""
        assert self.scorer is not None
        scorer = self.scorer
        n_tpl = self.trained_p.train_templates
        rng = np.random.default_rng([ctx.seed, 29])
        which = rng.integers(0, n_tpl, size=len(prep.train))
        enc_train = scorer.encode(prep.train, which, view)
        enc_valid = scorer.encode(prep.valid, "seen", view)
        assert prep.train.labels is not None and prep.valid.labels is not None
        valid_labels = prep.valid.labels
        labels = torch.from_numpy(prep.train.labels.astype(np.float32)).to(scorer.backbone.device)
        train_vec = _bind(vector_fn, prep.train)
        valid_vec = _bind(vector_fn, prep.valid)

        def loss_fn(batch: Any) -> torch.Tensor:
            scores = scorer.forward(model, batch, train_vec(batch) if train_vec else None)
            return bce_loss(scores, labels[torch.as_tensor(batch.rows, device=labels.device)])

        def eval_fn() -> float:
            return auc(valid_labels, scorer.score(model, enc_valid, valid_vec, keys=prefix_keys(prep.valid)))

        class _Epoch:
            def __init__(self, epoch: int, skip: int = 0) -> None:
                # a resumed stage skips the batches it already trained on without collating them
                self.idx = scorer.train_batches(enc_train, ctx.seed, epoch)[skip:]

            def __iter__(self):
                return (scorer.batch(enc_train, i) for i in self.idx)

        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        params.update(extra_params or {})
        n_batches = len(scorer.train_batches(enc_train, ctx.seed, 0))
        return train(
            params,
            _Epoch,
            n_batches,
            loss_fn,
            self.train_config(lr),
            eval_fn=eval_fn,
            checkpoint_dir=ckpt,
            log=ctx.say,
            modules=modules,
        )

    # --- scoring --------------------------------------------------------------------------------------------
    def vectors_for(self, rows: Rows) -> VectorFn | None:
        """Slot vectors for scoring ``rows`` (None: a text-only method)."""
        return None

    def score(self, requests: ScoreRequests) -> np.ndarray:
        if self.scorer is None:
            raise RuntimeError(f"method {self.name!r}: score() before fit()")
        which = requests.template  # "seen" = template 0, "unseen" = the held-out paraphrase
        rows = Rows(
            users=np.asarray(requests.users, dtype=np.int64),
            items=np.asarray(requests.items, dtype=np.int64),
            histories=[list(h) for h in requests.histories],
        )
        enc = self.scorer.encode(rows, which, self.view)
        return self.scorer.score(self.model, enc, self.vectors_for(rows), keys=prefix_keys(rows))

    def trainable_parameters(self) -> int:
        return self._trainable

    def record_info(self) -> dict[str, Any]:
        """Extra facts for the run record (budget, stages, template set)."""
        trained = [s["train"] for s in self.fit_info.values() if isinstance(s, dict) and "train" in s]
        info: dict[str, Any] = {
            "budget": self.budget,
            "stages": self.fit_info,
            "template_set": self.template_set,
        }
        if time_capped(trained):
            info["time_capped"] = True
        return info


def prefix_keys(rows: Rows) -> list[tuple[int, tuple[int, ...]]]:
    """Rows with equal keys share their prompt up to the target item (``score_batching: prefix``)."""
    return [(int(u), tuple(int(i) for i in h)) for u, h in zip(rows.users, rows.histories, strict=True)]


def _bind(vector_fn: Any, rows: Rows) -> Any:
    if vector_fn is None:
        return None
    return lambda batch: vector_fn(rows, batch)
