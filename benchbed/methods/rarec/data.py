"""RA-Rec's tuning data: (user, history, target) samples from the training sequences, and how a few are kept.

RA-Rec §3.4 trains the alignment module on a small "efficient" set (200K/300K samples, <10% of the data):

- **denoising**: a sample whose target title shares no word with the user's history titles is dropped. The
  tokenisation is not given; as shared/protocols/rarec.md §3d recommends: lowercase alphanumeric words
  minus a small English stop-word list, so that "the" or "of" alone is no overlap;
- **diversity**: samples are bucketed by the user's sequence length (user diversity) and the target item's
  popularity (item diversity) and drawn evenly from the buckets. Bucket counts are not given: deciles x
  deciles (100 cells) with equal quotas, the quota of cells too small for it shared among the others
  (rarec.md §3d).

``random`` draws the same number of samples uniformly from all candidates (Table 5's "Random"); ``all``
keeps every candidate (Table 5's "All").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchbed.errors import ConfigError

SELECTIONS = ("efficient", "random", "all")
STOP_WORDS = frozenset(
    "a an the and or of for to in on at by with from as is are be this that it its into over under "
    "vs de la le el der die das".split()
)
_WORD = re.compile(r"[a-z0-9]+")


def title_words(title: str) -> frozenset[str]:
    """Lowercase alphanumeric words of a title, stop words removed (the unit of the word-overlap test)."""
    return frozenset(w for w in _WORD.findall(title.lower()) if w not in STOP_WORDS)


@dataclass
class Samples:
    """Candidate samples: user, target item, position of the target in the user's training sequence (the
    history is the ``history_len`` items before it) and the user's training sequence length."""

    users: np.ndarray
    targets: np.ndarray
    positions: np.ndarray
    seq_len: np.ndarray

    def __len__(self) -> int:
        return len(self.users)

    def take(self, idx: np.ndarray) -> Samples:
        return Samples(self.users[idx], self.targets[idx], self.positions[idx], self.seq_len[idx])


def candidates(seqs: dict[int, np.ndarray]) -> Samples:
    """Every (user, k >= 1) of the training sequences: target ``seq[k]`` after a non-empty history."""
    users, targets, positions, lens = [], [], [], []
    for u, s in seqs.items():
        n = len(s)
        if n < 2:
            continue
        users.append(np.full(n - 1, u, dtype=np.int64))
        targets.append(np.asarray(s[1:], dtype=np.int64))
        positions.append(np.arange(1, n, dtype=np.int64))
        lens.append(np.full(n - 1, n, dtype=np.int64))
    if not users:
        empty = np.zeros(0, dtype=np.int64)
        return Samples(empty, empty, empty, empty)
    return Samples(*(np.concatenate(x) for x in (users, targets, positions, lens)))


def overlap_mask(
    samples: Samples, seqs: dict[int, np.ndarray], words: list[frozenset[str]], history_len: int
) -> np.ndarray:
    """True where the target's title shares a word with a title of the (last ``history_len``) history."""
    keep = np.zeros(len(samples), dtype=bool)
    for r in range(len(samples)):
        s = seqs[int(samples.users[r])]
        k = int(samples.positions[r])
        target = words[int(samples.targets[r])]
        if not target:
            continue
        for item in s[max(0, k - history_len) : k]:
            if target & words[int(item)]:
                keep[r] = True
                break
    return keep


def decile(values: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Bin index 0..n_bins-1 by rank (ties share the bin of their first rank), so skewed counts still fill
    every bin they can."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    # each value's rank = the rank of the first equal value, so equal values share a bin
    first = np.searchsorted(np.sort(values, kind="stable"), values, side="left")
    return np.minimum(first * n_bins // len(values), n_bins - 1).astype(np.int64)


def quotas(sizes: np.ndarray, total: int) -> np.ndarray:
    """Equal shares of ``total`` over the cells; a cell smaller than its share gives all it has and the rest
    is shared among the larger cells (water filling). Requires ``sizes.sum() >= total``."""
    take = np.zeros(len(sizes), dtype=np.int64)
    order = np.argsort(sizes, kind="stable")
    remaining = int(total)
    for i, cell in enumerate(order):
        left = len(order) - i
        share = -(-remaining // left)  # ceil: rounding leftovers go to the larger cells first
        take[cell] = min(int(sizes[cell]), share)
        remaining -= int(take[cell])
    return take


def bucket_sample(
    samples: Samples, popularity: np.ndarray, size: int, rng: np.random.Generator, n_bins: int = 10
) -> tuple[np.ndarray, int]:
    """Indices of ``size`` samples drawn evenly from (sequence-length decile x popularity decile) cells."""
    cell = decile(samples.seq_len.astype(np.float64), n_bins) * n_bins + decile(
        popularity[samples.targets].astype(np.float64), n_bins
    )
    cells, inverse = np.unique(cell, return_inverse=True)
    members = [np.flatnonzero(inverse == j) for j in range(len(cells))]
    take = quotas(np.array([len(m) for m in members]), size)
    chosen = [rng.choice(m, size=int(t), replace=False) for m, t in zip(members, take, strict=True) if t]
    idx = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
    return idx, len(cells)


def select(
    mode: str,
    samples: Samples,
    *,
    size: int | None,
    seqs: dict[int, np.ndarray],
    words: list[frozenset[str]],
    popularity: np.ndarray,
    history_len: int,
    seed: int,
    size_option: str = "train_samples",
) -> tuple[Samples, dict[str, Any]]:
    """The tuning set under ``mode`` and what the record says about it (how many, kept how).

    ``size`` None keeps as many as the mode allows (``auto`` budgets pass their cap clamped to that);
    an explicit size larger than what the mode can give is a one-line error naming ``size_option``."""
    if mode not in SELECTIONS:
        raise ConfigError(f"method 'rarec': selection {mode!r}; expected one of {', '.join(SELECTIONS)}")
    rng = np.random.default_rng([int(seed), 0x5A4EC])
    info: dict[str, Any] = {"selection": mode, "candidates": len(samples)}
    if mode == "all":
        info["kept"] = len(samples)
        return samples, info
    pool = samples
    if mode == "efficient":
        keep = overlap_mask(samples, seqs, words, history_len)
        pool = samples.take(np.flatnonzero(keep))
        info["after_denoising"] = len(pool)
    n = len(pool) if size is None else int(size)
    if n > len(pool):
        what = "samples left after word-overlap denoising" if mode == "efficient" else "candidate samples"
        raise ConfigError(
            f"method 'rarec': {size_option}={n} is larger than the {len(pool)} {what} of this split; "
            f"expected at most {len(pool)}"
        )
    if mode == "random":
        idx = np.sort(rng.choice(len(pool), size=n, replace=False))
    else:
        idx, n_cells = bucket_sample(pool, popularity, n, rng)
        info["buckets"] = n_cells
    info["kept"] = len(idx)
    return pool.take(idx), info
