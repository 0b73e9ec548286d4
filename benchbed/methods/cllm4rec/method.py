"""CLLM4Rec (seed 001): user/item tokens in the vocabulary, mutually-regularised LLMs, a multinomial head.

Zhu et al., "Collaborative Large Language Model for Recommender Systems", WWW 2024; code
yaochenzhu/LLM4Rec. Facts and every code-vs-paper difference: ``../shared/protocols/cllm4rec.md``.

Composition (kit parts): a frozen causal LM (``tiny`` = the tiny GPT-2 of
``benchbed.llm.backbone.tiny_gpt2``, tied
head; ``gpt2`` = the paper's GPT-2; any HF causal LM), ``VocabExtension`` with one token per user and item
and two tables (``collab``, ``content``; only those rows train), and ``MultinomialHead`` tied to the item
collaborative table (a separate matrix on backbones whose LM head is untied). Losses:
``benchbed.methods.cllm4rec.model``; documents: ``benchbed.methods.cllm4rec.docs``.

Stages (each a ``benchbed.llm.stages`` entry trained by ``benchbed.llm.train.train``: cached, resumable):
0. ``warmup``: content LLM alone on the content documents (no MR) [paper App. B.2; code: 10 epochs].
1. ``pretrain``: per epoch a full L-step pass over the collaborative documents, then a full C-step pass over
   the content documents, the other side detached [paper Eqs. 7-8; code: alternation per epoch].
2. ``finetune``: per epoch a RecLLM pass over masked recommendation prompts (multinomial over all items)
   then a C-step pass towards the RecLLM's embeddings; the epoch with the best validation
   Recall@20 + Recall@40 + NDCG@100 is kept [code: src/finetuning.py].

Variants (``variant``, paper Table 1): ``llm-cf`` (no content LLM, no MR), ``llm-ftall`` (the whole LM
trains), ``llm-scratch`` (the LM re-initialised and trained), ``llm-fixord`` (no reordering anywhere),
``llm-prerec`` (stage 2 skipped: rank with the collaborative LLM's next-item head). Stages of a variant
that equal those of another run (``llm-prerec`` = stages 0-1 of ``cllm4rec``) are loaded from the cache.

Content documents: reviews of training interactions where the split has a review column (Amazon); else,
per training interaction, the item's metadata (ml-100k: title, year, genres) under the same template: a
deviation the record states (``content_source``). With no text at all the method runs as LLM-CF and says so.

Honest numbers: on the random-init ``tiny`` backbone the LLM's "pretrained knowledge" is noise, so its
numbers test the pipeline, not the paper's claim.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from benchbed import sharding
from benchbed.api import BaseRecommender, RunContext
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.llm import stages
from benchbed.llm.backbone.loader import Backbone, check_backbone_name, load_backbone
from benchbed.llm.backbone.tiny_gpt2 import TINY_GPT2_NAME, load_tiny_gpt2
from benchbed.llm.injectors.vocab import VocabExtension
from benchbed.llm.train import TrainConfig, train
from benchbed.methods.cllm4rec.docs import (
    Corpus,
    item_metadata_texts,
    positives,
    review_column,
    user_items,
)
from benchbed.methods.cllm4rec.model import COLLAB, CONTENT, MR_FORMS, CLLM4RecCore
from benchbed.metrics import hits_from_rankings, resolve
from benchbed.metrics.ranking import top_k
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
BUDGET_KEYS = tuple(PAPER_BUDGET)
METRIC_KEYS = ("recall_min@20", "recall_min@40", "ndcg@100")  # the board's, as src/libs/util.py
STAGE_VERSION = 2  # 2: constant lr as the authors' code (was the kit's cosine decay)


class CLLM4Rec(BaseRecommender):
    """CLLM4Rec and its Table-1 variants; full ranking of all items in one forward pass per user."""

    name: ClassVar[str] = "cllm4rec"
    tasks: ClassVar[frozenset[str]] = frozenset({"topk"})
    score_kind: ClassVar[str] = "score"
    evaluation_only: ClassVar[frozenset[str]] = frozenset({"eval_batch_size"})  # users per scoring batch
    defaults: ClassVar[dict[str, Any]] = {
        "backbone": "tiny",  # tiny GPT-2 (tied head) on CPU; "gpt2" = the paper's GPT-2 (124M)
        "variant": "cllm4rec",  # or llm-cf | llm-scratch | llm-ftall | llm-fixord | llm-prerec (Table 1)
        "lambda_c": 1.0,  # MR strength; best ~1 on all public sets (Fig. 4), scripts/run.sh uses 1
        "mr_form": "code",  # "code": lambda*sum(d^2) (MSELoss sum); "paper": lambda/2*sum(d^2) (§2i.3)
        "rec_target": "all",  # code: all training items; "heldout": the masked ones (paper §3.4.2; §2i.1)
        "mask_ratio": 0.2,  # masked share of a user's items per epoch, at least one (code: data.py)
        "reorder_pretrain": True,  # paper §3.3.4; the code does not permute (False = code-faithful)
        "reorder_finetune": True,  # paper and code: rec prompts shuffled
        "code_shift": False,  # False: first main token predicted from the prompt (paper A.1); True: code
        "lr_pretrain": 1e-3,  # Adam, warm-up + L-step + C-step (code: training.py)
        "lr_finetune": 1e-4,  # Adam, RecLLM + C-step (code: finetuning.py)
        "batch_size": 20,  # per process in the code (x8 processes); keeps the code's LM-vs-MR weighting
        # micro-batches per optimizer step: the code's 8 processes x 20 are batch_size=20, grad_accum=8
        # under --num-processes 8 here (1 in one process, the CPU default: no accumulation)
        "grad_accum": 1,
        "eval_batch_size": 64,  # the code's 256 does not change results; smaller fits CPU memory
        "max_length": 1024,  # tokens (code: data.py), capped by the backbone's positions
        "content": "auto",  # auto | reviews | item-metadata | none
        "shuffle_content": False,  # negative control: permute texts across content documents
        "prompt_history": "train",  # prompts from all training items (code); "given": the task's histories
        "train_positives": "auto",  # auto: the task's feedback; "label": label-1 rows only (ratings > 3)
        "mask_train": True,  # training items never ranked (paper §3.5), whatever the task excludes
        **{k: "auto" for k in BUDGET_KEYS},  # auto: CPU_BUDGET on CPU, the paper's on a GPU
    }

    # choices and the open mask interval; the rest (lambda_c >= 0, lr > 0, epochs >= 0 or auto, ...) comes
    # from benchbed.params' naming conventions and the defaults' types
    param_specs: ClassVar[dict[str, Param]] = {
        "variant": Param(kind="str", choices=VARIANTS, help="Table 1 variant"),
        "rec_target": Param(kind="str", choices=REC_TARGETS),
        "mr_form": Param(kind="str", choices=MR_FORMS),
        "content": Param(kind="str", choices=CONTENT_MODES),
        "prompt_history": Param(kind="str", choices=PROMPT_HISTORIES),
        "train_positives": Param(kind="str", choices=TRAIN_POSITIVES),
        "mask_ratio": Param(kind="float", min=0, max=1, exclusive_min=True, exclusive_max=True),
        # 0 used to mean "no cap" silently; "auto": the budget's (every document with the paper's budget)
        "max_content_docs": Param(kind="int", min=1, auto=True, help="content documents sampled"),
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        p = self.params
        if str(p["backbone"]) not in ("tiny", TINY_GPT2_NAME, "tiny-llama"):
            check_backbone_name(str(p["backbone"]))
        if p["backbone"] == "minilm":
            raise ConfigError(
                "backbone 'minilm' is encoder-only (BertModel); method 'cllm4rec' needs a causal LM: use "
                "--backbone tiny, gpt2 or a local path to a causal LM"
            )
        self.backbone: Backbone | None = None
        self.core: CLLM4RecCore | None = None
        self.corpus: Corpus | None = None
        self.budget: dict[str, Any] = {}
        self.fit_info: dict[str, Any] = {}
        self.eff: dict[str, Any] = {}
        self.train_items: list[np.ndarray] = []
        self._order_seed = 0
        self._trainable = 0

    # --- setup ---------------------------------------------------------------------------------------------
    def effective(self) -> dict[str, Any]:
        """What the variant changes (keys of the stage identities, so equal stages are shared)."""
        p, v = self.params, self.params["variant"]
        return {
            "use_content": v != "llm-cf",
            "lambda_c": 0.0 if v == "llm-cf" else float(p["lambda_c"]),
            "reorder_pretrain": False if v == "llm-fixord" else bool(p["reorder_pretrain"]),
            "reorder_finetune": False if v == "llm-fixord" else bool(p["reorder_finetune"]),
            "train_backbone": v in ("llm-ftall", "llm-scratch"),
            "scratch": v == "llm-scratch",
            "finetune": v != "llm-prerec",
        }

    def _load_backbone(self, ctx: RunContext) -> Backbone:
        name = str(self.params["backbone"])
        dev, dt = ctx.device or None, ctx.dtype or None
        if name in ("tiny", TINY_GPT2_NAME):
            bb = load_tiny_gpt2(device=dev, dtype=dt)
        else:
            bb = load_backbone("tiny" if name == "tiny-llama" else name, device=dev, dtype=dt)
        bb.require_decoder(self.name)
        if bb.model.get_output_embeddings() is None:
            raise ConfigError(
                f"backbone {name!r} ({type(bb.model).__name__}) has no LM head; method 'cllm4rec' needs a "
                "causal LM (AutoModelForCausalLM)"
            )
        return bb

    def resolve_budget(self, ctx: RunContext, on_cpu: bool) -> dict[str, Any]:
        profile = CPU_BUDGET if on_cpu else PAPER_BUDGET
        out: dict[str, Any] = {"profile": "cpu" if on_cpu else "gpu (paper schedule)"}
        for key in BUDGET_KEYS:
            value = self.params[key]
            out[key] = int(ctx.budget.get(key, profile[key]) if value == "auto" else value)
        return out

    # --- fit -----------------------------------------------------------------------------------------------
    def fit(self, split: Split, ctx: RunContext) -> None:
        p = self.params
        self.eff = eff = self.effective()
        bb = self.backbone = self._load_backbone(ctx)
        self.backbone_info = bb.record_info()
        self.budget = budget = self.resolve_budget(ctx, bb.device == "cpu")
        use_labels = p["train_positives"] == "label" or (
            p["train_positives"] == "auto" and ctx.feedback == "labels"
        )
        rows = positives(split, use_labels)
        self.train_items = user_items(rows, split.n_users)
        self._order_seed = int(ctx.seed)
        model = bb.model
        if eff["scratch"]:
            model = bb.model = _reinitialised(model, ctx.seed)
        ext = _extension(model, bb, split, ctx.seed)
        self.core = core = CLLM4RecCore(model, ext, code_shift=bool(p["code_shift"]), mr_form=p["mr_form"])
        core.rec_head.check(model, self.name, str(p["backbone"]))
        for prm in model.parameters():
            prm.requires_grad_(eff["train_backbone"])
        n_pos = getattr(model.config, "n_positions", None) or model.config.max_position_embeddings
        max_length = min(int(p["max_length"]), int(n_pos))
        pad = bb.tokenizer.pad_token_id
        self.corpus = corpus = Corpus(
            ext, bb.tokenizer, max_length=max_length, pad_id=int(pad), device=bb.device
        )
        self.fit_info = {}
        docs, source = self._content_docs(split, rows, corpus, ctx) if eff["use_content"] else (None, "none")
        info: dict[str, Any] = {
            **self.fit_info,
            "variant": p["variant"],
            "effective": eff,
            "content_source": source,
            "training_positives": int(len(rows)),
            "users_without_train_items": int(sum(len(x) == 0 for x in self.train_items)),
            "max_length": max_length,
            "head": ext.head,
            "extended_vocab_bytes_per_10k_items": _bytes_per_10k(ext),
        }
        if docs is None and eff["use_content"]:
            info["ran_as"] = "llm-cf"
        if info["users_without_train_items"]:
            ctx.say(
                f"cllm4rec: {info['users_without_train_items']} user(s) without training items: their prompt "
                "holds no item (their scores come from the user token alone)"
            )
        self.fit_info = info
        valid_users, valid_pos = self._valid_targets(split, use_labels, budget)
        ctx.say(
            f"cllm4rec ({p['variant']}): backbone {bb.info['id']} ({bb.info['revision']}, "
            f"{ext.head} item head); "
            f"{split.n_users} user + {split.n_items} item tokens x 2 tables; budget ({budget['profile']}) "
            f"warm-up {budget['warmup_epochs']} / pretrain {budget['pretrain_epochs']} / fine-tune "
            f"{budget['finetune_epochs']} epochs, content docs "
            f"{0 if docs is None else len(docs['users'])} of {info.get('content_docs_total', 0)} ({source}), "
            f"valid users {len(valid_users)}, batch {p['batch_size']}"
        )
        base_id = self._identity(split, ctx, source, docs)
        key = "none"
        lam = float(eff["lambda_c"])
        use_c = docs is not None
        if use_c:
            key = self._stage(
                ctx,
                "cllm4rec-warmup",
                # code_shift changes every LM loss, this one too; named only when on, so that the default
                # key (and the stage-key-seeded dropout) keeps its value
                {**base_id, "epochs": budget["warmup_epochs"], "lr": p["lr_pretrain"], **_code_shift(p)},
                budget["warmup_epochs"],
                float(p["lr_pretrain"]),
                self._tables(CONTENT),
                lambda e: self._doc_batches(e, 0, None, docs, reorder=False),
                {"content": 0.0},
            )
        key = self._stage(
            ctx,
            "cllm4rec-pretrain",
            {
                **base_id,
                "after": key,
                "epochs": budget["pretrain_epochs"],
                "lr": p["lr_pretrain"],
                "lambda_c": lam if use_c else 0.0,
                "mr_form": p["mr_form"],
                "reorder": eff["reorder_pretrain"],
                "code_shift": bool(p["code_shift"]),
            },
            budget["pretrain_epochs"],
            float(p["lr_pretrain"]),
            self._tables(COLLAB, CONTENT if use_c else None),
            lambda e: self._doc_batches(e, 1, self.train_items, docs, reorder=eff["reorder_pretrain"]),
            {"collab": lam if use_c else 0.0, "content": lam},
        )
        if eff["finetune"]:
            self._stage(
                ctx,
                "cllm4rec-finetune",
                {
                    **base_id,
                    "after": key,
                    "epochs": budget["finetune_epochs"],
                    "lr": p["lr_finetune"],
                    "lambda_c": lam if use_c else 0.0,
                    "mr_form": p["mr_form"],
                    "reorder": eff["reorder_finetune"],
                    "rec_target": p["rec_target"],
                    "mask_ratio": float(p["mask_ratio"]),
                    "max_valid_users": budget["max_valid_users"],
                    # mask_train changes the validation metric that picks the epoch (named only when off)
                    **({} if p["mask_train"] else {"mask_train": False}),
                },
                budget["finetune_epochs"],
                float(p["lr_finetune"]),
                self._tables(COLLAB, CONTENT if use_c else None),
                lambda e: self._rec_batches(e, docs),
                {"rec": lam if use_c else 0.0, "content": lam},
                eval_fn=lambda: self._valid_metric(valid_users, valid_pos),
            )
        for prm in core.parameters():
            prm.requires_grad_(False)
        core.eval()
        self._trainable = sum(t.numel() for t in ext.parameters()) + (
            sum(t.numel() for t in model.parameters()) if eff["train_backbone"] else 0
        )

    def _tables(self, *tables: str | None) -> dict[str, torch.nn.Parameter]:
        assert self.core is not None
        ext = self.core.ext
        out = {f"ext.{t}.{i}": prm for t in tables if t for i, prm in enumerate(ext.table_parameters(t))}
        if self.eff["train_backbone"]:
            out.update({f"backbone.{n}": prm for n, prm in self.core.model.named_parameters()})
        return out

    def _identity(self, split: Split, ctx: RunContext, source: str, docs: dict[str, Any] | None) -> dict:
        assert self.backbone is not None
        p = self.params
        return {
            "split": split.hash or split.compute_hash(),
            "backbone": {k: self.backbone.info[k] for k in ("id", "revision", "dtype")},
            "train_backbone": self.eff["train_backbone"],
            "scratch": self.eff["scratch"],
            "content": source,
            "content_digest": docs["digest"] if docs is not None else None,
            "positives": self.fit_info["training_positives"],
            "batch_size": int(p["batch_size"]),
            **stages.accumulation_identity(p["grad_accum"]),
            "max_length": self.fit_info["max_length"],
            "seed": int(ctx.seed),
            "version": STAGE_VERSION,
        }

    # --- one stage -----------------------------------------------------------------------------------------
    def _stage(
        self,
        ctx: RunContext,
        name: str,
        identity: dict[str, Any],
        epochs: int,
        lr: float,
        params: dict[str, torch.nn.Parameter],
        batches: Callable[[int], list[Any]],
        lams: dict[str, float],
        eval_fn: Callable[[], float] | None = None,
    ) -> str:
        """Train (or load) one stage; returns its key. ``lams``: MR weight per batch kind."""
        assert self.core is not None
        core = self.core
        st = stages.stage(ctx.cache_dir, name, identity)
        if epochs <= 0:
            self.fit_info[name] = {"skipped": "0 epochs", "key": st.key}
            return st.key

        def loss_fn(b: Any) -> torch.Tensor:
            if b.kind == "rec":
                return core.rec_loss(b, lams["rec"])
            return core.doc_loss(b, COLLAB if b.kind == "collab" else CONTENT, lams[b.kind])

        def train_fn(ckpt: Path) -> tuple[dict[str, Any], dict[str, Any]]:
            ctx.say(f"cllm4rec: stage {name} training ({epochs} epochs) -> {ckpt}")
            before = frozen_digest(core.model) if not self.eff["train_backbone"] else None
            torch.manual_seed(int(st.key[:8], 16))  # dropout draws: the same whether earlier stages loaded
            n_batches = len(batches(0))
            cfg = TrainConfig(
                lr=lr,
                weight_decay=0.0,  # the code's Adam has none
                epochs=epochs,
                warmup_ratio=0.0,
                schedule="constant",  # plain Adam, no scheduler [code; protocols/cllm4rec.md optimiser row]
                patience=epochs + 1,  # the code trains every epoch and keeps the best
                max_grad_norm=None,  # no clipping in the code
                grad_accum=int(self.params["grad_accum"]),
            )
            result = train(
                params,
                batches,
                n_batches,
                loss_fn,
                cfg,
                eval_fn=eval_fn,
                checkpoint_dir=ckpt,
                log=ctx.say,
                modules=[core.model],  # train mode: dropout 0.1 active as in the code
            )
            after = frozen_digest(core.model) if not self.eff["train_backbone"] else None
            meta = {"stage": name, "key": st.key, "train": result.as_dict(), "frozen_sha256": [before, after]}
            return self._blob(), meta

        outcome = stages.run_or_load(st, train_fn, self._load_blob)
        if outcome.loaded:
            ctx.say(f"cllm4rec: stage {name} loaded from {st.dir}")
        self.fit_info[name] = outcome.info()
        return st.key

    def _blob(self) -> dict[str, Any]:
        assert self.core is not None
        blob: dict[str, Any] = {
            "ext": {k: v.detach().cpu().clone() for k, v in self.core.ext.state_dict().items()}
        }
        if self.eff["train_backbone"]:
            blob["backbone"] = {k: v.detach().cpu().clone() for k, v in self.core.model.state_dict().items()}
        return blob

    def _load_blob(self, blob: dict[str, Any]) -> None:
        assert self.core is not None
        self.core.ext.load_state_dict(blob["ext"])
        if "backbone" in blob:
            sharding.load_full_state(self.core.model, blob["backbone"])

    # --- documents per epoch -------------------------------------------------------------------------------
    def _doc_batches(
        self,
        epoch: int,
        stage_code: int,
        collab: list[np.ndarray] | None,
        docs: dict[str, Any] | None,
        *,
        reorder: bool,
    ) -> list[Any]:
        """L-step batches (every user with items) then C-step batches, in a per-epoch seeded order."""
        assert self.corpus is not None
        rng = np.random.default_rng([self._order_seed, stage_code, epoch])
        bs = int(self.params["batch_size"])
        out: list[Any] = []
        if collab is not None:
            users = rng.permutation([u for u, it in enumerate(collab) if len(it)])
            for chunk in _bucketed(users, [len(collab[u]) for u in users], bs, rng):
                items = [rng.permutation(collab[u]) if reorder else collab[u] for u in chunk]
                out.append(self.corpus.collab_batch(chunk, items))
        if docs is not None:
            out += self._content_batches(rng, docs)
        return out

    def _content_batches(self, rng: np.random.Generator, docs: dict[str, Any]) -> list[Any]:
        assert self.corpus is not None
        bs = int(self.params["batch_size"])
        order = rng.permutation(len(docs["users"]))
        return [
            self.corpus.content_batch(docs["users"][idx], docs["items"][idx], [docs["texts"][i] for i in idx])
            for idx in (order[s : s + bs] for s in range(0, len(order), bs))
        ]

    def _rec_batches(self, epoch: int, docs: dict[str, Any] | None) -> list[Any]:
        """Masked recommendation prompts (a fresh mask each epoch), then C-step batches."""
        assert self.corpus is not None
        p = self.params
        rng = np.random.default_rng([self._order_seed, 2, epoch])
        bs, ratio = int(p["batch_size"]), float(p["mask_ratio"])
        reorder = self.eff["reorder_finetune"]
        users = rng.permutation([u for u, it in enumerate(self.train_items) if len(it)])
        out: list[Any] = []
        for chunk in _bucketed(users, [len(self.train_items[u]) for u in users], bs, rng):
            prompts, targets = [], []
            for u in chunk:
                items = self.train_items[u]
                n_mask = max(1, int(ratio * len(items)))  # the code: max(1, int(0.2 n))
                masked = np.zeros(len(items), dtype=bool)
                masked[rng.choice(len(items), size=n_mask, replace=False)] = True
                kept = items[~masked]
                prompts.append(rng.permutation(kept) if reorder else kept)
                targets.append(items if p["rec_target"] == "all" else items[masked])
            out.append(self.corpus.rec_batch(chunk, prompts, targets))
        if docs is not None:
            out += self._content_batches(rng, docs)
        return out

    def _content_docs(
        self, split: Split, rows: pd.DataFrame, corpus: Corpus, ctx: RunContext
    ) -> tuple[dict[str, Any] | None, str]:
        """(user, item, text ids) per training interaction, a fixed seeded sample under the budget."""
        mode = self.params["content"]
        col = review_column(rows)
        if mode == "reviews" and col is None:
            raise ConfigError(
                f"method 'cllm4rec': content=reviews but dataset {split.data.name!r} has no review column "
                "(expected one of review, review_text, reviewText, text); use content=item-metadata"
            )
        if mode == "none":
            return None, "none"
        if col is not None and mode in ("auto", "reviews"):
            keep = rows[rows[col].astype(str).str.strip() != ""]
            texts = keep[col].astype(str).tolist()
            source = f"reviews ({col})"
        else:
            meta = item_metadata_texts(split.data.items)
            keep = rows[[bool(meta[i]) for i in rows["item"].to_numpy()]]
            texts = [meta[i] for i in keep["item"].to_numpy()]
            source = "item-metadata (no reviews: title and metadata fields per training interaction)"
        self.fit_info["content_docs_total"] = len(keep)
        if not texts:
            ctx.say(
                f"cllm4rec: dataset {split.data.name!r} has no review or item text for content documents: "
                "running as LLM-CF (no content LLM, no mutual regularisation)"
            )
            return None, "none (no text in the dataset: ran as LLM-CF)"
        users = keep["user"].to_numpy(dtype=np.int64)
        items = keep["item"].to_numpy(dtype=np.int64)
        rng = np.random.default_rng([int(ctx.seed), 31])
        cap = int(self.budget["max_content_docs"])
        idx = np.sort(rng.permutation(len(texts))[:cap]) if 0 < cap < len(texts) else np.arange(len(texts))
        if self.params["shuffle_content"]:  # negative control: texts no longer belong to their items
            texts = [texts[i] for i in rng.permutation(len(texts))]
        ids = corpus.tokenize_texts([texts[i] for i in idx], int(self.budget["max_content_tokens"]))
        digest = hashlib.sha256()
        for a in (users[idx], items[idx], *ids):
            digest.update(np.ascontiguousarray(a).tobytes())
            digest.update(b"|")
        docs = {"users": users[idx], "items": items[idx], "texts": ids, "digest": digest.hexdigest()[:16]}
        self.fit_info["content_docs"] = len(idx)
        return docs, source

    # --- validation and scoring ----------------------------------------------------------------------------
    def _valid_targets(
        self, split: Split, use_labels: bool, budget: dict[str, Any]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        rows = split.valid if not use_labels else split.valid[split.valid["label"] == 1]
        groups = {int(u): g["item"].unique() for u, g in rows.groupby("user", sort=True)}
        users = np.array(sorted(u for u in groups if len(self.train_items[u])), dtype=np.int64)
        cap = int(budget["max_valid_users"])
        if 0 < cap < len(users):
            users = np.sort(np.random.default_rng([self._order_seed, 41]).permutation(users)[:cap])
        return users, [np.asarray(groups[int(u)], dtype=np.int64) for u in users]

    def _valid_metric(self, users: np.ndarray, pos: list[np.ndarray]) -> float:
        """Recall@20 + Recall@40 + NDCG@100 on validation users (model selection, src/finetuning.py)."""
        values = self.metrics_on(users, pos)
        return float(sum(values.values()))

    def metrics_on(self, users: np.ndarray, pos: list[np.ndarray]) -> dict[str, float]:
        """The board's metrics for ``users`` against ``pos`` (training items masked)."""
        if len(users) == 0:
            return dict.fromkeys(METRIC_KEYS, 0.0)
        scores = self.score_all(users, [self.train_items[int(u)].tolist() for u in users])
        ranked, _ = top_k(scores, 100)
        hits = hits_from_rankings(ranked, pos)
        n_pos = np.array([len(x) for x in pos], dtype=np.int64)
        out = {}
        for key in METRIC_KEYS:
            rm = resolve(key)
            out[key] = float(rm.fn(hits, n_pos, rm.k).value)
        return out

    def prompt_items(self, u: int, history: list[int] | None = None) -> np.ndarray:
        """The items of a user's prediction prompt: all training items, in a fixed seeded permutation when
        reordering is on (paper §3.5; the code shuffles), in item-id order when it is off."""
        items = self.train_items[u] if history is None else np.asarray(history, dtype=np.int64)
        if self.eff.get("reorder_finetune", True):
            return np.random.default_rng([self._order_seed, 53, int(u)]).permutation(items)
        return np.sort(items) if history is None else items

    @torch.no_grad()
    def score_all(self, users: np.ndarray, histories: list[list[int]]) -> np.ndarray:
        if self.core is None or self.corpus is None:
            raise ConfigError("method 'cllm4rec': score_all before fit")
        core, corpus = self.core, self.corpus
        core.eval()
        given = self.params["prompt_history"] == "given"
        bs = int(self.params["eval_batch_size"])
        out = np.empty((len(users), core.ext.counts["item"]), dtype=np.float32)
        for s in range(0, len(users), bs):
            chunk = np.asarray(users[s : s + bs], dtype=np.int64)
            items = [
                self.prompt_items(int(u), histories[s + j] if given else None) for j, u in enumerate(chunk)
            ]
            if self.eff["finetune"]:
                logits = core.rec_logits(corpus.rec_batch(chunk, items, [np.zeros(0)] * len(chunk)).batch)
            else:
                logits = core.next_item_logits(corpus.history_batch(chunk, items))
            out[s : s + len(chunk)] = logits.cpu().numpy()
        if self.params["mask_train"]:
            for r, u in enumerate(users):
                out[r, self.train_items[int(u)]] = -np.inf
        return out

    # --- hooks ---------------------------------------------------------------------------------------------
    def trainable_parameters(self) -> int:
        return int(self._trainable)

    def record_info(self) -> dict[str, Any]:
        trained = [s["train"] for s in self.fit_info.values() if isinstance(s, dict) and "train" in s]
        info = {"budget": self.budget, **self.fit_info}
        info["stage_seconds"] = {
            k: v["train"]["seconds"] for k, v in self.fit_info.items() if isinstance(v, dict) and "train" in v
        }
        if any(t.get("stopped") == "time-budget" for t in trained):
            info["time_capped"] = True
        if self.backbone is not None and self.backbone.name in ("tiny", TINY_GPT2_NAME):
            info["note"] = "random-init tiny backbone: numbers test the pipeline, not the method"
        return info


