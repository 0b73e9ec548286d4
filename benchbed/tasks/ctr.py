"""CTR task: score labeled (user, item, history) rows and report AUC, UAUC, NDCG and LogLoss per subset.

The method's ``score`` answers each row; what the number means is the method's ``score_kind``:
``"probability"`` (in [0, 1], used as is), ``"logit"`` (a sigmoid gives the probability for LogLoss; AUC, UAUC
and NDCG only need the order) or ``"score"`` (any order-preserving value: LogLoss is not reported, because
an uncalibrated score has no likelihood). Metric definitions: :mod:`benchbed.metrics` (``ndcg`` is the
per-user NDCG over a user's labeled rows, our definition of the CoLLM paper's NDCG).

Predictions (one row per evaluated row and template) hold everything the metrics need, so
:meth:`CTRTask.compute_metrics` can recompute a record from them alone (``benchbed rescore``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from benchbed.api import BaseRecommender, RunContext, ScoreRequests
from benchbed.data.schema import Split
from benchbed.errors import ConfigError, DataError
from benchbed.parallel import map_batches
from benchbed.param_sets import ParamSet, param
from benchbed.params import Param
from benchbed.tasks.base import Task, TaskResult
from benchbed.tasks.subsets import (
    batches,
    check_scores,
    histories_of,
    stage_frame,
    subset_masks,
    subset_name,
    templates_for,
    warm_flags,
)

CTR_METRICS = ("auc", "uauc", "gauc", "ndcg", "logloss")
SCORE_KINDS = ("probability", "logit", "score")


@dataclass(frozen=True)
class CTRParams(ParamSet):
    """Which metrics the CTR task reports, how many rows go to one ``score`` call, an optional row cap."""

    metrics: list[str] = param(
        ["auc", "uauc", "ndcg", "logloss"],  # any of CTR_METRICS
        Param(
            kind="list",
            item_kind="str",
            pattern="|".join(CTR_METRICS),
            help="any of " + ", ".join(CTR_METRICS),
        ),
    )
    batch_size: int = 1024  # rows per `score` call; methods may batch further inside
    max_rows: int | None = None  # evaluate only the first N rows (smoke runs); None = all


class CTRTask(Task):
    """Pointwise CTR evaluation on the split's labeled test (or valid) rows."""

    name: ClassVar[str] = "ctr"
    Params: ClassVar[type[ParamSet]] = CTRParams
    p: CTRParams
    validation_metric: ClassVar[str] = "auc"
    feedback: ClassVar[str] = "labels"  # CoLLM: pointwise rows with 0/1 labels

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)  # checks every parameter against the specs of CTRParams
        # the spec admits a non-empty list or tuple of known names; the record and the view hold a list
        self.params["metrics"] = list(self.p.metrics)
        self.p = replace(self.p, metrics=self.params["metrics"])

    def check_split(self, split: Split) -> None:
        if not split.labeled:
            raise ConfigError(
                f"task 'ctr' needs 0/1 labels, but dataset {split.data.name!r} is implicit (label -1); "
                "use --task topk"
            )
        if len(split.test) == 0:
            raise DataError(f"dataset {split.data.name!r}: the {split.protocol} split has no test rows")

    def evaluate(
        self, method: BaseRecommender, split: Split, ctx: RunContext, *, stage: str = "test"
    ) -> TaskResult:
        frame = stage_frame(split, stage)
        if self.p.max_rows is not None:
            frame = frame.iloc[: self.p.max_rows]
        kind = method.score_kind
        if kind not in SCORE_KINDS:
            raise DataError(
                f"method {method.name!r}: score_kind must be one of {list(SCORE_KINDS)}, got {kind!r}"
            )
        users = frame["user"].to_numpy(dtype=np.int64)
        items = frame["item"].to_numpy(dtype=np.int64)
        histories = histories_of(frame)
        parts = []
        for template in templates_for(method, stage):
            scores = np.empty(len(frame), dtype=np.float64)

            def score(sl: slice, template: str = template) -> np.ndarray:
                req = ScoreRequests(users[sl], items[sl], histories[sl], template=template)
                return check_scores(method, method.score(req), len(req))

            # with N processes each batch is scored by one of them and gathered once (benchbed.parallel)
            slices = batches(len(frame), self.p.batch_size, ctx, f"ctr {stage} ({template})")
            for sl, part in map_batches(slices, score):
                scores[sl] = part
            parts.append(self._predictions(frame, template, scores, kind, method.name))
        predictions = pd.concat(parts, ignore_index=True)
        metrics, counts = self.compute_metrics(predictions)
        return TaskResult(metrics, counts, predictions, info={"score_kind": kind, "stage": stage})

    @staticmethod
    def _predictions(
        frame: pd.DataFrame, template: str, scores: np.ndarray, kind: str, name: str
    ) -> pd.DataFrame:
        from benchbed.metrics import sigmoid

        if kind == "probability":
            if scores.size and (scores.min() < 0 or scores.max() > 1):
                raise DataError(
                    f"method {name!r} says score_kind='probability' but returned values outside [0, 1] "
                    f"(min {scores.min():.4g}, max {scores.max():.4g}); set score_kind to 'logit' or 'score'"
                )
            probs = scores
        elif kind == "logit":
            probs = sigmoid(scores)
        else:
            probs = np.full(len(scores), np.nan)
        warm = warm_flags(frame)
        return pd.DataFrame(
            {
                "template": template,
                "row": np.arange(len(frame), dtype=np.int64),
                "user": frame["user"].to_numpy(dtype=np.int64),
                "item": frame["item"].to_numpy(dtype=np.int64),
                "label": frame["label"].to_numpy(dtype=np.int8),
                "warm": warm if warm is not None else pd.array([pd.NA] * len(frame), dtype="boolean"),
                "score": scores,
                "prob": probs,
            }
        )

    def compute_metrics(
        self, predictions: pd.DataFrame
    ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, int]]]:
        """Metrics and counts per subset from the predictions frame alone."""
        from benchbed.metrics import auc, gauc, logloss, uauc, user_ndcg

        metrics: dict[str, dict[str, float]] = {}
        counts: dict[str, dict[str, int]] = {}
        for template, part in predictions.groupby("template", sort=False):
            warm_col = part["warm"]
            warm = None if warm_col.isna().any() else warm_col.to_numpy(dtype=bool)
            for subset, mask in subset_masks(warm, len(part)).items():
                rows = part[mask]
                u = rows["user"].to_numpy()
                y = rows["label"].to_numpy(dtype=np.float64)
                s = rows["score"].to_numpy(dtype=np.float64)
                p = rows["prob"].to_numpy(dtype=np.float64)
                values: dict[str, float] = {}
                for key in self.p.metrics:
                    if key == "logloss" and np.isnan(p).any():
                        continue  # uncalibrated scores: no LogLoss
                    if len(rows) == 0:
                        values[key] = float("nan")
                        continue
                    if key == "auc":
                        mv = auc(y, s)
                    elif key == "uauc":
                        mv = uauc(u, y, s)
                    elif key == "gauc":
                        mv = gauc(u, y, s)
                    elif key == "ndcg":
                        mv = user_ndcg(u, y, s)
                    else:
                        mv = logloss(y, p)
                    values[key] = mv.value
                count = {"rows": len(rows), "users": int(rows["user"].nunique()), "positives": int(y.sum())}
                name = subset_name(str(template), subset)
                metrics[name], counts[name] = values, count
                if template == "seen" and subset == "all" and (predictions["template"] == "unseen").any():
                    metrics["seen"], counts["seen"] = dict(values), dict(count)
        return metrics, counts
