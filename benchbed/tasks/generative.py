"""Generative retrieval on the OpenP5 protocol: the method writes the id of each test user's next item.

Split: ``leave-one-out`` (test target = each user's last item, history = the earlier items, capped at
``history_len``). Items are spelled by the split's item index (``random`` from 1001 by default, or
``sequential``), handed to every method with the settings (``GenerativeProtocol`` in ``RunContext.setup``).
The method answers ``RankRequests`` with
up to ``beams`` generated ids per user (constrained beam search: never an invalid id); the task scores them
with the same ranking functions as ``topk`` with one ground truth (IDCG = 1): HR@5/10 and NDCG@5/10.

ID methods (``sasrec``, ``pop``, any ``topk`` method) run on the same split and test users: trained as for
``topk`` (every training interaction a positive) and ranked over all items with the user's earlier items
masked (``id_exclude: history``, RecBole's full ranking), their top ``max(ks)`` scored by the same metrics, so
the leaderboard shows ID and generative methods side by side (seed 003's tables).

Subsets: ``all``/``warm``/``cold`` on the first seen template and ``seen``/``unseen``/``unseen:warm``/
``unseen:cold`` for prompt methods. Warm/cold defaults to the split's flags (the user's train history length
and the target item's train count both >= the split's ``warm_threshold``, 3), exactly what ``topk`` uses for
SASRec on the same split; ``warm_min_history`` / ``warm_min_item_count`` set other thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from benchbed.api import BaseRecommender, RankRequests, RunContext, TaskSetup
from benchbed.data.schema import Split
from benchbed.errors import ConfigError, DataError
from benchbed.generative.examples import SUB_TASKS, check_split, eval_rows
from benchbed.generative.indexing import MODES
from benchbed.generative.setup import GenerativeProtocol, GenerativeSetup
from benchbed.metrics.generative import generative_metrics
from benchbed.parallel import map_batches
from benchbed.param_sets import ParamSet, param
from benchbed.params import Param
from benchbed.tasks.base import Task, TaskResult
from benchbed.tasks.subsets import batches, subset_masks, subset_name, templates_for

SETUP_KEYS = tuple(GenerativeSetup().as_dict())
PROTOCOL = "leave-one-out"


def _generates(method: BaseRecommender) -> bool:
    return "generative" in method.tasks


@dataclass(frozen=True)
class GenerativeTaskParams(GenerativeSetup, ParamSet):
    """The settings every method shares with the task, first (``GenerativeSetup``: sub_task, indexing,
    index_seed, history_len, templates_per_example, bank paths; declared there, once), then the task's own."""

    # redeclared only to give their choices (a redeclared field keeps its place and GenerativeSetup's default)
    sub_task: str = param(GenerativeSetup.sub_task, Param(kind="str", choices=tuple(SUB_TASKS)))
    indexing: str = param(GenerativeSetup.indexing, Param(kind="str", choices=tuple(MODES)))
    ks: list[int] = param([5, 10])  # seed 003 / OpenP5 report HR and NDCG at 5 and 10
    beams: int = 10  # OpenP5: beams = max k
    # OpenP5 default: earlier items may be generated (and count as misses); True drops the user's train
    # (+ valid) items from wider beams (the method decides how much wider), so a list may hold < k ids
    filter_history: bool = False
    warm_min_history: int | None = None  # None: the split's warm flags
    warm_min_item_count: int | None = None
    batch_size: int = 64  # users per `rank` call
    max_users: int | None = None  # evaluate only the first N users by id (smoke runs); None = all
    # ID methods: mask the user's train+valid items ("history") or "none"
    id_exclude: str = param("history", Param(kind="str", choices=("history", "none")))
    id_history_len: int = 50  # ID methods: history handed to `rank` (as topk)


