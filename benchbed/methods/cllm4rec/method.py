"""CLLM4Rec (seed 001): user/item tokens in the vocabulary, mutually-regularised LLMs, a multinomial head.

Zhu et al., "Collaborative Large Language Model for Recommender Systems", WWW 2024; code
yaochenzhu/LLM4Rec. Facts and every code-vs-paper difference: ``../shared/protocols/cllm4rec.md``.

Composition (kit parts): a frozen causal LM (``tiny`` = the tiny GPT-2 of ``llm.backbone.tiny_gpt2``, tied
head; ``gpt2`` = the paper's GPT-2; any HF causal LM), ``VocabExtension`` with one token per user and item
and two tables (``collab``, ``content``; only those rows train), and ``MultinomialHead`` tied to the item
collaborative table (a separate matrix on backbones whose LM head is untied). The package's modules: losses
``model``, documents ``docs``, batches per epoch ``batches``, the stages' specs ``schedule``, how a stage
trains ``training``, model selection ``evaluation``, the parameters and budgets ``params``.

Stages (the kit's ``StageChain`` entries trained by ``benchbed.llm.train.train``: cached, resumable):
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

from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from benchbed.api import BaseRecommender, RunContext
from benchbed.cards import MethodCard, topk_llm
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.llm.backbone.loader import Backbone, check_backbone_name, load_backbone
from benchbed.llm.backbone.tiny_gpt2 import TINY_GPT2_NAME, load_tiny_gpt2
from benchbed.llm.budget import BudgetProfiles, device_profile
from benchbed.llm.injectors.vocab import VocabExtension
from benchbed.llm.stages import StageChain
from benchbed.methods.cllm4rec.batches import Batches
from benchbed.methods.cllm4rec.docs import Corpus, content_documents, positives, user_items
from benchbed.methods.cllm4rec.evaluation import METRIC_KEYS, board_metrics, valid_targets
from benchbed.methods.cllm4rec.model import COLLAB, CONTENT, CLLM4RecCore
from benchbed.methods.cllm4rec.params import BUDGETS, VARIANTS, CLLM4RecParams
from benchbed.methods.cllm4rec.schedule import run_schedule, stage_context
from benchbed.param_sets import ParamSet


class CLLM4Rec(BaseRecommender):
    """CLLM4Rec and its Table-1 variants; full ranking of all items in one forward pass per user."""

    name: ClassVar[str] = "cllm4rec"
    # injection, head, backbone, the variant parameter's values beyond "cllm4rec", the authors' code
    card: ClassVar[MethodCard] = topk_llm(
        "CLLM4Rec (Zhu et al., WWW 2024; seed 001)",
        "vocab",
        "multinomial",
        "decoder",
        VARIANTS[1:],
        "yaochenzhu/LLM4Rec",
    )
    tasks: ClassVar[frozenset[str]] = frozenset({"topk"})
    score_kind: ClassVar[str] = "score"
    evaluation_only: ClassVar[frozenset[str]] = frozenset({"eval_batch_size"})  # users per scoring batch
    # cpu / gpu (the paper schedule), declared beside the parameters they resolve (cllm4rec.params)
    budgets: ClassVar[BudgetProfiles] = BUDGETS
    Params: ClassVar[type[ParamSet]] = CLLM4RecParams  # with their sources: cllm4rec.params
    p: CLLM4RecParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.p.backbone not in ("tiny", TINY_GPT2_NAME, "tiny-llama"):
            check_backbone_name(self.p.backbone)
        if self.p.backbone == "minilm":
            raise ConfigError(
                "backbone 'minilm' is encoder-only (BertModel); method 'cllm4rec' needs a causal LM: use "
                "--backbone tiny, gpt2 or a local path to a causal LM"
            )
        self.backbone: Backbone | None = None
        self.core: CLLM4RecCore | None = None
        self.corpus: Corpus | None = None
        self.budget: dict[str, Any] = {}
        self.fit_info: dict[str, Any] = {}
        self.eff: dict[str, Any] = self.effective()
        self.train_items: list[np.ndarray] = []
        self._order_seed = 0
        self._trainable = 0

    # --- setup ---------------------------------------------------------------------------------------------
    def effective(self) -> dict[str, Any]:
        """What the variant changes (keys of the stage identities, so equal stages are shared)."""
        p, v = self.p, self.p.variant
        return {
            "use_content": v != "llm-cf",
            "lambda_c": 0.0 if v == "llm-cf" else float(p.lambda_c),
            "reorder_pretrain": False if v == "llm-fixord" else p.reorder_pretrain,
            "reorder_finetune": False if v == "llm-fixord" else p.reorder_finetune,
            "train_backbone": v in ("llm-ftall", "llm-scratch"),
            "scratch": v == "llm-scratch",
            "finetune": v != "llm-prerec",
        }

    def _load_backbone(self, ctx: RunContext) -> Backbone:
        name = self.p.backbone
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
        return self.budgets.resolve(self.params, ctx.budget, device_profile(on_cpu))

    # --- fit -----------------------------------------------------------------------------------------------
    def fit(self, split: Split, ctx: RunContext) -> None:
        p = self.p
        self.eff = eff = self.effective()
        bb = self.backbone = self._load_backbone(ctx)
        self.backbone_info = bb.record_info()
        self.budget = self.resolve_budget(ctx, bb.device == "cpu")
        use_labels = p.train_positives == "label" or (
            p.train_positives == "auto" and ctx.feedback == "labels"
        )
        rows = positives(split, use_labels)
        self.train_items = user_items(rows, split.n_users)
        self._order_seed = int(ctx.seed)
        ext = self._build_core(bb, split, ctx.seed)
        n_pos = getattr(bb.model.config, "n_positions", None) or bb.model.config.max_position_embeddings
        max_length = min(p.max_length, int(n_pos))
        pad = bb.tokenizer.pad_token_id
        self.corpus = corpus = Corpus(
            ext, bb.tokenizer, max_length=max_length, pad_id=int(pad), device=bb.device
        )
        self.fit_info = {}
        docs, source = self._content_docs(split, rows, corpus, ctx) if eff["use_content"] else (None, "none")
        self.fit_info = self._facts(rows, ext, docs, source, max_length, ctx)
        valid = self._valid_targets(split, use_labels, self.budget)
        ctx.say(self._banner(split, docs, source, len(valid[0])))
        chain = StageChain(ctx.cache_dir, stage_context(self, split, ctx, source, docs))
        run_schedule(self, ctx, chain, docs, valid)
        self._freeze()

    def _build_core(self, bb: Backbone, split: Split, seed: int) -> VocabExtension:
        """The backbone (re-initialised for LLM-Scratch), its extension and the core; only the variant's
        parts require gradients."""
        p, eff = self.p, self.eff
        model = bb.model
        if eff["scratch"]:
            model = bb.model = _reinitialised(model, seed)
        ext = _extension(model, bb, split, seed)
        self.core = core = CLLM4RecCore(model, ext, code_shift=p.code_shift, mr_form=p.mr_form)
        core.rec_head.check(model, self.name, p.backbone)
        for prm in model.parameters():
            prm.requires_grad_(eff["train_backbone"])
        return ext

    def _facts(
        self,
        rows: pd.DataFrame,
        ext: VocabExtension,
        docs: dict[str, Any] | None,
        source: str,
        max_length: int,
        ctx: RunContext,
    ) -> dict[str, Any]:
        """What the record says about the fit's data (after the content counts already in ``fit_info``)."""
        eff = self.eff
        info: dict[str, Any] = {
            **self.fit_info,
            "variant": self.p.variant,
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
        return info

    def _banner(self, split: Split, docs: dict[str, Any] | None, source: str, n_valid: int) -> str:
        assert self.backbone is not None and self.core is not None
        p, bb, budget = self.p, self.backbone, self.budget
        return (
            f"cllm4rec ({p.variant}): backbone {bb.info['id']} ({bb.info['revision']}, "
            f"{self.core.ext.head} item head); "
            f"{split.n_users} user + {split.n_items} item tokens x 2 tables; budget ({budget['profile']}) "
            f"warm-up {budget['warmup_epochs']} / pretrain {budget['pretrain_epochs']} / fine-tune "
            f"{budget['finetune_epochs']} epochs, content docs "
            f"{0 if docs is None else len(docs['users'])} of {self.fit_info.get('content_docs_total', 0)} "
            f"({source}), valid users {n_valid}, batch {p.batch_size}"
        )

    def _freeze(self) -> None:
        """After the last stage: nothing requires gradients; count what trained."""
        assert self.core is not None
        core = self.core
        for prm in core.parameters():
            prm.requires_grad_(False)
        core.eval()
        self._trainable = sum(t.numel() for t in core.ext.parameters()) + (
            sum(t.numel() for t in core.model.parameters()) if self.eff["train_backbone"] else 0
        )

    def _tables(self, *tables: str | None) -> dict[str, torch.nn.Parameter]:
        """The trainable tensors of a stage: the named tables' rows, and the backbone when it trains."""
        assert self.core is not None
        ext = self.core.ext
        out = {f"ext.{t}.{i}": prm for t in tables if t for i, prm in enumerate(ext.table_parameters(t))}
        if self.eff["train_backbone"]:
            out.update({f"backbone.{n}": prm for n, prm in self.core.model.named_parameters()})
        return out

    # --- batches and documents (benchbed.methods.cllm4rec.batches / docs) ----------------------------------
    def batches(self) -> Batches:
        """The batch builder of this fit (its corpus, batch size and seed)."""
        assert self.corpus is not None
        return Batches(self.corpus, self.p.batch_size, self._order_seed)

    def _rec_batches(self, epoch: int, docs: dict[str, Any] | None) -> list[Any]:
        return self.batches().recommendations(
            epoch,
            self.train_items,
            docs,
            mask_ratio=self.p.mask_ratio,
            reorder=self.eff["reorder_finetune"],
            all_targets=self.p.rec_target == "all",
        )

    def _content_docs(
        self, split: Split, rows: pd.DataFrame, corpus: Corpus, ctx: Any
    ) -> tuple[dict[str, Any] | None, str]:
        """The fit's content documents (:func:`content_documents`); their counts go to ``fit_info``."""
        docs, source, counts = content_documents(
            split,
            rows,
            corpus,
            mode=self.p.content,
            shuffle=self.p.shuffle_content,
            seed=int(ctx.seed),
            budget=self.budget,
            say=ctx.say,
        )
        self.fit_info.update(counts)
        return docs, source

    # --- validation and scoring ----------------------------------------------------------------------------
    def _valid_targets(
        self, split: Split, use_labels: bool, budget: dict[str, Any]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        cap = int(budget["max_valid_users"])
        return valid_targets(split, use_labels, self.train_items, cap, self._order_seed)

    def _valid_metric(self, users: np.ndarray, pos: list[np.ndarray]) -> float:
        """Recall@20 + Recall@40 + NDCG@100 on validation users (model selection, src/finetuning.py)."""
        values = self.metrics_on(users, pos)
        return float(sum(values.values()))

    def metrics_on(self, users: np.ndarray, pos: list[np.ndarray]) -> dict[str, float]:
        """The board's metrics for ``users`` against ``pos`` (training items masked)."""
        if len(users) == 0:
            return dict.fromkeys(METRIC_KEYS, 0.0)
        return board_metrics(self.score_all(users, [self.train_items[int(u)].tolist() for u in users]), pos)

    def prompt_items(self, u: int, history: list[int] | None = None) -> np.ndarray:
        """The items of a user's prediction prompt: all training items, in a fixed seeded permutation when
        reordering is on (paper §3.5; the code shuffles), in item-id order when it is off."""
        items = self.train_items[u] if history is None else np.asarray(history, dtype=np.int64)
        if self.eff["reorder_finetune"]:
            return np.random.default_rng([self._order_seed, 53, int(u)]).permutation(items)
        return np.sort(items) if history is None else items

    @torch.no_grad()
    def score_all(self, users: np.ndarray, histories: list[list[int]]) -> np.ndarray:
        if self.core is None or self.corpus is None:
            raise ConfigError("method 'cllm4rec': score_all before fit")
        core, corpus = self.core, self.corpus
        core.eval()
        given = self.p.prompt_history == "given"
        bs = self.p.eval_batch_size
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
        if self.p.mask_train:
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


def _bytes_per_10k(ext: VocabExtension) -> int:
    """Memory of the new rows per 10k items: tables x (input rows + separate head rows) x width x 4 bytes."""
    per_table = 1 + (1 if ext.head == "separate" else 0)
    return int(10_000 * ext.hidden * 4 * per_table * len(ext.table_names))
