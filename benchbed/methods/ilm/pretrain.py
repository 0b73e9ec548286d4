"""ILM stage 1, item-language representation learning (ILM §3.2, App. H): data, batches, losses, the stage.

Item-text batches train three losses on the Q-Former (weights 1, protocols/ilm.md §1i.4):
- ITC (Eq. 2-3): in-batch InfoNCE item -> text; a pair's similarity is the cosine of the text's CLS output
  with the *closest* query output, over a learnable temperature (BLIP-2 computes every pair this way);
- ITM: binary cross-entropy on the text CLS output of a bidirectional pass, one hard negative text per item
  and one hard negative item per text sampled from the ITC similarities (BLIP-2; unverified for ILM);
- ITG: next-token loss of the text conditioned on the queries (multimodal causal mask).
Pair batches train the Eq. 4-5 contrastive loss: both sides through the same encoder and the same queries, the
closest pair of query outputs as the similarity. ``ii`` = two consecutive items of a training history,
de-duplicated (App. H); ``ui`` = a user's CF vector and one of their training items (§4.4 footnote).

Item-text and pair examples never share a batch (in-batch negatives would mix): the epoch alternates an
item-text batch with a pair batch (1:1, §1i.4), pair kinds taking turns; ``Stage1Batch.kind`` says which.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.llm.budget import seconds_cap
from benchbed.llm.stages import StageChain, StageRun, StageSpec, accumulation_identity, param_loader
from benchbed.llm.train import TrainConfig, epoch_rng, train
from benchbed.methods.ilm.encoder import ILMEncoder
from benchbed.methods.ilm.inputs import InputTables

PAIR_KINDS = ("ii", "ui")
PAIRS = ("none", "ii", "ui", "ii+ui")  # Table 16: ILM-IT, ILM-IT-II, ILM (IT + UI); both together
TEXT_LOSSES = ("itc", "itm", "itg")
STAGE1 = "ilm-stage1"


def parse_pairs(value: str) -> tuple[str, ...]:
    if value not in PAIRS:
        raise ConfigError(f"method 'ilm': stage1_pairs must be one of {', '.join(PAIRS)}, got {value!r}")
    return () if value == "none" else tuple(value.split("+"))


def parse_text_losses(value: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in str(value).split(",") if v.strip())
    bad = [n for n in names if n not in TEXT_LOSSES]
    if bad or not names:
        raise ConfigError(
            f"method 'ilm': stage1_text_losses {value!r}; expected a comma list of {', '.join(TEXT_LOSSES)}"
        )
    return names


# --- data ---------------------------------------------------------------------------------------------------
def consecutive_item_pairs(split: Split) -> np.ndarray:
    """(P, 2) unordered pairs of consecutive items in the users' training histories, de-duplicated (App. H);
    repeats of one item (a, a) are dropped."""
    rows = []
    for seq in split.train_sequences().values():
        if len(seq) > 1:
            rows.append(np.stack([seq[:-1], seq[1:]], axis=1))
    if not rows:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.sort(np.concatenate(rows).astype(np.int64), axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(pairs, axis=0)


def user_item_pairs(split: Split) -> np.ndarray:
    """(P, 2) distinct (user, item) training interactions (§4.4: "the training set of the user sequences")."""
    pairs = split.train[["user", "item"]].to_numpy(dtype=np.int64)
    return np.unique(pairs, axis=0)


@dataclass
class TextPairs:
    """Stage-1 item-text data: item ``items[r]`` paired with the token ids ``ids[r]``."""

    items: np.ndarray
    ids: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.items)


def tokenize_texts(tokenizer: Any, items: np.ndarray, texts: list[str], max_len: int) -> TextPairs:
    ids = tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=max_len)["input_ids"]
    keep = [r for r, x in enumerate(ids) if len(x)]
    return TextPairs(
        np.asarray(items, dtype=np.int64)[keep], [np.asarray(ids[r], dtype=np.int64) for r in keep]
    )


@dataclass
class Stage1Batch:
    """One batch of one kind: ``it`` (items + texts), ``ii`` (item, item) or ``ui`` (user, item)."""

    kind: str
    left: torch.Tensor  # item ids (it, ii) or user ids (ui)
    right: torch.Tensor | None = None  # item ids of the pair's second element
    ids: torch.Tensor | None = None  # (B, L) right-padded text ids (it)
    mask: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.left.shape[0])

    @property
    def n_tokens(self) -> int:
        return int(self.mask.sum()) if self.mask is not None else 0


def _text_batch(data: TextPairs, idx: np.ndarray, device: str) -> Stage1Batch:
    width = max(len(data.ids[r]) for r in idx)
    ids = np.zeros((len(idx), width), dtype=np.int64)
    mask = np.zeros((len(idx), width), dtype=bool)
    for b, r in enumerate(idx):
        n = len(data.ids[r])
        ids[b, :n] = data.ids[r]
        mask[b, :n] = True
    return Stage1Batch(
        kind="it",
        left=torch.from_numpy(data.items[idx]).to(device),
        ids=torch.from_numpy(ids).to(device),
        mask=torch.from_numpy(mask).to(device),
    )


@dataclass
class Schedule:
    """The stage-1 epoch: item-text batches alternated 1:1 with pair batches (pair kinds taking turns).

    Every text pair is seen once per epoch; each epoch draws its pair batches from a seeded permutation of
    every pair kind, continuing where the previous epoch stopped, so all pairs are covered over the epochs.
    With no text (or no pairs) the epoch has only the other kind."""

    text: TextPairs
    pairs: dict[str, np.ndarray]
    batch_size: int
    pair_ratio: int
    seed: int
    device: str

    def __post_init__(self) -> None:
        self.n_text = -(-len(self.text) // self.batch_size) if len(self.text) else 0
        kinds = [k for k in PAIR_KINDS if k in self.pairs and len(self.pairs[k])]
        self.kinds = kinds
        if self.n_text:
            self.n_pair = self.n_text * self.pair_ratio if kinds else 0
        else:
            self.n_pair = max(-(-len(self.pairs[k]) // self.batch_size) for k in kinds) if kinds else 0
        if not self.n_text and not self.n_pair:
            raise ConfigError(
                "method 'ilm': stage 1 has neither item-text pairs nor item/user pairs to train on"
            )

    def __len__(self) -> int:
        return self.n_text + self.n_pair

    def plan(self, epoch: int) -> list[tuple[str, np.ndarray]]:
        """(kind, row indices) per batch of ``epoch``: deterministic, no global RNG."""
        rng = epoch_rng(self.seed, epoch)
        text_batches: list[np.ndarray] = []
        if self.n_text:
            perm = rng.permutation(len(self.text))
            text_batches = [perm[i : i + self.batch_size] for i in range(0, len(perm), self.batch_size)]
        order = [self.kinds[b % len(self.kinds)] for b in range(self.n_pair)] if self.kinds else []
        queues = {k: iter(self._pair_batches(k, epoch, order.count(k))) for k in self.kinds}
        ordered_pairs = [(k, next(queues[k])) for k in order]  # kinds take turns
        out: list[tuple[str, np.ndarray]] = []
        t = p = 0
        while t < len(text_batches) or p < len(ordered_pairs):
            if t < len(text_batches):
                out.append(("it", text_batches[t]))
                t += 1
            for _ in range(self.pair_ratio if text_batches else 1):
                if p < len(ordered_pairs):
                    out.append(ordered_pairs[p])
                    p += 1
        return out

    def _pair_batches(self, kind: str, epoch: int, count: int) -> list[np.ndarray]:
        """``count`` batches of ``kind``: the epoch's stretch of an endless stream of seeded permutations."""
        n, need = len(self.pairs[kind]), count * self.batch_size
        if not need:
            return []
        start = epoch * need
        first, last = start // n, (start + need - 1) // n
        salt = PAIR_KINDS.index(kind)
        stream = np.concatenate(
            [np.random.default_rng([self.seed, 11, salt, r]).permutation(n) for r in range(first, last + 1)]
        )
        flat = stream[start - first * n : start - first * n + need]
        return [flat[i : i + self.batch_size] for i in range(0, need, self.batch_size)]

    def batches(self, epoch: int, skip: int = 0) -> Iterator[Stage1Batch]:
        for kind, idx in self.plan(epoch)[skip:]:
            if kind == "it":
                yield _text_batch(self.text, idx, self.device)
            else:
                rows = torch.from_numpy(self.pairs[kind][idx]).to(self.device)
                yield Stage1Batch(kind=kind, left=rows[:, 0], right=rows[:, 1])


