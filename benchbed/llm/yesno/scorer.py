"""A Yes/No CTR scorer over a backbone: (user, item, history) rows -> prompt -> answer-position logit.

Shared by ``icl`` (frozen), ``tallrec`` (LoRA on text prompts) and ``collm`` (plus vectors at slots). It owns
prompt rendering from a bank view, batched tokenization, length-bucketed scoring, and the training-batch
iterator; methods own what is trainable and what goes into the slots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from benchbed.errors import ConfigError
from benchbed.llm.backbone.loader import Backbone
from benchbed.llm.injectors.prompts import Batch, EncodedPrompts, bucket_batches, collate, encode
from benchbed.llm.injectors.slots import SlotVectors
from benchbed.llm.yesno.fast_scoring import VectorFn, YesNoCall, score_yesno_rows
from benchbed.llm.yesno.head import YesNoHead, answer_token_ids
from benchbed.llm.yesno.masked_head import MaskedYesNoHead, append_mask, mask_suffix
from benchbed.llm.yesno.prefix_reuse import plan_prefixes, score_yesno_planned
from benchbed.prompts import Piece, PromptBank

SCORE_BATCHING = ("rows", "tokens", "prefix")


@dataclass
class Rows:
    """The CTR rows a scorer works on (from a split frame or from ScoreRequests)."""

    users: np.ndarray
    items: np.ndarray
    histories: list[list[int]]
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.users)

    def take(self, idx: np.ndarray) -> Rows:
        return Rows(
            users=self.users[idx],
            items=self.items[idx],
            histories=[self.histories[i] for i in idx],
            labels=None if self.labels is None else self.labels[idx],
        )


def rows_from_frame(frame, history_len: int) -> Rows:
    hist = frame["history"].tolist() if "history" in frame.columns else [[] for _ in range(len(frame))]
    return Rows(
        users=frame["user"].to_numpy(np.int64),
        items=frame["item"].to_numpy(np.int64),
        histories=[list(h)[-history_len:] if history_len > 0 else [] for h in hist],
        labels=frame["label"].to_numpy(np.float32) if "label" in frame.columns else None,
    )


class YesNoScorer:
    def __init__(
        self,
        backbone: Backbone,
        bank: PromptBank,
        *,
        titles: Sequence[str],
        domain: str,
        history_len: int = 10,
        max_title_chars: int = 100,
        max_length: int = 512,
        batch_size: int = 16,
        score_mode: str = "yes",
        batching: str = "rows",
        shared_slots: tuple[str, ...] = (),
    ) -> None:
        if batching not in SCORE_BATCHING:
            raise ConfigError(f"score_batching={batching!r}: expected one of {', '.join(SCORE_BATCHING)}")
        self.batching = batching
        self.shared_slots = shared_slots
        self.backbone = backbone
        self.bank = bank
        self.titles = [_clip(t, max_title_chars) for t in titles]
        self.domain_values = bank.domain_values(domain)
        self.history_len = history_len
        self.max_length = max_length
        self.batch_size = batch_size
        self.score_mode = score_mode
        answer = bank.extra.get("answer", {}) or {}
        self.answer_ids = answer_token_ids(
            backbone.tokenizer,
            answer.get("positive", "Yes"),
            answer.get("negative", "No"),
            backbone=backbone.name,
        )
        # encoders read the answer at a [MASK] appended to every prompt (yesno.masked_head)
        self.mask_suffix: list[int] = (
            [] if backbone.is_decoder else mask_suffix(backbone.tokenizer, backbone.name)
        )
        if self.mask_suffix and batching != "rows":
            raise ConfigError(
                f"score_batching={batching!r} is for decoders (prefix reuse, token-budget batches); "
                f"backbone {backbone.name!r} is an encoder (every position sees the whole prompt): use "
                f"score_batching=rows"
            )
        self.head: YesNoHead | MaskedYesNoHead = (
            MaskedYesNoHead(self.answer_ids, score_mode, offset=len(self.mask_suffix) - 1)
            if self.mask_suffix
            else YesNoHead(self.answer_ids, score_mode)
        )
        self.injector = SlotVectors()  # text-only prompts have no slots: the plain embeddings
        self.empty_history = str(bank.extra.get("empty_history", ""))
        self.pad_id = int(backbone.tokenizer.pad_token_id)

    # --- prompts --------------------------------------------------------------------------------------------
    def history_text(self, history: Sequence[int]) -> str:
        hist = list(history)[-self.history_len :] if self.history_len > 0 else []
        if not hist:
            return self.empty_history
        return ", ".join(f'"{self.titles[i]}"' for i in hist)

    def prompts(self, rows: Rows, which: str | int | np.ndarray, view: str) -> list[list[Piece]]:
        out = []
        for r in range(len(rows)):
            w = which if isinstance(which, (str, int)) else int(which[r])
            values = {
                **self.domain_values,
                "history": self.history_text(rows.histories[r]),
                "target": f'"{self.titles[int(rows.items[r])]}"',
            }
            out.append(self.bank.render(w, view, values))
        return out

    def encode(self, rows: Rows, which: str | int | np.ndarray, view: str) -> EncodedPrompts:
        slots = tuple(s for s in self.bank.slots)
        if self.mask_suffix:  # max_length holds the [MASK] [SEP] an encoder prompt ends with
            enc = encode(
                self.backbone.tokenizer,
                self.prompts(rows, which, view),
                slots,
                max_length=self.max_length - len(self.mask_suffix),
            )
            return append_mask(enc, self.mask_suffix)
        return encode(
            self.backbone.tokenizer, self.prompts(rows, which, view), slots, max_length=self.max_length
        )

    # --- forward --------------------------------------------------------------------------------------------
    def batch(self, enc: EncodedPrompts, idx: np.ndarray) -> Batch:
        return collate(enc, idx, self.pad_id, self.backbone.device)

    def forward(self, model, batch: Batch, vectors: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
        """Scores (B,) with gradients where the caller enabled them: the injector builds the inputs, the
        Yes/No head reads the answer position."""
        inputs = self.injector.inputs(model, batch, vectors=vectors)
        return self.head.scores(model, inputs, batch)

    @torch.no_grad()
    def score(
        self,
        model,
        enc: EncodedPrompts,
        vector_fn: VectorFn | None = None,
        batch_size: int | None = None,
        keys: list[tuple[int, tuple[int, ...]]] | None = None,
    ) -> np.ndarray:
        """Scores of every encoded row, returned in row order.

        ``rows`` (default): fixed-size batches of length-sorted rows, as the committed records were scored.
        ``tokens``: batches cut to a token budget (``fast_scoring.token_budget_batches``). ``prefix``: rows
        with the same ``keys`` (user, history) share their prompt up to the target, encoded once
        (``prefix_reuse.score_yesno_planned``). Both are faster on CPU and differ from ``rows`` by ~1e-7
        (batch shape).
        """
        call = YesNoCall(self.answer_ids, self.pad_id, vector_fn, self.score_mode, self.backbone.device)
        if self.batching == "prefix" and keys is not None:
            plan = plan_prefixes(enc, keys, shared_slots=self.shared_slots)
            return score_yesno_planned(model, enc, plan, call)
        if self.batching in ("tokens", "prefix"):
            return score_yesno_rows(model, enc, call)
        out = np.empty(len(enc), dtype=np.float64)
        for idx in bucket_batches(enc.lengths, batch_size or self.batch_size * 4):
            b = self.batch(enc, idx)
            vec = vector_fn(b) if vector_fn is not None else None
            out[idx] = self.forward(model, b, vec).double().cpu().numpy()
        return out

    def train_batches(self, enc: EncodedPrompts, seed: int, epoch: int) -> list[np.ndarray]:
        from benchbed.llm.train import epoch_rng

        return bucket_batches(enc.lengths, self.batch_size, rng=epoch_rng(seed, epoch))


def _clip(title: str, n: int) -> str:
    title = " ".join(str(title).split())
    return title if len(title) <= n else title[: n - 3].rstrip() + "..."
