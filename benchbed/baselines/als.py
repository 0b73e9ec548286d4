"""Weighted ALS (Hu, Koren & Volinsky 2008) via ``implicit``: the iALS/WALS embeddings ILM and seed 003 use.

Confidence ``c_ui = 1 + alpha * r_ui`` where ``r_ui`` is the number of training interactions of the pair
(positives only when the task is ctr, every interaction for topk — the same rule as the RecBole ranking
models); unobserved pairs have preference 0 and confidence 1. ``implicit`` reads the matrix values as the
confidence itself, so we pass ``1 + alpha * r`` and keep implicit's own ``alpha`` at 1.

ALS has no epochs to stop early: each iteration solves the least-squares problems exactly, and 15
iterations (implicit's default) converge on datasets of this size; ``benchbed tune`` can pick
``iterations`` with the other parameters on the validation metric.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from benchbed.api import BaseRecommender, RunContext, ScoreRequests
from benchbed.baselines.positives import count_matrix, positive_rows
from benchbed.baselines.recbole_adapter import check_device
from benchbed.cards import id_baseline
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.param_sets import ParamSet

# the ends of the one-line errors: labels asked for on implicit data, no training row left
NO_TRAINING_DATA = ("task ctr needs 0/1 labels but the data is implicit", "no training interactions for ALS")


@dataclass(frozen=True)
class ALSParams(ParamSet):
    """The factor size, the regularization, the confidence scale and the number of ALS sweeps."""

    dim: int = 64  # factors; implicit's default is 100, 64 matches the other baselines' RecBole default
    reg: float = 0.01  # implicit default regularization
    alpha: float = 40.0  # Hu et al. 2008 (Sec. 4: alpha = 40 worked best)
    iterations: int = 15  # implicit default


class ALSRecommender(BaseRecommender):
    """Implicit-feedback ALS; scores are ``<x_u, y_i>``."""

    name = "als"
    card = id_baseline(
        "iALS/WALS (Hu et al., ICDM 2008), implicit; the CF embeddings of ILM and seed 003", {"ctr", "topk"}
    )
    tasks: ClassVar[frozenset[str]] = frozenset({"ctr", "topk"})
    score_kind: ClassVar[str] = "score"  # an uncalibrated preference score (no LogLoss)
    Params: ClassVar[type[ParamSet]] = ALSParams
    p: ALSParams

    def fit(self, split: Split, ctx: RunContext) -> None:
        import implicit.gpu
        from implicit.cpu.als import AlternatingLeastSquares as CpuALS

        device = check_device(ctx.device)
        train = positive_rows(split, ctx.feedback, *NO_TRAINING_DATA)
        # r_ui = number of interactions (duplicates summed)
        counts = count_matrix(train, split.n_users, split.n_items, np.float32)
        counts.data = 1.0 + float(self.p.alpha) * counts.data
        kwargs = dict(
            factors=self.p.dim,
            regularization=float(self.p.reg),
            alpha=1.0,
            iterations=self.p.iterations,
            random_state=ctx.seed,
        )
        on_gpu = device.startswith("cuda") and implicit.gpu.HAS_CUDA
        if device.startswith("cuda") and not on_gpu:
            ctx.say("als: this implicit build has no CUDA support; fitting on the CPU")
        start = time.perf_counter()
        from threadpoolctl import threadpool_limits

        # implicit parallelises over users itself; a multi-threaded BLAS underneath only oversubscribes
        # (implicit warns about it when the model is built)
        with threadpool_limits(1, "blas"):
            if on_gpu:
                from implicit.gpu.als import AlternatingLeastSquares as GpuALS

                model: Any = GpuALS(**kwargs)
            else:
                model = CpuALS(**kwargs)
            model.fit(counts, show_progress=False)
        if on_gpu:
            model = model.to_cpu()
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)
        self.backbone_info = {
            "library": "implicit",
            "device": "cuda" if on_gpu else "cpu",
            "train_rows": int(len(train)),
            "train_seconds": round(time.perf_counter() - start, 3),
            "feedback": ctx.feedback,
        }

    def _require(self) -> None:
        if not hasattr(self, "user_factors"):
            raise ConfigError("method 'als' must be fitted before it can score")

    def score(self, requests: ScoreRequests) -> np.ndarray:
        self._require()
        u = self.user_factors[np.asarray(requests.users, dtype=np.int64)]
        i = self.item_factors[np.asarray(requests.items, dtype=np.int64)]
        return (u * i).sum(axis=1).astype(np.float64)

    def score_all(self, users: np.ndarray, histories: list[list[int]]) -> np.ndarray:
        self._require()
        return self.user_factors[np.asarray(users, dtype=np.int64)] @ self.item_factors.T

    def trainable_parameters(self) -> int:
        if not hasattr(self, "user_factors"):
            return 0
        return int(self.user_factors.size + self.item_factors.size)

    def embeddings(self) -> dict[str, np.ndarray | None]:
        self._require()
        return {"user": self.user_factors, "item": self.item_factors, "sequence": None}
