"""CLLM4Rec's training batches per epoch: L-step and C-step documents, masked recommendation prompts.

Every draw comes from a ``np.random.Generator`` seeded with (run seed, stage code, epoch), never from the
global RNGs, so a resumed stage replays the same batches and a stage that loads leaves later draws alone.
Stage codes: 0 warm-up, 1 pretraining, 2 fine-tuning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from benchbed.methods.cllm4rec.docs import Corpus

BUCKET_WINDOW = 16  # batches per length-sorting window


def bucketed(order: np.ndarray, lengths: list[int], bs: int, rng: np.random.Generator) -> list[np.ndarray]:
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


@dataclass(frozen=True)
class Batches:
    """The batch builder of one fit: its corpus, batch size and run seed."""

    corpus: Corpus
    batch_size: int
    order_seed: int

    def documents(
        self,
        epoch: int,
        stage_code: int,
        collab: list[np.ndarray] | None,
        docs: dict[str, Any] | None,
        *,
        reorder: bool,
    ) -> list[Any]:
        """L-step batches (every user with items) then C-step batches, in a per-epoch seeded order."""
        rng = np.random.default_rng([self.order_seed, stage_code, epoch])
        bs = self.batch_size
        out: list[Any] = []
        if collab is not None:
            users = rng.permutation([u for u, it in enumerate(collab) if len(it)])
            for chunk in bucketed(users, [len(collab[u]) for u in users], bs, rng):
                items = [rng.permutation(collab[u]) if reorder else collab[u] for u in chunk]
                out.append(self.corpus.collab_batch(chunk, items))
        if docs is not None:
            out += self.content(rng, docs)
        return out

    def content(self, rng: np.random.Generator, docs: dict[str, Any]) -> list[Any]:
        """C-step batches of the content documents in a fresh order drawn from ``rng``."""
        bs = self.batch_size
        order = rng.permutation(len(docs["users"]))
        return [
            self.corpus.content_batch(docs["users"][idx], docs["items"][idx], [docs["texts"][i] for i in idx])
            for idx in (order[s : s + bs] for s in range(0, len(order), bs))
        ]

    def recommendations(
        self,
        epoch: int,
        train_items: list[np.ndarray],
        docs: dict[str, Any] | None,
        *,
        mask_ratio: float,
        reorder: bool,
        all_targets: bool,
    ) -> list[Any]:
        """Masked recommendation prompts (a fresh mask each epoch), then C-step batches. ``all_targets``:
        the multinomial target is every training item (the code), else the masked ones (paper §3.4.2)."""
        rng = np.random.default_rng([self.order_seed, 2, epoch])
        bs = self.batch_size
        users = rng.permutation([u for u, it in enumerate(train_items) if len(it)])
        out: list[Any] = []
        for chunk in bucketed(users, [len(train_items[u]) for u in users], bs, rng):
            prompts, targets = [], []
            for u in chunk:
                items = train_items[u]
                n_mask = max(1, int(mask_ratio * len(items)))  # the code: max(1, int(0.2 n))
                masked = np.zeros(len(items), dtype=bool)
                masked[rng.choice(len(items), size=n_mask, replace=False)] = True
                kept = items[~masked]
                prompts.append(rng.permutation(kept) if reorder else kept)
                targets.append(items if all_targets else items[masked])
            out.append(self.corpus.rec_batch(chunk, prompts, targets))
        if docs is not None:
            out += self.content(rng, docs)
        return out
