"""What every generative LLM method shares: prompts from the split's setup, next-token training on the
answer, cached resumable stages, and constrained beam search at evaluation.

A method subclasses ``GenerativeLM`` and decides (1) whether prompts carry vector slots (``use_slots``), (2)
what goes into them (``slot_vectors``) and (3) which stages train what (``train_stages``). Everything else —
examples, tokenization, the item trie, batching, the loss on the answer tokens, decoding — lives here once.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from benchbed.api import BaseRecommender, Rankings, RankRequests, RunContext
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.generative.examples import Example, eval_rows, training_examples
from benchbed.generative.indexing import ItemIndex
from benchbed.generative.setup import GenerativeProtocol, GenerativeSetup
from benchbed.generative.templates import render_answer, render_pieces, slot_names
from benchbed.llm.backbone.facts import end_token
from benchbed.llm.backbone.loader import Backbone, load_backbone
from benchbed.llm.budget import seconds_cap, time_capped
from benchbed.llm.heads.constrained import ConstrainedHead, ItemTrie, build_item_trie
from benchbed.llm.injectors.base import Injector, ModelInputs
from benchbed.llm.injectors.prompts import (
    IGNORE,
    Batch,
    answer_labels,
    append_answers,
    bucket_batches,
    collate,
    encode,
)
from benchbed.llm.injectors.slots import SlotVectors
from benchbed.llm.recipes.beams import add_beam_counts, drop_excluded, with_beam_shares
from benchbed.llm.recipes.fitted import Fitted
from benchbed.llm.recipes.generative_params import GenerativeParams
from benchbed.llm.recipes.generative_rows import EncodedRows, TrainBatch
from benchbed.llm.recipes.lm_stage import LMStage, run_logged_stage, stage_result
from benchbed.llm.stages import StageChain, StageRun
from benchbed.llm.train import TrainConfig, epoch_rng, train
from benchbed.metrics.generative import generative_metrics
from benchbed.param_sets import ParamSet

# the training settings that name a stage's cache (with the recipes' own extra keys); stable_hash sorts keys
TRAIN_IDENTITY_KEYS = (
    "batch_size",
    "grad_accum",
    "weight_decay",
    "warmup_ratio",
    "max_train_examples",
    "max_seconds",
    "max_length",
)


class GenerativeLM(BaseRecommender):
    """Base of ``p5-random``, ``embedproj`` and ilm's generative path: trains on templated examples, ranks by
    constrained beams."""

    tasks: ClassVar[frozenset[str]] = frozenset({"generative"})
    uses_templates: ClassVar[bool] = True
    use_slots: ClassVar[bool] = False
    # beam-search batching and how many extra beams are kept to fill excluded items: ranking only
    evaluation_only: ClassVar[frozenset[str]] = frozenset({"eval_batch_size", "exclude_extra_beams"})
    Params: ClassVar[type[ParamSet]] = GenerativeParams
    p: GenerativeParams
    # set by ``fit`` (reading one before is a one-line error; benchbed.llm.recipes.fitted)
    ctx = Fitted[RunContext]("run context")
    setup = Fitted[GenerativeSetup]("generative setup")  # the task's templates and sub-task
    index = Fitted[ItemIndex]("item index")  # the task's item index (item -> id text)
    bb = Fitted[Backbone]("backbone")
    chain = Fitted[StageChain]("stage chain")  # the fit's stages, cached by identity
    head = Fitted[ConstrainedHead]("constrained head")  # beams over the item trie
    valid_split = Fitted[Split]("valid split")  # early stopping decodes its valid rows

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.stage_log: list[dict[str, Any]] = []  # the last fit's stages (the record's info)
        self._examples: list[Example] = []  # the last fit's training examples
        self.template_info = None  # the record's ``templates``: the task's setup, once fit read it
        # what ``fit`` (and the planner, :meth:`bind_prompts`) sets: None/empty until then
        self.ctx = None
        self.setup = None
        self.index = None
        self.bb = None
        self.chain = None
        self.head = None
        self.valid_split = None
        self.dataset = ""  # the split's dataset name (the prompts' ``{dataset}``)
        self.split_hash = ""
        self.model: Any = None  # the backbone's model (a peft model once LoRA is added)
        self.tok: Any = None  # the backbone's tokenizer
        self.end_token = -1  # the id closing answers and item ids (backbone.facts.end_token)
        self.vocab = 0  # rows of the output embedding
        self.slot_cols: tuple[str, ...] = ()  # the prompts' slot columns (user, then one per history item)
        self.slot_width = 1  # positions per slot (ILM: its N query tokens; set in ``prepare``)
        self.injector: Injector = SlotVectors()  # text-only methods leave the slots out of their prompts

    # --- hooks ----------------------------------------------------------------------------------------
    def prepare(self, split: Split, ctx: RunContext) -> None:
        """Build method-specific modules (projectors, embeddings) after the backbone is loaded."""

    def slot_vectors(self, users: torch.Tensor, hist: torch.Tensor) -> torch.Tensor | None:
        """(B, 1 + L, H) vectors for the user and history slots, or None for text-only prompts."""
        return None

    def train_stages(self, split: Split, ctx: RunContext) -> None:
        raise NotImplementedError

    # --- fit ------------------------------------------------------------------------------------------
    def fit(self, split: Split, ctx: RunContext) -> None:
        self.ctx = ctx
        # the task's settings and item index (a direct call without the task gets the task's defaults)
        protocol = ctx.setup.protocol
        if not isinstance(protocol, GenerativeProtocol):
            protocol = GenerativeProtocol.default(split)
        self.split_hash = split.key
        torch.manual_seed(ctx.seed)
        self.bb = load_backbone(self.p.backbone, device=ctx.device, dtype=ctx.dtype)
        self.bb.require_decoder(self.name)
        self.model = self.bb.model
        end = end_token(self.bb.tokenizer, self.model, who=f"method {self.name!r}")
        self.bind_prompts(protocol, split.data.name, self.bb.tokenizer, end)
        self.vocab = int(self.model.get_output_embeddings().weight.shape[0])
        trie = self._build_trie()
        self.injector = SlotVectors()  # text-only methods leave the slots out of their prompts
        self.head = ConstrainedHead(trie)
        self.stage_log = []
        self.template_info = self.setup.template_info()
        self._examples = self._training_examples(split, ctx)
        self.valid_split = split
        self.prepare(split, ctx)
        self.chain = StageChain(ctx.cache_dir, self.base_identity())
        self.train_stages(split, ctx)
        self.model.eval()
        self.backbone_info = {
            **self.bb.info,
            "item_index": {"mode": self.index.mode, "seed": self.index.seed},
            "trie": {"items": trie.n_items, "nodes": trie.n_nodes, "depth": trie.depth},
            "stages": self.stage_log,
        }

    def bind_prompts(self, protocol: GenerativeProtocol, dataset: str, tokenizer: Any, end: int) -> None:
        """What :meth:`encode_rows` reads: the task's setup and item index, the dataset's name, the tokenizer
        and its end token (``fit``; the planner, which loads no backbone)."""
        self.setup, self.index = protocol.setup, protocol.index
        self.dataset = dataset
        self.tok = tokenizer
        self.end_token = end
        self.slot_cols = slot_names(protocol.setup.history_len)

    def _build_trie(self) -> ItemTrie:
        answer = self.setup.bank().extra["answer"]
        for other in self.setup.banks.values():
            if other.extra["answer"] != answer:
                raise ConfigError("generative banks: both sub-tasks must use the same 'answer' format")
        covered = self.index.covered()
        texts = {
            int(i): render_answer(self.setup.bank(), dataset=self.dataset, target=self.index.text(int(i)))
            for i in covered
        }
        return build_item_trie(self.tok, texts, end_token=self.end_token, vocab_size=self.vocab)

    def _training_examples(self, split: Split, ctx: RunContext) -> list[Example]:
        sub_tasks = (
            ("sequential", "straightforward") if self.p.train_sub_tasks == "both" else (self.setup.sub_task,)
        )
        return training_examples(
            split,
            sub_tasks,
            history_len=self.setup.history_len,
            n_seen=len(self.setup.bank().seen),
            templates_per_example=self.setup.templates_per_example,
            seed=ctx.seed,
            max_examples=self.p.max_train_examples,
        )

    def base_identity(self) -> dict[str, Any]:
        """What every stage result depends on besides its own settings."""
        setup = self.setup.as_dict()
        if self.p.train_sub_tasks == "both":  # the same model serves both evaluated sub-tasks
            setup.pop("sub_task")
        return {
            "split": self.split_hash,
            "backbone": {k: self.bb.info.get(k) for k in ("id", "revision", "dtype")},
            "setup": setup,
            "banks": {k: b.hash() for k, b in self.setup.banks.items()},
            "seed": self.ctx.seed,
            "examples": len(self._examples),
            "train": {k: self.params[k] for k in (*TRAIN_IDENTITY_KEYS, "train_sub_tasks", "valid_users")},
        }

    # --- encoding -------------------------------------------------------------------------------------
    def encode_rows(
        self,
        sub_tasks: list[str],
        users: np.ndarray,
        histories: list[list[int]] | list[tuple[int, ...]],
        templates: list[str],
        *,
        use_slots: bool,
        targets: np.ndarray | None = None,
    ) -> EncodedRows:
        pieces = [
            render_pieces(
                self.setup.bank(st),
                tpl,
                dataset=self.dataset,
                user=str(int(u)),
                history=[self.index.text(int(i)) for i in h] if st == "sequential" else [],
                slots=use_slots,
            )
            for st, u, h, tpl in zip(sub_tasks, users, histories, templates, strict=True)
        ]
        enc = encode(
            self.tok, pieces, self.slot_cols, max_length=self.p.max_length, slot_width=self.slot_width
        )
        answer_len = np.zeros(len(pieces), dtype=np.int64)
        if targets is not None:
            bank = self.setup.bank()
            texts = [
                render_answer(bank, dataset=self.dataset, target=self.index.text(int(t))) for t in targets
            ]
            answers = self.tok(texts, add_special_tokens=False)["input_ids"]
            answer_len = append_answers(enc, answers, self.end_token)
        hist = np.full((len(pieces), self.setup.history_len), -1, dtype=np.int64)
        for r, (st, h) in enumerate(zip(sub_tasks, histories, strict=True)):
            if st == "sequential" and len(h):
                h = list(h)[-self.setup.history_len :]
                hist[r, : len(h)] = h
        return EncodedRows(enc=enc, answer_len=answer_len, users=np.asarray(users, dtype=np.int64), hist=hist)

    def _train_batch(self, rows: EncodedRows, idx: np.ndarray) -> TrainBatch:
        device = self.bb.device
        batch = collate(rows.enc, idx, self.tok.pad_token_id or 0, device)
        labels = answer_labels(rows.enc, rows.answer_len, idx)
        return TrainBatch(
            batch=batch,
            labels=torch.from_numpy(labels).to(device),
            users=torch.from_numpy(rows.users[idx]).to(device),
            hist=torch.from_numpy(rows.hist[idx]).to(device),
        )

    def model_inputs(
        self, batch: Batch, users: torch.Tensor, hist: torch.Tensor, use_slots: bool
    ) -> ModelInputs:
        """The injector's forward inputs: the user and history slots filled when ``use_slots``."""
        vectors = self.slot_vectors(users, hist) if use_slots else None
        return self.injector.inputs(self.model, batch, vectors=vectors)

    def answer_loss(self, tb: TrainBatch, use_slots: bool) -> torch.Tensor:
        """Mean next-token cross-entropy over the answer tokens (the id and the end token)."""
        inputs = self.model_inputs(tb.batch, tb.users, tb.hist, use_slots)
        width = tb.labels.shape[1]
        out = self.model(**inputs.kwargs(), logits_to_keep=width + 1)
        logits = out.logits[:, :-1, :].float()
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), tb.labels.reshape(-1), ignore_index=IGNORE
        )

    # --- stages ---------------------------------------------------------------------------------------
    def run_stage(self, spec: LMStage) -> StageRun:
        """Train ``spec``'s trainable parameters, or load them when the same stage already finished."""
        return run_logged_stage(self.chain, spec, self._train_stage, self.ctx.say, self.name, self.stage_log)

    def _train_stage(
        self, spec: LMStage, params: dict[str, torch.nn.Parameter], ckpt: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Next-token training on the answers of the templated examples; returns (blob, meta) to save."""
        start = time.perf_counter()
        ex = self._examples
        rows = self.encode_rows(
            [e.sub_task for e in ex],
            np.asarray([e.user for e in ex]),
            [e.history for e in ex],
            [e.template for e in ex],
            use_slots=spec.use_slots,
            targets=np.asarray([e.target for e in ex]),
        )
        lengths = rows.enc.lengths
        bs = self.p.batch_size
        n_batches = (len(ex) + bs - 1) // bs

        def batches_for_epoch(epoch: int, skip: int = 0) -> Any:
            # a resumed stage skips the batches it already trained on without collating them
            for idx in bucket_batches(lengths, bs, rng=epoch_rng(self.ctx.seed, epoch))[skip:]:
                yield self._train_batch(rows, idx)

        cfg = self._train_config(spec)
        n_valid = self.p.valid_users if spec.valid_users is None else spec.valid_users
        eval_fn = (lambda: self._valid_metric(spec.use_slots, n_valid)) if n_valid > 0 else None
        self.ctx.say(
            f"{self.name}: stage {spec.name}: {len(ex)} examples, {spec.epochs} epoch(s), "
            f"{sum(x.numel() for x in params.values())} trainable parameters"
        )
        result = train(
            params,
            batches_for_epoch,
            n_batches,
            lambda tb: self.answer_loss(tb, spec.use_slots),
            cfg,
            eval_fn=eval_fn,
            checkpoint_dir=ckpt,
            log=self.ctx.say,
            modules=list(spec.modules.values()),
        )
        blob, meta = stage_result(spec, len(ex), params, start, result)
        if spec.valid_users is not None:  # a stage that selects its checkpoint on dev logs every evaluation
            keep = ("epoch", "eval", "steps", "metric")
            meta["valid_history"] = [{k: h[k] for k in keep} for h in result.history]
        return blob, meta

    def _train_config(self, spec: LMStage) -> TrainConfig:
        """The stage's training settings: the method's parameters, with the stage's own where it sets them."""
        p = self.p
        return TrainConfig(
            lr=spec.lr,
            weight_decay=float(p.weight_decay),  # an int stays a float in the recorded settings
            epochs=spec.epochs,
            warmup_ratio=float(p.warmup_ratio),
            grad_accum=p.grad_accum,
            max_seconds=seconds_cap(p.max_seconds),
            evals_per_epoch=1 if spec.evals_per_epoch is None else spec.evals_per_epoch,
            patience=2 if spec.patience is None else spec.patience,
            schedule="cosine" if spec.schedule is None else spec.schedule,
        )

    def _valid_metric(self, use_slots: bool, n_users: int) -> float:
        """NDCG@10 of the seen template on the valid rows (each user's second-to-last item, history = the
        training items) of the first ``n_users`` users: the test items are never read."""
        rows = eval_rows(self.valid_split, "valid", history_len=self.setup.history_len)
        n = min(len(rows.users), n_users)
        ranked = self.decode(rows.users[:n], rows.histories[:n], "seen", k=10, use_slots=use_slots).items
        return generative_metrics(ranked, rows.targets[:n], [10])["ndcg@10"]

    def record_info(self) -> dict[str, Any]:
        """Budget and stages for the run record (the runner stores it under ``info.method``)."""
        stage_log = self.stage_log
        info: dict[str, Any] = {
            "train_examples": len(self._examples),
            "budget": {
                k: self.params[k] for k in ("epochs", "max_train_examples", "max_seconds", "train_sub_tasks")
            },
            "stages": stage_log,
        }
        if time_capped(stage_log):
            info["time_capped"] = True
        return info

    def trainable_parameters(self) -> int:
        return int(sum(s.get("trainable", 0) for s in self.stage_log))

    # --- ranking --------------------------------------------------------------------------------------
    def rank(self, requests: RankRequests) -> Rankings:
        """Top-k generated ids per user (constrained beams); ``exclude`` items dropped from wider beams."""
        k = int(requests.k)
        extra = 0
        if requests.exclude is not None:  # wider beams so that k ids usually survive the filtering
            longest = max((len(e) for e in requests.exclude), default=0)
            extra = min(longest, self.p.exclude_extra_beams)
        out = self.decode(
            requests.users, requests.histories, requests.template, k=k + extra, use_slots=self.use_slots
        )
        items, scores = out.items, out.scores
        if requests.exclude is not None:
            items, scores = drop_excluded(items, scores, requests.exclude, k)
        return Rankings(items=items[:, :k], scores=scores[:, :k], info=dict(out.stats))

    @torch.no_grad()
    def decode(
        self, users: np.ndarray, histories: list[list[int]], template: str, *, k: int, use_slots: bool
    ) -> Any:
        """Constrained beam search for a batch of users, in chunks of ``eval_batch_size``."""
        from benchbed.llm.heads.constrained import BeamOutput

        key = {"seen": "seen:0", "unseen": "unseen:0"}.get(template, template)
        n = len(users)
        beams = max(k, 1)
        items = np.full((n, beams), -1, dtype=np.int64)
        scores = np.full((n, beams), -np.inf)
        flags = np.zeros((n, beams), dtype=bool)
        stats: dict[str, float] = {}
        self.model.eval()
        size = self.p.eval_batch_size
        for start in range(0, n, size):
            sl = slice(start, min(start + size, n))
            m = sl.stop - sl.start
            rows = self.encode_rows(
                [self.setup.sub_task] * m,
                np.asarray(users[sl]),
                list(histories[sl]),
                [key] * m,
                use_slots=use_slots,
            )
            idx = np.arange(m)
            batch = collate(rows.enc, idx, self.tok.pad_token_id or 0, self.bb.device)
            inputs = self.model_inputs(
                batch,
                torch.from_numpy(rows.users).to(self.bb.device),
                torch.from_numpy(rows.hist).to(self.bb.device),
                use_slots,
            )
            out = self.head.rank(self.model, inputs, num_beams=beams)
            items[sl], scores[sl], flags[sl] = out.items, out.scores, out.constrained
            add_beam_counts(stats, out.stats)
        return BeamOutput(items=items, scores=scores, constrained=flags, stats=with_beam_shares(stats))
