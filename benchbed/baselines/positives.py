"""The training positives of the matrix baselines (ALS, EASE): on labels only the rows labelled 1.

Ranking from the positives alone: a rating the user disliked is not evidence that the user prefers that item
over a random one (see :mod:`benchbed.baselines.recbole_adapter` for the same rule in RecBole's files).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from benchbed.data.schema import Split
from benchbed.errors import DataError


def positive_rows(split: Split, feedback: str, unlabeled: str, empty: str) -> pd.DataFrame:
    """The train rows a model learns from; ``unlabeled`` / ``empty`` end the one-line errors when labels
    are asked for on implicit data or no row is left."""
    train = split.train
    if feedback == "labels":
        if not split.labeled:
            raise DataError(f"split of {split.data.name!r}: {unlabeled}")
        train = train[train["label"] == 1]
    if len(train) == 0:
        raise DataError(f"split of {split.data.name!r} ({split.protocol}): {empty}")
    return train


def count_matrix(train: pd.DataFrame, n_users: int, n_items: int, dtype: type) -> sp.csr_matrix:
    """Users x items, each cell the number of the user's rows of that item (duplicates summed)."""
    return sp.coo_matrix(
        (np.ones(len(train), dtype), (train["user"].to_numpy(), train["item"].to_numpy())),
        shape=(n_users, n_items),
    ).tocsr()
