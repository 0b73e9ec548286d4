"""Collaborative nearest neighbours by co-occurrence in the training interactions (ELM's *NN tasks).

``C = X^T X`` for the binary user x item matrix of ``split.train`` (the diagonal dropped): the neighbour of
item i is the item most users interacted with together with i, among a candidate pool; ties go to the lower
id; -1 when i co-occurs with no candidate. Only train interactions are read, so no test interaction leaks.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from benchbed.data.schema import Split


def cooccurrence(split: Split) -> sp.csr_matrix:
    """(n_items, n_items) co-occurrence counts of ``split.train`` (each user counted once per pair)."""
    tr = split.train[["user", "item"]].drop_duplicates()
    x = sp.csr_matrix(
        (np.ones(len(tr), dtype=np.float32), (tr["user"].to_numpy(), tr["item"].to_numpy())),
        shape=(split.n_users, split.n_items),
    )
    c = (x.T @ x).tocsr()
    c.setdiag(0)
    c.eliminate_zeros()
    return c


def nearest_neighbours(c: sp.csr_matrix, pool: np.ndarray | None = None) -> np.ndarray:
    """Per item its most co-occurring item within ``pool`` (None: all items); -1 when none."""
    n = c.shape[0]
    if pool is not None:
        keep = np.zeros(n, dtype=np.float32)
        keep[np.asarray(pool, dtype=np.int64)] = 1.0
        c = (c @ sp.diags(keep)).tocsr()
        c.eliminate_zeros()
    out = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        lo, hi = c.indptr[i], c.indptr[i + 1]
        if lo == hi:
            continue
        cols, vals = c.indices[lo:hi], c.data[lo:hi]
        best = vals.max()
        out[i] = int(cols[vals == best].min())
    return out
