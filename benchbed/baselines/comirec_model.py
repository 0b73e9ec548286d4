"""ComiRec-SA's parts (Cen et al., KDD 2020): the self-attentive multi-interest model, TF's log-uniform
candidate sampler and the history padding. The recommender that trains them:
:mod:`benchbed.baselines.comirec`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn


class LogUniformSampler:
    """TensorFlow's ``log_uniform_candidate_sampler(unique=True)`` over items ranked by training frequency.

    Class ``r`` (0 = the most frequent item) is drawn with ``P(r) = log((r + 2) / (r + 1)) / log(n + 1)``
    (TF ``LogUniformSampler``: ``floor(exp(u * log(n + 1))) - 1``); draws repeat until ``k`` distinct classes
    are in hand, and each class's expected count in those ``num_tries`` draws is
    ``1 - (1 - P)^num_tries`` (``P * k`` when no draw repeated), TF's ``ExpectedCountHelper``. The sampled
    softmax subtracts ``log`` of it from the logits (``subtract_log_q``). The authors' class 0 is their
    padding row (ids start at 1); here only items are classes."""

    def __init__(self, ranked_items: np.ndarray) -> None:
        self.items = np.asarray(ranked_items, dtype=np.int64)  # items[r] = the item of rank r
        self.n = len(self.items)
        self.rank = np.empty(self.n, dtype=np.int64)
        self.rank[self.items] = np.arange(self.n)
        self.log_range = math.log1p(self.n)

    @classmethod
    def by_frequency(cls, items: np.ndarray, n_items: int) -> LogUniformSampler:
        """Items ranked by how often they occur in ``items`` (most frequent first, ties by item id)."""
        counts = np.bincount(np.asarray(items, dtype=np.int64), minlength=n_items)
        return cls(np.argsort(-counts, kind="stable"))

    def probability(self, ranks: np.ndarray) -> np.ndarray:
        r = np.asarray(ranks, dtype=np.float64)
        return np.log((r + 2.0) / (r + 1.0)) / self.log_range

    def sample_ranks(self, k: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """``k`` distinct ranks in the order first drawn, and the number of draws it took."""
        if not 0 < k <= self.n:
            raise ValueError(f"LogUniformSampler: k={k} distinct classes of {self.n}")
        picked: list[np.ndarray] = []
        seen = np.zeros(self.n, dtype=bool)
        have = tries = 0
        while have < k:
            chunk = max(4 * (k - have), 256)
            draws = np.exp(rng.random(chunk) * self.log_range).astype(np.int64) - 1
            np.clip(draws, 0, self.n - 1, out=draws)
            values, first = np.unique(draws, return_index=True)
            fresh = ~seen[values]
            values, first = values[fresh], first[fresh]
            order = np.argsort(first, kind="stable")
            values, first = values[order][: k - have], first[order][: k - have]
            seen[values] = True
            picked.append(values)
            have += len(values)
            tries += int(first[-1]) + 1 if have == k else chunk
        return np.concatenate(picked), tries

    def expected_count(self, ranks: np.ndarray, k: int, tries: int) -> np.ndarray:
        p = self.probability(ranks)
        if tries == k:
            return p * k
        return -np.expm1(tries * np.log1p(-p))

    def sample(self, k: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """``k`` distinct items and the number of draws (for ``expected_count`` of any item's rank)."""
        ranks, tries = self.sample_ranks(k, rng)
        return self.items[ranks], tries


class ComiRecSA(nn.Module):
    """The network: item embeddings (row 0 = padding), positional embeddings, the two attention layers."""

    def __init__(self, n_items: int, dim: int, hidden: int, n_interests: int, max_len: int) -> None:
        super().__init__()
        self.item_emb = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.pos_emb = nn.Parameter(torch.empty(max_len, dim))
        self.w1 = nn.Linear(dim, 4 * hidden)
        self.w2 = nn.Linear(4 * hidden, n_interests)
        # TF's get_variable default: Glorot uniform for the embeddings (and dense kernels, biases zero)
        nn.init.xavier_uniform_(self.item_emb.weight[1:])
        nn.init.xavier_uniform_(self.pos_emb)
        for layer in (self.w1, self.w2):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def interests(self, hist: torch.Tensor) -> torch.Tensor:
        """(B, T) item ids + 1 (0 = padding) -> (B, K, d); an empty history gives zero vectors."""
        h = self.item_emb(hist)
        mask = hist > 0
        x = h + self.pos_emb[: hist.shape[1]].unsqueeze(0)
        a = self.w2(torch.tanh(self.w1(x)))  # (B, T, K)
        a = a.masked_fill(~mask.unsqueeze(-1), -(2.0**32) + 1)  # the authors' padding value
        a = torch.softmax(a, dim=1) * mask.unsqueeze(-1)  # rows without history: all weights 0
        return torch.einsum("btk,btd->bkd", a, h)

    def items(self) -> torch.Tensor:
        return self.item_emb.weight[1:]


def pad_histories(histories: Sequence[Any], max_len: int) -> np.ndarray:
    """The last ``max_len`` items of each history as ids + 1, oldest first, zero-padded on the right."""
    out = np.zeros((len(histories), max_len), dtype=np.int64)
    for r, h in enumerate(histories):
        tail = np.asarray(h, dtype=np.int64)[-max_len:] if len(h) else np.zeros(0, dtype=np.int64)
        out[r, : len(tail)] = tail + 1
    return out
