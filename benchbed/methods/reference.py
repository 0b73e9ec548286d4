"""Two reference methods: ``random`` (the floor every method must beat) and ``pop`` (popularity).

They make every leaderboard honest (a method below ``pop`` has learned little) and they let the whole
pipeline be tested in seconds. Both support ``ctr`` (via ``score``) and ``topk`` (via ``score_all``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from benchbed.api import BaseRecommender, RunContext, ScoreRequests
from benchbed.cards import MethodCard, reference_row
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.param_sets import ParamSet, param
from benchbed.params import Param

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _splitmix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (uint64 arithmetic wraps, which is the point)."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def pair_uniform(seed: int, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """A uniform [0, 1) number per (seed, user, item), independent of batching and call order."""
    with np.errstate(over="ignore"):
        u = _splitmix(np.asarray(users, dtype=np.uint64) ^ _splitmix(np.array(seed, dtype=np.uint64)))
        z = _splitmix(u ^ (np.asarray(items, dtype=np.uint64) * _M2))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


@dataclass(frozen=True)
class RandomParams(ParamSet):
    """Which seed draws the scores."""

    seed: int | None = None  # None: the run's seed


class RandomRecommender(BaseRecommender):
    """Uniform random scores, seeded: the same (seed, user, item) always gets the same score."""

    name: ClassVar[str] = "random"
    card: ClassVar[MethodCard] = reference_row(
        "reference row: a seeded random score per (user, item)", {"ctr", "topk"}
    )
    tasks: ClassVar[frozenset[str]] = frozenset({"ctr", "topk"})
    Params: ClassVar[type[ParamSet]] = RandomParams
    p: RandomParams

    def fit(self, split: Split, ctx: RunContext) -> None:
        self.seed = self.p.seed if self.p.seed is not None else ctx.seed
        self.n_items = split.n_items

    def score(self, requests: ScoreRequests) -> np.ndarray:
        return pair_uniform(self.seed, requests.users, requests.items)

    def score_all(self, users: np.ndarray, histories: list[list[int]]) -> np.ndarray:
        del histories
        items = np.arange(self.n_items, dtype=np.int64)
        return pair_uniform(self.seed, np.asarray(users)[:, None], items[None, :])


@dataclass(frozen=True)
class PopParams(ParamSet):
    """What a ctr score is (smoothed positive rate or count) and how strongly the rate is smoothed."""

    ctr_score: str = param("positive_rate", Param(kind="str", choices=("positive_rate", "count")))
    prior_strength: float = 1.0  # m in the smoothed positive rate


class PopRecommender(BaseRecommender):
    """Item popularity in the training split.

    - ``topk``: the item's number of training interactions (any label), over all items (``score_all``) or
      over sampled candidates (``score``, which answers counts when the run's task is ``topk``); ties go
      to the lower item id, as in every ranking.
    - ``ctr`` (``score``): with ``ctr_score: positive_rate`` (default) the item's training positive rate,
      smoothed towards the global rate: ``(positives + m * global) / (interactions + m)`` with
      ``m = prior_strength``, so an item never seen in training scores the global rate; this is a probability
      and LogLoss is reported. With ``ctr_score: count`` the interaction count is the score (an order only:
      no LogLoss).
    """

    name: ClassVar[str] = "pop"
    card: ClassVar[MethodCard] = reference_row("reference row: training popularity", {"ctr", "topk"})
    tasks: ClassVar[frozenset[str]] = frozenset({"ctr", "topk"})
    Params: ClassVar[type[ParamSet]] = PopParams
    p: PopParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)  # ctr_score's choices are checked there
        if self.p.prior_strength <= 0:  # the naming rule admits 0 (NON_NEGATIVE); 0 divides by zero
            raise ConfigError("method 'pop': prior_strength must be > 0")
        # the kind follows the parameter, so it is set per instance (a class default everywhere else)
        self.score_kind = "probability" if self.p.ctr_score == "positive_rate" else "score"  # type: ignore[misc]

    def fit(self, split: Split, ctx: RunContext) -> None:
        train = split.train
        items = train["item"].to_numpy(dtype=np.int64)
        self.n_items = split.n_items
        self.rank_by_count = ctx.feedback != "labels"
        self.counts = np.bincount(items, minlength=self.n_items).astype(np.float64)
        labels = train["label"].to_numpy()
        if (labels >= 0).all() and len(labels):
            pos = np.bincount(items, weights=(labels == 1).astype(np.float64), minlength=self.n_items)
            prior, m = float((labels == 1).mean()), float(self.p.prior_strength)
            self.rate = (pos + m * prior) / (self.counts + m)
        else:  # implicit data: no positive rate (the ctr task refuses such splits anyway)
            self.rate = np.full(self.n_items, np.nan)
        ctx.say(f"pop: {int((self.counts > 0).sum())} of {self.n_items} items seen in train")

    def score(self, requests: ScoreRequests) -> np.ndarray:
        by_rate = self.p.ctr_score == "positive_rate" and not self.rank_by_count
        table = self.rate if by_rate else self.counts
        return table[np.asarray(requests.items, dtype=np.int64)]

    def score_all(self, users: np.ndarray, histories: list[list[int]]) -> np.ndarray:
        del histories
        return np.broadcast_to(self.counts, (len(users), self.n_items)).copy()
