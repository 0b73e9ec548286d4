"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019): closed-form item-item.

``B = I - P diag(1 / diag(P))`` with ``P = (X^T X + lambda I)^{-1}``, so ``B_jj = 0`` and item ``j``'s score
for user ``u`` is ``X_u B_j`` (Steck 2019, Eq. 8; RecBole's ``recbole/model/general_recommender/ease.py``
computes ``B = P / -diag(P)`` then zeroes the diagonal, the same matrix). ``X`` is the binary user-item
matrix of the training positives: every training interaction for top-K (as RecBole's ``inter_matrix``
without a value field), the label-1 rows for CTR.

Why our own and not ``recbole:EASE``: the RecBole adapter runs no ``ModelType.TRADITIONAL`` models (they have
no epochs for its trainer); EASE needs none, it is one matrix inversion. ``tests/test_baselines_ease.py``
checks our scores against RecBole's own ``EASE`` built on the same split through the adapter.

Cost: ``X^T X`` is sparse, its inverse dense: ``n_items^2`` floats (12k items, Amazon Sports: 0.6 GB in
float32); the inversion runs in float64 (``numpy.linalg.inv``) and the result is kept in float32.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from benchbed.api import BaseRecommender, RunContext, ScoreRequests
from benchbed.baselines.positives import count_matrix, positive_rows
from benchbed.cards import MethodCard, id_baseline
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.param_sets import ParamSet, param
from benchbed.params import POSITIVE


def ease_weights(x: sp.csr_matrix, reg: float) -> np.ndarray:
    """The EASE item-item matrix ``B`` (zero diagonal) of a binary user-item matrix ``x``."""
    gram = (x.T @ x).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += reg
    p = np.linalg.inv(gram)
    b = p / (-np.diag(p))  # column j divided by -P_jj (Steck 2019, Eq. 8)
    np.fill_diagonal(b, 0.0)
    return b


# the ends of the one-line errors: labels asked for on implicit data, no training row left
NO_TRAINING_DATA = ("task ctr needs 0/1 labels, the data is implicit", "no training positives for EASE")


@dataclass(frozen=True)
class EASEParams(ParamSet):
    """EASE's one parameter, the L2 weight of its closed form."""

    # lambda; RecBole's properties/model/EASE.yaml reg_weight (Steck 2019 tunes it per set). lambda = 0 leaves
    # X^T X singular as soon as an item has no interaction: strictly positive
    reg: float = param(250.0, replace(POSITIVE, help="L2 weight lambda"))


class EASE(BaseRecommender):
    """Closed-form EASE; ranks from the user's training items (``histories`` are not used)."""

    name: ClassVar[str] = "ease"
    card: ClassVar[MethodCard] = id_baseline(
        "EASE (Steck, WWW 2019): CLLM4Rec's strongest baseline (seed 001)", {"ctr", "topk"}
    )
    tasks: ClassVar[frozenset[str]] = frozenset({"topk", "ctr"})
    score_kind: ClassVar[str] = "score"  # X_u B_j: an order, no probability
    Params: ClassVar[type[ParamSet]] = EASEParams
    p: EASEParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.weights: np.ndarray | None = None
        self.matrix: sp.csr_matrix | None = None

    def fit(self, split: Split, ctx: RunContext) -> None:
        train = positive_rows(split, ctx.feedback, *NO_TRAINING_DATA)
        x = count_matrix(train, split.n_users, split.n_items, np.float64)
        x.data[:] = 1.0  # binary, whatever the duplicates (coo -> csr sums them)
        start = time.perf_counter()
        self.weights = ease_weights(x, float(self.p.reg)).astype(np.float32)
        self.matrix = x.astype(np.float32)
        users_without = int((np.diff(x.indptr) == 0).sum())
        if users_without:
            ctx.say(f"ease: {users_without} user(s) without training items score 0 on every item")
        self.backbone_info = {
            "train_rows": int(x.nnz),
            "train_seconds": round(time.perf_counter() - start, 3),
            "feedback": ctx.feedback,
            "users_without_train_items": users_without,
            "item_matrix_bytes": int(self.weights.nbytes),
        }

    def _require(self) -> tuple[np.ndarray, sp.csr_matrix]:
        if self.weights is None or self.matrix is None:
            raise ConfigError("method 'ease' must be fitted before it can score")
        return self.weights, self.matrix

    def score_all(self, users: np.ndarray, histories: list[list[int]]) -> np.ndarray:
        b, x = self._require()
        return np.asarray(x[np.asarray(users, dtype=np.int64)] @ b)

    def score(self, requests: ScoreRequests) -> np.ndarray:
        b, x = self._require()
        rows = x[np.asarray(requests.users, dtype=np.int64)]
        cols = b[:, np.asarray(requests.items, dtype=np.int64)].T
        return np.asarray(rows.multiply(cols).sum(axis=1)).ravel().astype(np.float64)

    def trainable_parameters(self) -> int:
        return 0 if self.weights is None else int(self.weights.size)