# --- losses -------------------------------------------------------------------------------------------------
def _info_nce(sim: torch.Tensor, same: torch.Tensor | None, symmetric: bool) -> torch.Tensor:
    """Eq. 3/5: row j's positive is column j; ``same`` (B, B) marks other columns that are the same object
    (never a negative)."""
    if same is not None:
        off = same & ~torch.eye(len(sim), dtype=torch.bool, device=sim.device)
        sim = sim.masked_fill(off, float("-inf"))
    target = torch.arange(len(sim), device=sim.device)
    loss = F.cross_entropy(sim, target)
    if symmetric:
        loss = (loss + F.cross_entropy(sim.T, target)) / 2
    return loss


def closest_query_sim(q: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(B, N, W) query features x (B, W) text features -> (B, B) max over queries of the cosine (Eq. 2)."""
    return torch.einsum("jnw,kw->jkn", q, t).amax(dim=-1)


def closest_pair_sim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, N, W) x (B, N, W) -> (B, B) max over query pairs of the cosine (Eqs. 4-5)."""
    return torch.einsum("jnw,kmw->jknm", a, b).flatten(2).amax(dim=-1)


@dataclass
class Stage1Loss:
    encoder: ILMEncoder
    tables: InputTables
    text_losses: tuple[str, ...]
    symmetric: bool = False

    def __call__(self, batch: Stage1Batch) -> torch.Tensor:
        if batch.kind == "it":
            return self.item_text(batch)
        return self.pair(batch)

    def item_text(self, batch: Stage1Batch) -> torch.Tensor:
        assert batch.ids is not None and batch.mask is not None
        enc = self.encoder
        e = self.tables.item[batch.left]
        same = batch.left[:, None] == batch.left[None, :]
        total = e.new_zeros(())
        sim = None
        if "itc" in self.text_losses or "itm" in self.text_losses:
            q = enc.query_features(e)
            t = enc.text_cls(batch.ids, batch.mask)
            sim = closest_query_sim(q, t) / enc.temperature()
        if "itc" in self.text_losses:
            assert sim is not None
            total = total + _info_nce(sim, same, self.symmetric)
        if "itm" in self.text_losses and len(batch) > 1:
            assert sim is not None
            total = total + self._matching(e, batch, sim.detach(), same)
        if "itg" in self.text_losses:
            total = total + enc.generation_loss(e, batch.ids, batch.mask)
        return total

    def _matching(
        self, e: torch.Tensor, batch: Stage1Batch, sim: torch.Tensor, same: torch.Tensor
    ) -> torch.Tensor:
        """BLIP-2 hard negatives: per item a text, per text an item, drawn by softmax(ITC similarity)."""
        assert batch.ids is not None and batch.mask is not None

        def draw(scores: torch.Tensor) -> torch.Tensor:
            weights = scores.float().softmax(dim=1).masked_fill(same, 0.0) + 1e-9 * (~same).float()
            # a row whose every other column is the same item has no negative: draw uniformly there
            weights = torch.where((~same).any(dim=1, keepdim=True), weights, torch.ones_like(weights))
            return torch.multinomial(weights, 1).squeeze(1)

        neg_text, neg_item = draw(sim), draw(sim.T)
        ids = torch.cat([batch.ids, batch.ids[neg_text], batch.ids])
        mask = torch.cat([batch.mask, batch.mask[neg_text], batch.mask])
        items = torch.cat([e, e, e[neg_item]])
        labels = torch.cat([e.new_ones(len(batch)), e.new_zeros(2 * len(batch))])
        logits = self.encoder.match_logit(items, ids, mask)
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float())

    def pair(self, batch: Stage1Batch) -> torch.Tensor:
        assert batch.right is not None
        enc = self.encoder
        left = self.tables.user[batch.left] if batch.kind == "ui" else self.tables.item[batch.left]
        a = enc.query_features(left)
        b = enc.query_features(self.tables.item[batch.right])
        sim = closest_pair_sim(a, b) / enc.temperature()
        same = (batch.right[:, None] == batch.right[None, :]) | (batch.left[:, None] == batch.left[None, :])
        return _info_nce(sim, same, self.symmetric)