# --- helpers ----------------------------------------------------------------------------------------------
BUCKET_WINDOW = 16  # batches per length-sorting window


def _bucketed(order: np.ndarray, lengths: list[int], bs: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of ``order`` with similar lengths (sorted within windows of 16 batches), in random order:
    the same documents per epoch as plain chunking, far less padding (histories of 16 to 600 items)."""
    lengths_arr = np.asarray(lengths)
    batches: list[np.ndarray] = []
    window = bs * BUCKET_WINDOW
    for s in range(0, len(order), window):
        part = order[s : s + window]
        part = part[np.argsort(lengths_arr[s : s + window], kind="stable")]
        batches += [part[i : i + bs] for i in range(0, len(part), bs)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _extension(model: Any, bb: Backbone, split: Split, seed: int) -> VocabExtension:
    """Two tables (collab, content) of one token per user and item, N(0, 0.02^2) rows (code: model.py)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        ext = VocabExtension.for_model(
            model,
            {"user": split.n_users, "item": split.n_items},
            tokenizer=bb.tokenizer,
            tables=(COLLAB, CONTENT),
            method="cllm4rec",
            backbone=bb.name,
        )
    return ext


def _reinitialised(model: Any, seed: int) -> Any:
    """LLM-Scratch: the same architecture with fresh random weights (trained with the new tokens)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed) + 7)
        fresh = type(model)(model.config)
    return fresh.to(device=model.device, dtype=next(model.parameters()).dtype)


def frozen_digest(model: Any) -> str:
    """SHA-256 of every backbone tensor: equal before and after a stage when the backbone is frozen."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        t = sharding.local_part(t)  # FSDP: this rank's shard (the check is per rank)
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _bytes_per_10k(ext: VocabExtension) -> int:
    """Memory of the new rows per 10k items: tables x (input rows + separate head rows) x width x 4 bytes."""
    per_table = 1 + (1 if ext.head == "separate" else 0)
    return int(10_000 * ext.hidden * 4 * per_table * len(ext.table_names))


def _code_shift(params: dict[str, Any]) -> dict[str, Any]:
    """The warm-up stage's ``code_shift`` key: present only when on (issue 22: it was missing, so a
    ``code_shift=true`` fit loaded the warm-up a ``false`` fit had trained on a shared cache)."""
    return {"code_shift": True} if params["code_shift"] else {}