class GenerativeTask(Task):
    name: ClassVar[str] = "generative"
    Params: ClassVar[type[ParamSet]] = GenerativeTaskParams
    p: GenerativeTaskParams
    validation_metric: ClassVar[str] = "ndcg@10"
    default_split: ClassVar[str] = PROTOCOL  # runs that name no --split get the OpenP5 protocol

    def accepts_method(self, method: BaseRecommender) -> bool:
        """Generative methods, and ID methods that rank all items (evaluated as described above)."""
        return _generates(method) or "topk" in method.tasks

    def method_setup(self, split: Split) -> TaskSetup:
        """Every training interaction is a positive (ID methods train as for ``topk``); generative methods
        also get the settings and the split's item index."""
        protocol = GenerativeProtocol(setup=self.setup, index=self.setup.index(split))
        return TaskSetup(task=self.name, feedback=self.feedback, protocol=protocol)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)  # checks every parameter against the specs of GenerativeTaskParams
        # the spec admits any order and repeats; the record and the view hold the sorted distinct cut-offs
        self.params["ks"] = sorted(set(self.p.ks))
        self.p = p = replace(self.p, ks=self.params["ks"])
        if p.beams < max(p.ks):
            raise ConfigError(f"task 'generative': beams ({p.beams}) must be >= the largest k ({max(p.ks)})")
        if p.history_len < 1:  # the naming convention admits 0; a prompt here needs a history
            raise ConfigError("task 'generative': history_len must be >= 1")
        self.setup = GenerativeSetup(**{k: self.params[k] for k in SETUP_KEYS})

    def check_split(self, split: Split) -> None:
        """Validate the split, the banks and the index (``method_setup`` hands them to methods)."""
        check_split(split)
        self.setup.banks  # noqa: B018 - loads and validates both banks now, before any training
        index = self.setup.index(split)
        for name, frame in (("valid", split.valid), ("test", split.test)):
            index.require(frame["item"].to_numpy(), name)

    def evaluate(
        self, method: BaseRecommender, split: Split, ctx: RunContext, *, stage: str = "test"
    ) -> TaskResult:
        self.check_split(split)
        p = self.p
        rows = eval_rows(split, stage, history_len=p.history_len)
        n = len(rows.users) if p.max_users is None else min(len(rows.users), p.max_users)
        users, histories, targets = rows.users[:n], rows.histories[:n], rows.targets[:n]
        warm = self._warm(split, rows.frame.iloc[:n])
        # all the user met before the target (train, + valid for test): what filter_history removes
        earlier = eval_rows(split, stage, history_len=10**9).histories[:n] if p.filter_history else None
        parts: list[pd.DataFrame] = []
        decode_info: dict[str, Any] = {}
        if not _generates(method):
            ranked = self._rank_ids(method, split, stage, users, ctx)
            parts.append(self._predictions(users, targets, warm, ranked, "seen"))
            decode_info["seen"] = {"mode": "full ranking", "exclude": p.id_exclude}
        for template in templates_for(method, stage) if _generates(method) else []:
            ranked, stats = self._decode(method, ctx, stage, template, users, histories, earlier)
            decode_info[template] = _summarise(stats)
            parts.append(self._predictions(users, targets, warm, ranked, template))
        predictions = pd.concat(parts, ignore_index=True)
        metrics, counts = self.compute_metrics(predictions)
        info = {
            "stage": stage,
            "protocol": "OpenP5 generative (leave-one-out, one ground truth, IDCG = 1)",
            "setup": self.setup.as_dict(),
            "index": {"mode": self.setup.indexing, "seed": self.setup.index_seed},
            "templates": self.setup.template_info(),
            "decoding": decode_info,
            "warm_definition": self._warm_definition(split),
            "filter_history": p.filter_history,
        }
        return TaskResult(metrics, counts, predictions, info=info)

    def _decode(
        self,
        method: BaseRecommender,
        ctx: RunContext,
        stage: str,
        template: str,
        users: np.ndarray,
        histories: list[Any],
        earlier: list[Any] | None,
    ) -> tuple[np.ndarray, dict[str, float]]:
        """A generative method's beams for every user with one template, and its decoding counters summed
        over the batches (numbers only; ``*_share`` values are not summable)."""
        p = self.p
        n = len(users)
        ranked = np.full((n, p.beams), -1, dtype=np.int64)
        stats: dict[str, float] = {}

        def generate(sl: slice) -> tuple[np.ndarray, dict[str, Any], int]:
            req = RankRequests(
                users=users[sl],
                histories=histories[sl],
                k=p.beams,
                exclude=[np.asarray(h, dtype=np.int64) for h in earlier[sl]] if earlier is not None else None,
                template=template,
            )
            out = method.rank(req)
            return np.asarray(out.items, dtype=np.int64), dict(out.info or {}), len(req)

        # with N processes each batch is decoded by one of them and gathered once (benchbed.parallel)
        slices = batches(n, p.batch_size, ctx, f"generative {stage} ({template})")
        for sl, (got, out_info, n_req) in map_batches(slices, generate):
            if got.shape[0] != n_req:
                raise DataError(f"method {method.name!r} returned {got.shape[0]} rankings for {n_req} users")
            width = min(got.shape[1], ranked.shape[1])
            ranked[sl, :width] = got[:, :width]
            for key, value in out_info.items():
                if (
                    isinstance(value, int | float)
                    and not isinstance(value, bool)
                    and not key.endswith("_share")
                ):
                    stats[key] = stats.get(key, 0.0) + float(value)
        return ranked, stats

    def _rank_ids(
        self, method: BaseRecommender, split: Split, stage: str, users: np.ndarray, ctx: RunContext
    ) -> np.ndarray:
        """Top ``max(ks)`` of an ID method over all items, the user's earlier items masked."""
        p = self.p
        k = max(p.ks)
        rows = eval_rows(split, stage, history_len=10**9)  # every earlier item, oldest first
        by_user = dict(zip(rows.users.tolist(), rows.histories, strict=True))
        ranked = np.full((len(users), k), -1, dtype=np.int64)

        def rank_all(sl: slice) -> np.ndarray:
            hist = [by_user[int(u)] for u in users[sl]]
            req = RankRequests(
                users=users[sl],
                histories=[h[-p.id_history_len :] for h in hist],
                k=k,
                exclude=[np.asarray(h, dtype=np.int64) for h in hist] if p.id_exclude == "history" else None,
            )
            return np.asarray(method.rank(req).items, dtype=np.int64)

        slices = batches(len(users), p.batch_size * 4, ctx, f"generative {stage} (full ranking)")
        for sl, got in map_batches(slices, rank_all):
            ranked[sl, : min(k, got.shape[1])] = got[:, :k]
        return ranked

    # --- subsets ------------------------------------------------------------------------------------
    def _warm(self, split: Split, frame: pd.DataFrame) -> np.ndarray | None:
        p = self.p
        if p.warm_min_history is None and p.warm_min_item_count is None:
            return frame["warm"].to_numpy(dtype=bool) if "warm" in frame.columns else None
        train_len = (
            split.train.groupby("user").size().reindex(frame["user"].to_numpy(), fill_value=0).to_numpy()
        )
        item_counts = split.train["item"].value_counts()
        target_counts = item_counts.reindex(frame["item"].to_numpy(), fill_value=0).to_numpy()
        user_ok = train_len >= (p.warm_min_history or 0)
        item_ok = target_counts >= (p.warm_min_item_count or 0)
        return np.asarray(user_ok & item_ok, dtype=bool)

    def _warm_definition(self, split: Split) -> str:
        p = self.p
        if p.warm_min_history is None and p.warm_min_item_count is None:
            threshold = split.params.get("warm_threshold", "?")
            return (
                f"split flags: user train history >= {threshold} and target item train count >= {threshold}"
            )
        return (
            f"user train history >= {p.warm_min_history or 0} and target item train count >= "
            f"{p.warm_min_item_count or 0}"
        )

    # --- predictions and metrics ----------------------------------------------------------------------
    @staticmethod
    def _predictions(
        users: np.ndarray, targets: np.ndarray, warm: np.ndarray | None, ranked: np.ndarray, template: str
    ) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "template": template,
                "user": users,
                "item": targets,
                "warm": warm if warm is not None else pd.array([pd.NA] * len(users), dtype="boolean"),
                "ranked": [r.tolist() for r in ranked],
            }
        )

    def compute_metrics(
        self, predictions: pd.DataFrame
    ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, int]]]:
        """Metrics and counts per subset from the predictions frame alone (``benchbed rescore``)."""
        metrics: dict[str, dict[str, float]] = {}
        counts: dict[str, dict[str, int]] = {}
        with_unseen = "unseen" in set(predictions["template"])
        for template, part in predictions.groupby("template", sort=False):
            for subset, values, count in self._template_metrics(part):
                name = subset_name(str(template), subset)
                metrics[name], counts[name] = values, count
                if template == "seen" and subset == "all" and with_unseen:
                    metrics["seen"], counts["seen"] = dict(values), dict(count)
        return metrics, counts

    def _template_metrics(self, part: pd.DataFrame) -> list[tuple[str, dict[str, float], dict[str, int]]]:
        """HR@k and NDCG@k of one template's rows per subset (NaN for an empty subset), with its counts."""
        ks = self.p.ks
        warm_col = part["warm"]
        warm = None if warm_col.isna().any() else warm_col.to_numpy(dtype=bool)
        ranked = np.asarray(part["ranked"].tolist(), dtype=np.int64).reshape(len(part), -1)
        targets = part["item"].to_numpy(dtype=np.int64)
        out = []
        for subset, mask in subset_masks(warm, len(part)).items():
            if mask.any():
                values = generative_metrics(ranked[mask], targets[mask], ks)
            else:
                values = {f"{m}@{k}": float("nan") for k in ks for m in ("hr", "ndcg")}
            out.append(
                (subset, values, {"rows": int(mask.sum()), "users": int(part["user"][mask].nunique())})
            )
        return out


def _summarise(stats: dict[str, float]) -> dict[str, float]:
    """Shares from summed beam counts (methods report counts per batch in ``Rankings.info``)."""
    out = dict(stats)
    if stats.get("valid_beams"):
        out["constrained_beam_share"] = stats.get("constrained_beams", 0.0) / stats["valid_beams"]
    if stats.get("decisions"):
        out["constrained_step_share"] = stats.get("overrides", 0.0) / stats["decisions"]
    if stats.get("beams"):
        out["valid_beam_share"] = stats.get("valid_beams", 0.0) / stats["beams"]
    return out