@torch.no_grad()
def generation_loss(
    encoder: ILMEncoder, tables: InputTables, data: TextPairs, device: str, bs: int = 64
) -> float:
    """Mean ITG loss over ``data`` (ILM Table 5 reports it on train and held-out texts)."""
    if not len(data):
        return float("nan")
    encoder.eval()
    losses, weights = [], []
    for start in range(0, len(data), bs):
        idx = np.arange(start, min(start + bs, len(data)))
        batch = _text_batch(data, idx, device)
        assert batch.ids is not None and batch.mask is not None
        losses.append(float(encoder.generation_loss(tables.item[batch.left], batch.ids, batch.mask)))
        weights.append(float(batch.mask.sum()))
    return float(np.average(losses, weights=weights))


# --- the stage ----------------------------------------------------------------------------------------------
@dataclass
class Stage1Settings:
    epochs: int
    lr: float
    batch_size: int
    pair_ratio: int
    pairs: tuple[str, ...]
    text_losses: tuple[str, ...]
    symmetric: bool
    weight_decay: float
    warmup_ratio: float
    max_seconds: float | None
    max_pairs: int | None  # cap per pair kind (seeded sample); None = all
    grad_accum: int = 1

    def identity(self) -> dict[str, Any]:
        out = {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items() if k != "grad_accum"
        }
        return {**out, **accumulation_identity(self.grad_accum)}

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            lr=self.lr,
            weight_decay=self.weight_decay,
            epochs=self.epochs,
            warmup_ratio=self.warmup_ratio,
            schedule="cosine",  # T7/T8: stage-1 cosine decay
            grad_accum=self.grad_accum,
            max_seconds=seconds_cap(self.max_seconds),
        )


