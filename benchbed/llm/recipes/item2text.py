"""What every LM method on the item2text task shares: prompts from the task's examples, next-token training
on the reference, cached stages, batched greedy/beam decoding through ``TextGenerationHead``.

A subclass decides (1) how items enter the prompt (``prompt_mode``: ``slot`` = vectors at the markers,
``title`` = the title text, ``title+slot``), (2) the vectors (``item_vectors``: (B, S, N, H) for the item ids
(B, S), -1 = no item; N = ``n_tokens``) and (3) its stages (``train_stages``, each a ``LMStage`` of modules
to train). The item's ID vector reaches the LM only through the slot positions (``MultiTokenSlots``), so on
held-out items everything a vector-only method knows about an item comes from its embedding.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from benchbed.api import BaseRecommender, GenerateRequests, RunContext
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.item2text.examples import Example, sample_examples
from benchbed.item2text.prompts import SLOTS, to_pieces
from benchbed.item2text.setup import Item2TextProtocol
from benchbed.llm.backbone.facts import end_token
from benchbed.llm.backbone.loader import Backbone, load_backbone
from benchbed.llm.budget import seconds_cap, time_capped
from benchbed.llm.heads.text import TextGenerationHead
from benchbed.llm.injectors.base import ModelInputs
from benchbed.llm.injectors.prompts import (
    IGNORE,
    Batch,
    EncodedPrompts,
    answer_labels,
    append_answers,
    bucket_batches,
    collate,
    encode,
)
from benchbed.llm.injectors.slots import MultiTokenSlots
from benchbed.llm.recipes.lm_stage import LMStage, run_logged_stage, stage_result
from benchbed.llm.stages import StageChain, StageRun
from benchbed.llm.train import TrainConfig, epoch_rng, train
from benchbed.param_sets import ParamSet


@dataclass(frozen=True)
class Item2TextParams(ParamSet):
    """What every item2text LM method reads: the backbone, the training loop and the CPU budget."""

    backbone: str = "tiny"  # preset, alias, hub id or local path (tiny: random init, tests the pipeline)
    epochs: int = 2
    lr: float = 1e-3  # AdamW; the tiny backbone learns the template language from scratch
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    batch_size: int = 32
    grad_accum: int = 1
    eval_batch_size: int = 64  # prompts per decoding batch
    max_train_examples: int | None = 20000  # CPU budget (seeded sample); None = all
    max_seconds: float | None = None  # wall-clock cap per stage (off by default)


@dataclass
class TrainBatch:
    batch: Batch
    labels: torch.Tensor  # (B, A) reference tokens right-aligned (left padding), IGNORE elsewhere
    items: torch.Tensor  # (B, 2) item ids, -1 for none

    def __len__(self) -> int:
        return len(self.batch)

    @property
    def n_tokens(self) -> int:
        return self.batch.n_tokens


class Item2TextLM(BaseRecommender):
    """Base of the item2text LM baselines (and usable by ``ilm``'s item2text path)."""

    tasks: ClassVar[frozenset[str]] = frozenset({"item2text"})
    uses_templates: ClassVar[bool] = True
    prompt_mode: ClassVar[str] = "slot"
    evaluation_only: ClassVar[frozenset[str]] = frozenset({"eval_batch_size"})  # prompts per generate call
    Params: ClassVar[type[ParamSet]] = Item2TextParams
    p: Item2TextParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.stage_log: list[dict[str, Any]] = []  # the last fit's stages (the record's info)
        self._examples: list[Example] = []  # the last fit's training examples

    # --- hooks ----------------------------------------------------------------------------------------
    n_tokens: int = 1
    # every stage trains with the whole LLM in train mode (dropout on, even when it is frozen); False leaves
    # the modes to the trainer, which switches the trained modules only (ILM: a frozen LLM stays in eval)
    whole_llm_trains: ClassVar[bool] = True

    def prepare(self, split: Split, ctx: RunContext) -> None:
        """Build the method's modules (projectors) after the backbone is loaded."""

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor | None:
        """(B, S, N, H) vectors for item ids (B, S) (-1: none, any vector), or None (text only)."""
        return None

    def max_prompt_tokens(self) -> int | None:
        """The prompt cap in tokens (oldest text cut first); None = no cap (the baselines declare none)."""
        return None

    def train_stages(self) -> list[LMStage]:
        raise NotImplementedError

    def companions(self) -> list[tuple[str, dict[str, Any]]]:
        """The control rows (floor, constant answer, copy the title), so every board printed after a run
        has them."""
        return [("i2t-floor", {}), ("i2t-const", {}), ("i2t-copy", {})]

    # --- fit ------------------------------------------------------------------------------------------
    def fit(self, split: Split, ctx: RunContext) -> None:
        proto = ctx.setup.protocol
        if not isinstance(proto, Item2TextProtocol):
            proto = Item2TextProtocol.default(split)
        self.ctx, self.proto = ctx, proto
        self.split_hash = split.key
        torch.manual_seed(ctx.seed)
        self.bb: Backbone = load_backbone(self.p.backbone, device=ctx.device, dtype=ctx.dtype)
        self.bb.require_decoder(self.name)
        self.model, self.tok = self.bb.model, self.bb.tokenizer
        self.end = end_token(self.tok, self.model, who=f"method {self.name!r}")
        self.injector = MultiTokenSlots(self.n_tokens)
        self.head = TextGenerationHead(
            self.tok, max_new_tokens=proto.decoding.max_new_tokens, num_beams=proto.decoding.num_beams,
            eos_token_id=self.end, method=self.name,
        )  # fmt: skip
        self.template_info = proto.template_info()
        self.stage_log = []
        self._examples = sample_examples(proto.train, self.p.max_train_examples, ctx.seed)
        self.prepare(split, ctx)
        self.chain = StageChain(ctx.cache_dir, self.base_identity())
        self.run_stages(split, ctx)
        self.model.eval()
        self.backbone_info = {**self.bb.info, "stages": self.stage_log}

    def run_stages(self, split: Split, ctx: RunContext) -> None:
        """Train (or load) ``train_stages`` in order, each building on the one before."""
        after: str | None = None
        for spec in self.train_stages():
            self.run_stage(spec, after)
            after = spec.name

    # --- encoding -------------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        """How items enter the prompts at evaluation (and in every stage that names no other mode)."""
        return self.prompt_mode

    def pieces(self, prompt: str, items: Any, mode: str | None = None) -> list[Any]:
        return to_pieces(prompt, list(items), mode=mode or self.mode, titles=self.proto.facts.title)

    def encode_prompts(
        self,
        prompts: list[str],
        items: np.ndarray,
        references: list[str] | None = None,
        *,
        mode: str | None = None,
    ) -> tuple[EncodedPrompts, np.ndarray]:
        """Token ids (+ reference and end token when training) and the answer lengths."""
        pieces = [self.pieces(p, row, mode) for p, row in zip(prompts, items, strict=True)]
        enc = encode(self.tok, pieces, SLOTS, max_length=self.max_prompt_tokens(), slot_width=self.n_tokens)
        answer = np.zeros(len(pieces), dtype=np.int64)
        if references is not None:
            ids = self.tok(references, add_special_tokens=False)["input_ids"]
            answer = append_answers(enc, ids, self.end)
        return enc, answer

    @staticmethod
    def item_matrix(items: list[tuple[int, ...]] | np.ndarray) -> np.ndarray:
        out = np.full((len(items), 2), -1, dtype=np.int64)
        for r, row in enumerate(items):
            out[r, : len(row)] = list(row)[:2]
        return out

    def model_inputs(self, batch: Batch, items: torch.Tensor, mode: str | None = None) -> ModelInputs:
        vectors = self.item_vectors(items) if (mode or self.mode) != "title" else None
        return self.injector.inputs(self.model, batch, vectors=vectors)

    def loss(self, tb: TrainBatch, mode: str | None = None) -> torch.Tensor:
        """Mean next-token cross-entropy over the reference tokens (and the end token) only."""
        inputs = self.model_inputs(tb.batch, tb.items, mode)
        width = tb.labels.shape[1]
        logits = self.model(**inputs.kwargs(), logits_to_keep=width + 1).logits[:, :-1, :].float()
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), tb.labels.reshape(-1), ignore_index=IGNORE
        )

    # --- stages ---------------------------------------------------------------------------------------
    def base_identity(self) -> dict[str, Any]:
        p = self.params
        return {
            "method": self.name,
            "split": self.split_hash,
            "items": self.proto.items.hash,
            "setup": {
                k: v
                for k, v in self.proto.setup.as_dict().items()
                if k not in ("num_beams", "max_new_tokens")
            },
            "bank": self.proto.bank_hash,
            "backbone": {k: self.bb.info.get(k) for k in ("id", "revision", "dtype")},
            "seed": self.ctx.seed,
            "examples": len(self._examples),
            "train": {
                k: p[k] for k in ("batch_size", "grad_accum", "weight_decay", "warmup_ratio", "max_seconds")
            },
        }

    def run_stage(self, spec: LMStage, after: str | None = None) -> StageRun:
        """Train (or load) one stage. A stage that builds on an earlier one names it (``after``), so whatever
        changed the earlier stage changes this one's key too."""
        if spec.before is not None:
            spec.before()
        return run_logged_stage(
            self.chain, spec, self._train_stage, self.ctx.say, self.name, self.stage_log, after
        )

    def _train_stage(
        self, spec: LMStage, params: dict[str, torch.nn.Parameter], ckpt: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        p = self.p
        start = time.perf_counter()
        ex = self._examples
        items = self.item_matrix([e.items for e in ex])
        refs = [e.reference for e in ex]
        enc, answer = self.encode_prompts([e.prompt for e in ex], items, refs, mode=spec.prompt_mode)
        bs = p.batch_size
        device = self.bb.device
        pad = self.tok.pad_token_id or 0

        def make(idx: np.ndarray) -> TrainBatch:
            labels = answer_labels(enc, answer, idx)
            return TrainBatch(
                batch=collate(enc, idx, pad, device),
                labels=torch.from_numpy(labels).to(device),
                items=torch.from_numpy(items[idx]).to(device),
            )

        def batches_for_epoch(epoch: int, skip: int = 0) -> Any:
            for idx in bucket_batches(enc.lengths, bs, rng=epoch_rng(self.ctx.seed, epoch))[skip:]:
                yield make(idx)

        cfg = TrainConfig(
            lr=spec.lr,
            weight_decay=float(p.weight_decay),
            epochs=spec.epochs,
            warmup_ratio=float(p.warmup_ratio),
            grad_accum=p.grad_accum,
            max_seconds=seconds_cap(p.max_seconds),
            schedule="cosine" if spec.schedule is None else spec.schedule,
        )
        n_trainable = sum(x.numel() for x in params.values())
        self.ctx.say(
            f"{self.name}: stage {spec.name}: {len(ex)} examples, {spec.epochs} epoch(s), "
            f"{n_trainable} params"
        )
        if self.whole_llm_trains:
            self.model.train()
        result = train(
            params,
            batches_for_epoch,
            (len(ex) + bs - 1) // bs,
            lambda tb: self.loss(tb, spec.prompt_mode),
            cfg,
            checkpoint_dir=ckpt,
            log=self.ctx.say,
            modules=list(spec.modules.values()),
        )
        self.model.eval()
        return stage_result(spec, len(ex), params, start, result)

    def record_info(self) -> dict[str, Any]:
        stage_log = self.stage_log
        p = self.params
        info: dict[str, Any] = {
            "train_examples": len(self._examples),
            "budget": {k: p[k] for k in ("epochs", "max_train_examples", "max_seconds")},
            "stages": stage_log,
            "prompt_mode": self.prompt_mode,
            "n_tokens": self.n_tokens,
        }
        if time_capped(stage_log):
            info["time_capped"] = True
        return info

    def trainable_parameters(self) -> int:
        return int(max((s.get("trainable", 0) for s in self.stage_log), default=0))

    # --- generation -----------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, requests: GenerateRequests) -> list[str]:
        """Best beam per prompt (greedy by default), in chunks of ``eval_batch_size``."""
        if requests.items is None:
            raise ConfigError(f"method {self.name!r}: item2text requests need the items array")
        items = self.item_matrix(np.asarray(requests.items, dtype=np.int64))
        beams = int(requests.num_beams)  # the task's decoding setting travels with the requests
        enc, _ = self.encode_prompts(list(requests.prompts), items, mode=self.mode)
        out: list[str] = []
        size = self.p.eval_batch_size
        pad = self.tok.pad_token_id or 0
        self.model.eval()
        for start in range(0, len(enc), size):
            idx = np.arange(start, min(start + size, len(enc)))
            batch = collate(enc, idx, pad, self.bb.device)
            inputs = self.model_inputs(batch, torch.from_numpy(items[idx]).to(self.bb.device))
            gen = self.head(
                self.model, inputs, batch, max_new_tokens=int(requests.max_new_tokens), num_beams=beams
            )
            out.extend(t.strip() for t in gen.best_texts)
        return out
