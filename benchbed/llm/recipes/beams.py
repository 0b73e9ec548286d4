"""What the generative recipe does with constrained beams after the head ran: dropping excluded items from
wider beams, and summing the head's counters over decoding chunks into the shares a record reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def drop_excluded(
    items: np.ndarray, scores: np.ndarray, exclude: Sequence[np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` generated ids per row that are valid (>= 0) and not in that row's ``exclude``; -1 and
    -inf fill a row that keeps fewer."""
    keep_items = np.full((len(items), k), -1, dtype=np.int64)
    keep_scores = np.full((len(items), k), -np.inf)
    for r, ex in enumerate(exclude):
        ok = ~np.isin(items[r], ex) & (items[r] >= 0)
        sel = np.flatnonzero(ok)[:k]
        keep_items[r, : len(sel)] = items[r, sel]
        keep_scores[r, : len(sel)] = scores[r, sel]
    return keep_items, keep_scores


def add_beam_counts(total: dict[str, float], chunk: Mapping[str, float]) -> None:
    """Add one decoding chunk's counters to ``total`` (shares are recomputed from the sums at the end)."""
    for name, value in chunk.items():
        if not name.endswith("_share"):
            total[name] = total.get(name, 0.0) + value


def with_beam_shares(stats: dict[str, float]) -> dict[str, float]:
    """``stats`` with the shares of constrained beams and overridden decoding steps over all chunks."""
    if stats.get("valid_beams"):
        stats["constrained_beam_share"] = stats.get("constrained_beams", 0.0) / stats["valid_beams"]
    if stats.get("decisions"):
        stats["constrained_step_share"] = stats.get("overrides", 0.0) / stats["decisions"]
    return stats