def sample_pairs(pairs: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    if cap is None or len(pairs) <= cap:
        return pairs
    keep = np.sort(np.random.default_rng([seed, 3]).choice(len(pairs), cap, replace=False))
    return pairs[keep]


def run_stage1(
    encoder: ILMEncoder,
    tables: InputTables,
    text: TextPairs,
    pairs: dict[str, np.ndarray],
    settings: Stage1Settings,
    *,
    chain: StageChain,
    reads: dict[str, Any],
    seed: int,
    device: str,
    log: Callable[[str], None] | None = None,
    held_out: TextPairs | None = None,
) -> StageRun:
    """Train (or load) stage 1 in ``chain``, resumable mid-stage. Its identity: the chain's context (which
    carries the seed), ``reads`` (the encoder, its inputs and texts) and the settings."""
    params = {f"encoder.{n}": p for n, p in encoder.named_parameters() if p.requires_grad}
    schedule = Schedule(text, pairs, settings.batch_size, settings.pair_ratio, seed, device)
    loss = Stage1Loss(encoder, tables, settings.text_losses, settings.symmetric)
    spec = StageSpec(STAGE1, {**reads, "settings": settings.identity()})

    def train_fn(ckpt: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        start = time.perf_counter()
        result = train(
            params,
            schedule.batches,
            len(schedule),
            loss,
            settings.train_config(),
            checkpoint_dir=ckpt,
            log=log,
            modules=[encoder],
        )
        meta = {
            "stage": STAGE1,
            "text_pairs": len(text),
            "pairs": {k: int(len(v)) for k, v in pairs.items()},
            "batches_per_epoch": {"it": schedule.n_text, "pairs": schedule.n_pair},
            "trainable": sum(p.numel() for p in params.values()),
            "seconds": round(time.perf_counter() - start, 2),
            "itg_train": round(generation_loss(encoder, tables, text, device), 4),
            **{k: v for k, v in result.as_dict().items() if k != "history"},
        }
        if held_out is not None:
            meta["itg_eval"] = round(generation_loss(encoder, tables, held_out, device), 4)
        return {"params": {n: p.detach().cpu().clone() for n, p in params.items()}}, meta

    run = chain.run(spec, train_fn, param_loader(params, chain.stage(spec)))
    encoder.eval()
    return run
