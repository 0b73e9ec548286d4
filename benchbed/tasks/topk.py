"""Top-K task: rank items per test user, report HR / NDCG / Recall / MRR / Precision at several K.

Two candidate modes (param ``candidates``):
- ``"full"``: every item is a candidate; the items named by ``exclude`` are masked: ``"history"`` (default)
  = what the user interacted with before the evaluated stage (train for valid; train + valid for test, as
  RecBole masks), ``"train"`` = train items only, ``"none"``. Positives are the user's rows in the evaluated
  stage (``positives: all``) or only its label-1 rows (``positives: label``, labeled data).
- an int ``N``: each test user ranks its positives plus ``N`` negatives per positive, drawn uniformly without
  replacement from the items the user never interacted with (train, valid or test). They are drawn once per
  (split hash, stage, N, positives, seed), written to ``<cache>/candidates/``, kept by the task instance, so
  every method is ranked against the same lists (RecBole's ``uniN``, per user).

Warm / cold for top-K: a positive belongs to the subset of its row's ``warm`` flag. A subset's metrics use,
per user, only that subset's positives; the user's positives of the other subset are removed from the ranked
list before the cut at K (they are neither hits nor misses), so a perfect ranker scores 1 in every subset.
Users with no positive in a subset do not count in it. To make the removal exact the method is asked for
``max(ks) + (positives outside the user's smaller subset)`` items per user.

Methods that can only score pointwise (no ``score_all`` or own ``rank``) are ranked over all items only when
``users x items`` stays within ``max_pointwise_pairs``; otherwise the task refuses and suggests sampled
candidates, because scoring every pair with an LLM takes days.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from benchbed.api import BaseRecommender, RankRequests, RunContext
from benchbed.atomic import write_with
from benchbed.data.schema import Split
from benchbed.errors import ConfigError, DataError
from benchbed.parallel import map_batches
from benchbed.param_sets import ParamSet, param
from benchbed.params import Param
from benchbed.tasks.base import Task, TaskResult
from benchbed.tasks.subsets import (
    BASE_SUBSETS,
    batches,
    drop_items,
    overrides,
    stage_frame,
    subset_name,
    templates_for,
)

RANK_METRICS = ("hr", "ndcg", "recall", "mrr", "precision")


@dataclass(frozen=True)
class TopKParams(ParamSet):
    """The cut-offs and metrics, the candidate mode, what counts as a positive and what is masked."""

    ks: list[int] = param([5, 10, 20])
    metrics: list[str] = param(
        list(RANK_METRICS),
        Param(
            kind="list",
            item_kind="str",
            pattern="|".join(RANK_METRICS),
            help="any of " + ", ".join(RANK_METRICS),
        ),
    )
    # "positives" (RecBole) or "min_k" (CLLM4Rec: key recall_min@k)
    recall_denominator: str = param("positives", Param(kind="str", choices=("positives", "min_k")))
    # "full" or N negatives per positive
    candidates: int | Literal["full"] = param(
        "full", Param(kind="int", min=1, also=("full",), help="'full' or N negatives per positive")
    )
    # "all" interactions of the stage, or "label" (label-1 rows only)
    positives: str = param("all", Param(kind="str", choices=("all", "label")))
    # full ranking mask: "history" | "train" | "none"
    exclude: str = param("history", Param(kind="str", choices=("history", "train", "none")))
    history_len: int = 50  # items of the user's past handed to the method (oldest first)
    batch_size: int = 256  # users per `rank` call
    # full ranking through `score` is refused above this; None: never refused
    max_pointwise_pairs: int | None = 2_000_000


@dataclass(frozen=True)
class RankInputs:
    """What every template's ranking of one stage's users shares."""

    users: np.ndarray  # the evaluated users, sorted by id
    histories: list[list[int]]  # each user's last ``history_len`` items, oldest first
    depth: int  # items ranked per user: max(ks) plus the most positives any user has outside a subset
    candidates: list[np.ndarray] | None  # sampled lists (positives, then negatives); None: full ranking
    exclude: list[np.ndarray] | None  # full ranking: the items masked per user


class TopKTask(Task):
    """Top-K ranking over all items or over sampled candidates, per subset."""

    name: ClassVar[str] = "topk"
    Params: ClassVar[type[ParamSet]] = TopKParams
    p: TopKParams
    validation_metric: ClassVar[str] = "ndcg@10"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)  # checks every parameter against the specs of TopKParams
        # the spec admits any order and repeats; the record and the view hold the sorted distinct cut-offs
        self.params["ks"] = sorted(set(self.p.ks))
        self.p = replace(self.p, ks=self.params["ks"])
        self._validation_key = f"ndcg@{10 if 10 in self.p.ks else self.p.ks[-1]}"
        # candidates key (split hash, stage, N, positives, seed) -> table
        self._candidates: dict[str, pd.DataFrame] = {}

    # --- checks ---------------------------------------------------------------------------------------
    @property
    def validation_metric_key(self) -> str:
        return self._validation_key

    def check_split(self, split: Split) -> None:
        if len(split.test) == 0:
            raise DataError(f"dataset {split.data.name!r}: the {split.protocol} split has no test rows")
        if self.p.positives == "label" and not split.labeled:
            raise ConfigError(
                f"task 'topk': positives=label needs 0/1 labels, but dataset {split.data.name!r} is implicit"
            )

    def check_method(self, method: BaseRecommender, split: Split) -> None:
        """Refuse full ranking through pointwise scoring when it exceeds the budget (before any training)."""
        if self.p.candidates != "full" or overrides(method, "score_all") or overrides(method, "rank"):
            return
        cap = self.p.max_pointwise_pairs
        n_users = int(split.test["user"].nunique())
        pairs = n_users * split.n_items
        if cap is not None and pairs > cap:
            raise ConfigError(
                f"method {method.name!r} scores pointwise only: full ranking would score {n_users} users x "
                f"{split.n_items} items = {pairs:,} pairs, over max_pointwise_pairs={cap:,}; use sampled "
                "candidates (--task-param candidates=100) or raise --task-param max_pointwise_pairs"
            )

    # --- metric keys ------------------------------------------------------------------------------------
    def metric_keys(self) -> list[str]:
        keys = []
        for base in self.p.metrics:
            if base == "recall" and self.p.recall_denominator == "min_k":
                base = "recall_min"
            keys += [f"{base}@{k}" for k in self.p.ks]
        return keys

    # --- evaluation ---------------------------------------------------------------------------------------
    def evaluate(
        self, method: BaseRecommender, split: Split, ctx: RunContext, *, stage: str = "test"
    ) -> TaskResult:
        self.check_method(method, split)
        frame = stage_frame(split, stage)
        pos = self._positives(frame)
        users = np.array(sorted(pos), dtype=np.int64)
        positives = [pos[int(u)][0] for u in users]
        pos_warm = [pos[int(u)][1] for u in users]
        histories = self._histories(split, stage, users)
        # depth: enough ranked items that removing a user's other-subset positives leaves max(ks)
        extra = [len(w) - min(int(w.sum()), int((~w).sum())) if len(w) else 0 for w in pos_warm]
        depth = max(self.p.ks) + max(extra, default=0)
        cands = None
        if self.p.candidates != "full":
            cands = self.sampled_candidates(split, stage, ctx, users, positives)
        exclude = None if cands is not None else self._exclude(split, stage, users)
        inputs = RankInputs(users, histories, depth, cands, exclude)
        parts = []
        for template in templates_for(method, stage):
            ranked = self._rank(method, split, ctx, inputs, template, stage)
            parts.append(
                pd.DataFrame(
                    {
                        "template": template,
                        "user": users,
                        "ranked": list(ranked),
                        "positives": positives,
                        "positive_warm": pos_warm,
                    }
                )
            )
        predictions = pd.concat(parts, ignore_index=True)
        metrics, counts = self.compute_metrics(predictions)
        info = {"depth": depth, "candidates": self.p.candidates, "stage": stage}
        return TaskResult(metrics, counts, predictions, info=info)

    def _positives(self, frame: pd.DataFrame) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """user -> (distinct positive items, warm flag of each: the flag of its first row)."""
        rows = frame if self.p.positives == "all" else frame[frame["label"] == 1]
        flags = "warm" in rows.columns
        warm = rows["warm"].to_numpy(dtype=bool) if flags else np.zeros(len(rows), dtype=bool)
        df = pd.DataFrame({"user": rows["user"].to_numpy(), "item": rows["item"].to_numpy(), "warm": warm})
        df = df.drop_duplicates(["user", "item"], keep="first")
        out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for user, g in df.groupby("user", sort=True):
            # without flags the warm list is empty: only the `all` subset is reported
            w = g["warm"].to_numpy(dtype=bool) if flags else np.zeros(0, dtype=bool)
            out[int(user)] = (g["item"].to_numpy(dtype=np.int64), w)
        if not out:
            raise DataError(
                "task 'topk': the evaluated stage has no positives (positives=label with no label-1 rows?)"
            )
        return out

    @staticmethod
    def _past(split: Split, stage: str) -> pd.DataFrame:
        return split.train if stage == "valid" else pd.concat([split.train, split.valid], ignore_index=True)

    def _histories(self, split: Split, stage: str, users: np.ndarray) -> list[list[int]]:
        past = self._past(split, stage).sort_values("timestamp", kind="stable")
        n = self.p.history_len
        # the last n items ([-0:] would be the whole history: history_len=0 hands the method none)
        seqs = past.groupby("user", sort=False)["item"].apply(
            lambda s: s.to_numpy()[-n:].tolist() if n else []
        )
        seqs = seqs.to_dict()
        return [list(seqs.get(int(u), [])) for u in users]

    def _exclude(self, split: Split, stage: str, users: np.ndarray) -> list[np.ndarray]:
        mode = self.p.exclude
        if mode == "none":
            return [np.zeros(0, dtype=np.int64) for _ in users]
        past = split.train if mode == "train" else self._past(split, stage)
        seen = past.groupby("user", sort=False)["item"].unique().to_dict()
        return [np.asarray(seen.get(int(u), []), dtype=np.int64) for u in users]

    def _rank(
        self,
        method: BaseRecommender,
        split: Split,
        ctx: RunContext,
        inputs: RankInputs,
        template: str,
        stage: str,
    ) -> np.ndarray:
        """Ranked item ids (n_users, depth), -1 padded."""
        depth = inputs.depth
        out = np.full((len(inputs.users), depth), -1, dtype=np.int64)
        if inputs.candidates is None:
            rank_users = self._full_ranker(method, split, inputs, template)
            # with N processes each batch is ranked by one of them and gathered once (benchbed.parallel)
            slices = batches(len(inputs.users), self.p.batch_size, ctx, f"topk {stage} ({template})")
            for sl, ranked in map_batches(slices, rank_users):
                width = min(depth, ranked.shape[1])
                out[sl, :width] = ranked[:, :width]
            return out
        self._rank_sampled(method, ctx, inputs, inputs.candidates, template, stage, out)
        return out

    @staticmethod
    def _full_ranker(
        method: BaseRecommender, split: Split, inputs: RankInputs, template: str
    ) -> Callable[[slice], np.ndarray]:
        """Ranks a batch of users over all items: a pointwise method scores every item (then the excluded
        ones are dropped), a ranking method gets the exclusions with the request."""
        pointwise = not (overrides(method, "score_all") or overrides(method, "rank"))
        n_items = split.n_items
        users, histories, depth, exclude = inputs.users, inputs.histories, inputs.depth, inputs.exclude

        def rank_users(sl: slice) -> np.ndarray:
            ex = exclude[sl] if exclude is not None else None
            if pointwise:
                # all items as candidates through `score`, then the masked items are dropped
                extra = max((len(e) for e in ex), default=0) if ex is not None else 0
                grid = np.broadcast_to(np.arange(n_items, dtype=np.int64), (len(users[sl]), n_items))
                req = RankRequests(
                    users[sl], histories[sl], depth + extra, np.ascontiguousarray(grid), None, template
                )
                ranked = np.asarray(method.rank(req).items, dtype=np.int64)
                if ex is not None:
                    ranked = drop_items(ranked, list(ex))
            else:
                req = RankRequests(users[sl], histories[sl], depth, None, ex, template)
                ranked = np.asarray(method.rank(req).items, dtype=np.int64)
                if ex is not None and overrides(method, "rank"):  # its own `rank` may ignore `exclude`
                    ranked = drop_items(ranked, list(ex))
            return ranked

        return rank_users

    def _rank_sampled(
        self,
        method: BaseRecommender,
        ctx: RunContext,
        inputs: RankInputs,
        cands: list[np.ndarray],
        template: str,
        stage: str,
        out: np.ndarray,
    ) -> None:
        """Each user's sampled list (``cands``: ``inputs.candidates``) ranked into ``out``; users grouped by
        list length so each ``rank`` call gets a rectangular array."""
        bs = self.p.batch_size
        users, histories, depth = inputs.users, inputs.histories, inputs.depth
        widths = np.array([len(c) for c in cands])
        for width in np.unique(widths):
            idx = np.flatnonzero(widths == width)

            def rank_candidates(sl: slice, idx: np.ndarray = idx, width: int = int(width)) -> np.ndarray:
                rows = idx[sl]
                grid = np.stack([cands[i] for i in rows])
                req = RankRequests(
                    users[rows], [histories[i] for i in rows], min(depth, width), grid, None, template
                )
                return np.asarray(method.rank(req).items, dtype=np.int64)

            slices = batches(len(idx), bs, ctx, f"topk {stage} ({template}, {width} candidates)")
            for sl, ranked in map_batches(slices, rank_candidates):
                w = min(depth, ranked.shape[1])
                out[idx[sl], :w] = ranked[:, :w]

    # --- sampled candidates ---------------------------------------------------------------------------
    def candidates_key(self, split: Split, stage: str, seed: int) -> str:
        return f"{split.key}-{stage}-n{self.p.candidates}-{self.p.positives}-s{seed}"

    def sampled_candidates(
        self, split: Split, stage: str, ctx: RunContext, users: np.ndarray, positives: list[np.ndarray]
    ) -> list[np.ndarray]:
        """Each user's positives followed by its sampled negatives; drawn once, cached, shared."""
        key = self.candidates_key(split, stage, ctx.seed)
        shared = self._candidates
        if key in shared:
            table = shared[key]
        else:
            path = Path(ctx.cache_dir) / "candidates" / f"{key}.parquet"
            if path.exists():
                table = pd.read_parquet(path)
            else:
                table = self._draw(split, ctx.seed, users, positives)
                write_with(path, lambda tmp: table.to_parquet(tmp, index=False))
                ctx.say(f"sampled candidates written to {path}")
            shared[key] = table
        by_user = dict(zip(table["user"].tolist(), table["negatives"], strict=True))
        missing = [int(u) for u in users if int(u) not in by_user]
        if missing:
            raise DataError(f"cached candidates {key} lack user(s) {missing[:5]}; delete the file to redraw")
        return [
            np.concatenate([p, np.asarray(by_user[int(u)], dtype=np.int64)])
            for u, p in zip(users, positives, strict=True)
        ]

    def _draw(self, split: Split, seed: int, users: np.ndarray, positives: list[np.ndarray]) -> pd.DataFrame:
        n_items = split.n_items
        n_neg = int(self.p.candidates)  # called for sampled candidates only (an int)
        everything = pd.concat([split.train, split.valid, split.test], ignore_index=True)
        seen = everything.groupby("user", sort=False)["item"].unique().to_dict()
        rng = np.random.default_rng([int(seed), int(split.key[:8], 16)])
        negatives = []
        for u, pos in zip(users, positives, strict=True):
            interacted = np.unique(np.asarray(seen.get(int(u), []), dtype=np.int64))
            need = n_neg * len(pos)
            free = n_items - len(interacted)
            if free <= 2 * need:
                pool = np.setdiff1d(np.arange(n_items), interacted, assume_unique=True)
                negatives.append(rng.permutation(pool)[:need])
                continue
            got = np.zeros(0, dtype=np.int64)
            while len(got) < need:
                draw = rng.integers(0, n_items, size=2 * need)
                draw = draw[~np.isin(draw, interacted)]
                _, first = np.unique(np.concatenate([got, draw]), return_index=True)
                got = np.concatenate([got, draw])[np.sort(first)]
            negatives.append(got[:need])
        return pd.DataFrame({"user": users, "negatives": [n.astype(np.int64) for n in negatives]})

    # --- metrics from predictions -------------------------------------------------------------------------
    def compute_metrics(
        self, predictions: pd.DataFrame
    ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, int]]]:
        """Metrics and counts per subset from the predictions frame alone (``benchbed rescore``)."""
        from benchbed.metrics import hits_from_rankings, resolve

        keys = self.metric_keys()
        kmax = max(self.p.ks)
        metrics: dict[str, dict[str, float]] = {}
        counts: dict[str, dict[str, int]] = {}
        for template, part in predictions.groupby("template", sort=False):
            ranked_all = np.stack([np.asarray(r, dtype=np.int64) for r in part["ranked"]])
            pos = [np.asarray(p, dtype=np.int64) for p in part["positives"]]
            warm = [np.asarray(w, dtype=bool) for w in part["positive_warm"]]
            has_flags = any(len(w) for w in warm)
            for subset in BASE_SUBSETS if has_flags else ("all",):
                if subset == "all":
                    keep = [np.ones(len(p), dtype=bool) for p in pos]
                else:
                    keep = [w if subset == "warm" else ~w for w in warm]
                mine = [p[k] for p, k in zip(pos, keep, strict=True)]
                others = [p[~k] for p, k in zip(pos, keep, strict=True)]
                ranked = drop_items(ranked_all, others)[:, :kmax]
                hits = hits_from_rankings(ranked, mine)
                n_pos = np.array([len(m) for m in mine], dtype=np.int64)
                values = {}
                for key in keys:
                    rm = resolve(key)
                    values[key] = rm.fn(hits, n_pos, rm.k).value
                name = subset_name(str(template), subset)
                metrics[name] = values
                counts[name] = {"rows": int(n_pos.sum()), "users": int((n_pos > 0).sum())}
                if template == "seen" and subset == "all" and (predictions["template"] == "unseen").any():
                    metrics["seen"], counts["seen"] = dict(values), dict(counts[name])
        return metrics, counts
