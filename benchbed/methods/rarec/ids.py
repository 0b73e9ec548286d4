"""RA-Rec's ID vectors: the frozen ID model's exported user and item rows, as the alignment module reads them.

The embedding cache holds arrays, not the ID model: a user's row is the ID model's export (for ComiRec the
interest vector of the user's training history), or with ``user_ids=history`` the mean of the item rows of the
last 20 items before the prediction point (ComiRec's maxlen). Options that are not the paper's (``id_norm``,
``cold_ids``, ``permute_ids``) are documented at ``RARecParams`` (``rarec.params``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from benchbed.api import RunContext
from benchbed.data.schema import Split
from benchbed.errors import ConfigError

if TYPE_CHECKING:
    from benchbed.methods.rarec.params import RARecParams

ID_HISTORY = 20  # ComiRec's maxlen (authors' src/train.py): the window of the "history" user vector


def standardize(x: np.ndarray) -> np.ndarray:
    """Per column zero mean, unit variance (columns without variance are only centred)."""
    centred = x - x.mean(axis=0, keepdims=True)
    std = centred.std(axis=0, keepdims=True)
    return (centred / np.where(std > 0, std, 1.0)).astype(np.float32)


def id_vectors(
    split: Split, ctx: RunContext, p: RARecParams, method: str
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(users x d, items x d) float32 rows of the ID model ``p.id_model`` (trained through the run's
    embedding source when not cached), after ``id_norm``, ``permute_ids`` and ``cold_ids``; and what the
    record says about them."""
    emb = ctx.embedding_source(method).get(
        split, p.id_model, params=p.id_params, seed=ctx.seed, feedback="interactions"
    )
    user, item = np.asarray(emb.user, np.float32), np.asarray(emb.item, np.float32)
    if user.shape[0] != split.n_users or item.shape[0] != split.n_items or user.shape[1] != item.shape[1]:
        raise ConfigError(
            f"method 'rarec': ID model {p.id_model!r} exported {user.shape} users / {item.shape} "
            f"items; expected ({split.n_users}, d) / ({split.n_items}, d)"
        )
    if p.id_norm == "standardize":
        user, item = standardize(user), standardize(item)
    if p.permute_ids:
        rng = np.random.default_rng([ctx.seed, 0x9E57])
        user, item = user[rng.permutation(len(user))], item[rng.permutation(len(item))]
    untrained = np.bincount(split.train["item"].to_numpy(), minlength=split.n_items) == 0
    if p.cold_ids == "zero":
        item = item.copy()
        item[untrained] = 0.0  # no ID representation: its prefix is b^l alone, the title decides
    info = {
        "model": p.id_model,
        "params": emb.manifest.get("params"),
        "params_hash": emb.manifest.get("params_hash"),
        "artifact": str(emb.path) if emb.path else None,
        "cache_hit": emb.cache_hit,
        "dim": int(user.shape[1]),
        "permuted": p.permute_ids,
        "items_without_training": int(untrained.sum()),
        "cold_ids": p.cold_ids,
    }
    return user, item, info
