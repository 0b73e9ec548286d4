"""``ilm`` on the item-to-text task (ILM §4.3, the ELM tasks): each ``{item1}``/``{item2}`` marker becomes the
item's N ILM tokens (the title is *not* in the prompt: ELM replaces the movie title by its embedding, §4.1),
next-token loss on the reference text only (Eq. 6), greedy or beam decoding with the kit's text head.

Stages: (0) on a randomly initialised backbone a text-only warm start on the same examples with the titles
in the prompt (protocols/ilm.md §1h: the tiny LM is "briefly pretrained on the template corpus"; the paper's
PaLM 2-S is pretrained); (1) the ILM encoder on item-text pairs = the training examples' prompt with the title
filled in + the reference (§4.3: "title(s) and task specific information + the target"; single-item
examples, since how two items enter stage 1 is not stated), no LLM; test and valid items never appear, and the
valid items' texts give the held-out ITG loss of Table 5; (2) co-training of encoder + projector + LLM (§4.3;
``freeze_llm`` = ILM-F).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from benchbed.api import BaseRecommender, GenerateRequests, RunContext
from benchbed.config import stable_hash
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.item2text.examples import sample_examples
from benchbed.llm.backbone.loader import Backbone, load_backbone
from benchbed.llm.budget import seconds_cap, time_capped
from benchbed.llm.heads.text import TextGenerationHead
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
from benchbed.llm.lora import LoraSpec, add_lora, named_trainable, set_trainable
from benchbed.llm.recipes.generative import TRAIN_IDENTITY_KEYS
from benchbed.llm.stages import param_loader, run_or_load
from benchbed.llm.stages import stage as make_stage
from benchbed.llm.train import TrainConfig, epoch_rng, train
from benchbed.methods.ilm.parts import ILM_DEFAULTS, ILM_PARAM_SPECS, ILMParts
from benchbed.methods.p5_random import wants_warm_start
from benchbed.params import Param


def is_item2text(protocol: Any) -> bool:
    """True when the task handed over the item-to-text protocol (``benchbed.item2text.setup``)."""
    try:
        from benchbed.item2text.setup import Item2TextProtocol
    except ImportError:  # pragma: no cover - the task package is part of benchbed
        return False
    return isinstance(protocol, Item2TextProtocol)


@dataclass
class TrainRows:
    enc: EncodedPrompts
    answer_len: np.ndarray
    items: np.ndarray  # (n, 2) item ids, -1 where the prompt has no second item


@dataclass
class TrainBatch:
    batch: Batch
    labels: torch.Tensor
    items: torch.Tensor

    def __len__(self) -> int:
        return len(self.batch)

    @property
    def n_tokens(self) -> int:
        return self.batch.n_tokens


class ILMItem2Text(BaseRecommender):
    """The item-to-text path of ``ilm`` (built by ``benchbed.methods.ilm.method.ILM`` for the
    item2text task).
    """

    name: ClassVar[str] = "ilm"
    tasks: ClassVar[frozenset[str]] = frozenset({"item2text"})
    uses_templates: ClassVar[bool] = True
    param_specs: ClassVar[dict[str, Param]] = ILM_PARAM_SPECS
    defaults: ClassVar[dict[str, Any]] = {
        "backbone": "tiny",
        "lr": 1e-3,  # the warm-start stage (CPU scale)
        "epochs": 1,  # the warm-start stage
        "weight_decay": 0.01,
        "warmup_ratio": 0.05,
        "batch_size": 32,  # the paper's stage-2 batch (T7)
        "grad_accum": 1,
        "eval_batch_size": 32,
        "max_train_examples": 20000,  # CPU budget (seeded sample); None = all
        "max_seconds": None,
        "max_length": None,
        **ILM_DEFAULTS,
        "warm_start": "auto",
        "tuning": "full",
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.05,
        "lora_targets": "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
    }

    # --- fit ------------------------------------------------------------------------------------------
    def fit(self, split: Split, ctx: RunContext) -> None:
        from benchbed.item2text.setup import Item2TextProtocol

        p = self.params
        if p["tuning"] not in ("full", "lora"):
            raise ConfigError(f"method 'ilm': tuning must be full or lora, got {p['tuning']!r}")
        if p["warm_start"] not in ("auto", "text", "none"):
            raise ConfigError(f"method 'ilm': warm_start must be auto, text or none, got {p['warm_start']!r}")
        protocol = ctx.setup.protocol
        if not is_item2text(protocol):
            protocol = Item2TextProtocol.default(split)
        self.protocol = protocol
        self.ctx = ctx
        self.split_hash = split.hash or split.compute_hash()
        torch.manual_seed(ctx.seed)
        self.bb: Backbone = load_backbone(str(p["backbone"]), device=ctx.device, dtype=ctx.dtype)
        self.bb.require_decoder(self.name)
        self.model = self.bb.model
        self.tok = self.bb.tokenizer
        self.end_token = _end_token(self.tok, self.model)
        dtype = self.model.get_input_embeddings().weight.dtype
        self.parts = ILMParts(p, split, ctx, tokenizer=self.tok, hidden=self.bb.hidden_size, dtype=dtype)
        self.injector = MultiTokenSlots(self.parts.n_queries)
        self.mode = "title" if self.parts.kind == "none" else "slot"  # text only: titles, no tokens
        self.head = TextGenerationHead(
            self.tok,
            max_new_tokens=int(protocol.decoding.max_new_tokens),
            num_beams=int(protocol.decoding.num_beams),
            eos_token_id=self.end_token,
            method=self.name,
        )
        self.template_info = protocol.template_info()
        self.stage_log: list[dict[str, Any]] = []
        self._examples = sample_examples(protocol.train, self.params["max_train_examples"], ctx.seed)
        if not self._examples:
            raise ConfigError("method 'ilm': the item2text task gave no training examples")
        self._train_stages(split, ctx)
        self.model.eval()
        self.backbone_info = {**self.bb.info, "stages": self.stage_log}

    def _base_identity(self) -> dict[str, Any]:
        p = self.params
        return {
            "split": self.split_hash,
            "items": self.protocol.items.hash,
            "setup": self.protocol.setup.as_dict(),
            "bank": self.protocol.bank_hash,
            "backbone": {k: self.bb.info.get(k) for k in ("id", "revision", "dtype")},
            "seed": self.ctx.seed,
            "examples": len(self._examples),
            "sample": "shared",  # item2text.examples.sample_examples (before: a stream of ILM's own)
            "train": {k: p[k] for k in TRAIN_IDENTITY_KEYS},
        }

    def _train_stages(self, split: Split, ctx: RunContext) -> None:
        p = self.params
        chain: list[str] = []
        if wants_warm_start(self.params):
            set_trainable(self.model, lambda _n: True)
            self._run_lm_stage(
                "ilm-i2t-text", {"model": self.model}, "title", float(p["lr"]), int(p["epochs"]), {}
            )
            chain.append(self.stage_log[-1]["key"])
        items, texts = self._stage1_texts(self._examples)
        held = self._stage1_texts(list(self.protocol.valid))
        info = self.parts.stage1(
            split,
            ctx,
            items,
            texts,
            identity={**self._base_identity(), "task": "item2text"},
            held_out=held if len(held[0]) else None,
            log=ctx.say,
        )
        if info is not None:
            self.stage_log.append(info)
            chain.append(info["key"])
        frozen = bool(p["freeze_llm"])
        set_trainable(self.model, lambda _n: False)
        lora = LoraSpec.from_params(p)
        if not frozen:
            if p["tuning"] == "lora":
                self.model, _ = add_lora(self.model, lora)
                self.bb.model = self.model
            else:
                set_trainable(self.model, lambda _n: True)
        text_only = self.parts.kind == "none"
        if text_only and frozen:
            raise ConfigError("method 'ilm': item_encoder none with freeze_llm leaves nothing to train")
        modules = {**({} if frozen else {"model": self.model}), **({} if text_only else self.parts.modules())}
        identity = {
            "after": chain,
            "ilm": self.parts.identity(),
            "freeze_llm": frozen,
            "tuning": p["tuning"],
            "lora": lora.as_dict() if p["tuning"] == "lora" and not frozen else None,
        }
        self._run_lm_stage(
            "ilm-i2t-stage2", modules, self.mode, float(p["stage2_lr"]), int(p["stage2_epochs"]), identity
        )
        self.parts.encoder.eval()
        self.parts.proj.eval()

    def _stage1_texts(self, examples: list[Any]) -> tuple[np.ndarray, list[str]]:
        """Single-item examples as (item, prompt with the title filled in + reference)."""
        from benchbed.item2text.prompts import to_pieces

        titles = self.protocol.facts.title
        items, texts = [], []
        for ex in examples:
            if len(ex.items) != 1:
                continue
            prompt = "".join(str(x) for x in to_pieces(ex.prompt, ex.items, mode="title", titles=titles))
            items.append(int(ex.items[0]))
            texts.append(f"{prompt} {ex.reference}")
        return np.asarray(items, dtype=np.int64), texts

    # --- encoding -------------------------------------------------------------------------------------
    def encode_prompts(
        self, prompts: list[str], items: np.ndarray, mode: str
    ) -> tuple[EncodedPrompts, np.ndarray]:
        from benchbed.item2text.prompts import SLOTS, to_pieces

        titles = self.protocol.facts.title
        width = self.parts.n_queries if "slot" in mode else 1
        pieces = [
            to_pieces(pr, [int(i) for i in row if int(i) >= 0], mode=mode, titles=titles)
            for pr, row in zip(prompts, items, strict=True)
        ]
        enc = encode(self.tok, pieces, SLOTS, max_length=self.params["max_length"], slot_width=width)
        full = np.full((len(prompts), len(SLOTS)), -1, dtype=np.int64)
        full[:, : items.shape[1]] = items[:, : len(SLOTS)]
        return enc, full

    def _rows(self, examples: list[Any], mode: str) -> TrainRows:
        items = np.full((len(examples), 2), -1, dtype=np.int64)
        for r, ex in enumerate(examples):
            items[r, : len(ex.items)] = ex.items
        enc, items = self.encode_prompts([ex.prompt for ex in examples], items, mode)
        answers = self.tok([ex.reference for ex in examples], add_special_tokens=False)["input_ids"]
        answer_len = append_answers(enc, answers, self.end_token)
        return TrainRows(enc=enc, answer_len=answer_len, items=items)

    def _batch(self, rows: TrainRows, idx: np.ndarray) -> TrainBatch:
        device = self.bb.device
        batch = collate(rows.enc, idx, self.tok.pad_token_id or 0, device)
        labels = answer_labels(rows.enc, rows.answer_len, idx)
        return TrainBatch(
            batch, torch.from_numpy(labels).to(device), torch.from_numpy(rows.items[idx]).to(device)
        )

    def _inputs(self, batch: Batch, items: torch.Tensor, slots: bool) -> Any:
        vectors = self.parts.item_tokens(items) if slots else None  # (B, 2, N, H); -1 columns are skipped
        return self.injector.inputs(self.model, batch, vectors=vectors)

    def _loss(self, tb: TrainBatch, slots: bool) -> torch.Tensor:
        inputs = self._inputs(tb.batch, tb.items, slots)
        width = tb.labels.shape[1]
        out = self.model(**inputs.kwargs(), logits_to_keep=width + 1)
        logits = out.logits[:, :-1, :].float()
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), tb.labels.reshape(-1), ignore_index=IGNORE
        )

    # --- stages ---------------------------------------------------------------------------------------
    def _run_lm_stage(
        self,
        name: str,
        modules: dict[str, torch.nn.Module],
        mode: str,
        lr: float,
        epochs: int,
        identity: dict[str, Any],
    ) -> None:
        p = self.params
        params = named_trainable(**modules)
        st = make_stage(
            self.ctx.cache_dir,
            name,
            {**self._base_identity(), **identity, "mode": mode, "lr": lr, "epochs": epochs},
        )
        slots = mode == "slot"

        load_fn = param_loader(params, st)

        def train_fn(ckpt: Any) -> tuple[dict[str, Any], dict[str, Any]]:
            start = time.perf_counter()
            rows = self._rows(self._examples, mode)
            bs = int(p["batch_size"])
            n_batches = -(-len(self._examples) // bs)

            def batches(epoch: int, skip: int = 0) -> Any:
                for idx in bucket_batches(rows.enc.lengths, bs, rng=epoch_rng(self.ctx.seed, epoch))[skip:]:
                    yield self._batch(rows, idx)

            cfg = TrainConfig(
                lr=lr,
                weight_decay=float(p["weight_decay"]),
                epochs=epochs,
                warmup_ratio=float(p["warmup_ratio"]),
                grad_accum=int(p["grad_accum"]),
                max_seconds=seconds_cap(p["max_seconds"]),
                schedule="linear",  # T7: stage-2 linear decay (protocols/ilm.md §1i.5)
            )
            self.ctx.say(f"ilm: stage {name}: {len(self._examples)} examples, {epochs} epoch(s)")
            result = train(
                params,
                batches,
                n_batches,
                lambda tb: self._loss(tb, slots),
                cfg,
                checkpoint_dir=ckpt,
                log=self.ctx.say,
                modules=list(modules.values()),
            )
            meta = {
                "stage": name,
                "examples": len(self._examples),
                "trainable": sum(x.numel() for x in params.values()),
                "seconds": round(time.perf_counter() - start, 2),
                **{k: v for k, v in result.as_dict().items() if k != "history"},
            }
            return {"params": {k: t.detach().cpu().clone() for k, t in params.items()}}, meta

        outcome = run_or_load(st, train_fn, load_fn)
        self.stage_log.append({"key": st.key, "cached": outcome.loaded, **outcome.meta})

    # --- evaluation -----------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, requests: GenerateRequests) -> list[str]:
        items = np.asarray(
            requests.items if requests.items is not None else np.zeros((len(requests.prompts), 0)),
            dtype=np.int64,
        )
        if items.ndim == 1:
            items = items[:, None]
        self.model.eval()
        beams = int(requests.num_beams)  # the task's decoding setting travels with the requests
        out: list[str] = []
        size = int(self.params["eval_batch_size"])
        for start in range(0, len(requests.prompts), size):
            sl = slice(start, start + size)
            enc, full = self.encode_prompts(list(requests.prompts[sl]), items[sl], self.mode)
            batch = collate(enc, np.arange(len(enc)), self.tok.pad_token_id or 0, self.bb.device)
            inputs = self._inputs(batch, torch.from_numpy(full).to(self.bb.device), self.mode == "slot")
            gen = self.head(
                self.model, inputs, batch, max_new_tokens=int(requests.max_new_tokens), num_beams=beams
            )
            out.extend(t.strip() for t in gen.best_texts)
        return out

    def record_info(self) -> dict[str, Any]:
        log: list[dict[str, Any]] = getattr(self, "stage_log", [])
        info: dict[str, Any] = {
            "train_examples": len(getattr(self, "_examples", [])),
            "stages": log,
            "stage_seconds": {s.get("stage", "?"): s.get("seconds") for s in log},
            "params_hash": stable_hash(self.params, length=12),
        }
        if time_capped(log):
            info["time_capped"] = True
        return info

    def trainable_parameters(self) -> int:
        return int(max((s.get("trainable", 0) for s in getattr(self, "stage_log", [])), default=0))


def _end_token(tokenizer: Any, model: Any) -> int:
    for tid in (
        getattr(tokenizer, "eos_token_id", None),
        getattr(model.config, "eos_token_id", None),
        getattr(tokenizer, "sep_token_id", None),
    ):
        if isinstance(tid, int):
            return tid
    raise ConfigError("method 'ilm': the backbone's tokenizer has no end-of-sequence token")
