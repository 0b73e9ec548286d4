"""CTR and top-K tasks and the reference methods on small hand-built splits (exact expected values)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from benchbed.api import BaseRecommender, RunContext, ScoreRequests, TaskSetup
from benchbed.data.schema import InteractionData, Split
from benchbed.errors import ConfigError, DataError
from benchbed.methods.reference import PopRecommender, RandomRecommender
from benchbed.metrics import auc, logloss, sigmoid, uauc, user_ndcg
from benchbed.tasks.ctr import CTRTask
from benchbed.tasks.topk import TopKTask

N_USERS, N_ITEMS = 4, 12


def _frame(rows: list[tuple[int, int, int, int]], warm: list[bool] | None = None) -> pd.DataFrame:
    f = pd.DataFrame(rows, columns=["user", "item", "label", "timestamp"])
    f["rating"] = np.where(f["label"] == 1, 5.0, 2.0)
    f = f[["user", "item", "rating", "label", "timestamp"]].astype(
        {"user": "int64", "item": "int64", "label": "int8", "timestamp": "int64"}
    )
    f["history"] = pd.Series([[0, 1]] * len(f), dtype=object)
    if warm is not None:
        f["warm"] = np.asarray(warm, dtype=bool)
        f["user_warm"] = f["warm"]
        f["item_warm"] = True
        f["item_unseen"] = False
    return f


def make_split(labeled: bool = True) -> Split:
    """4 users, 12 items. Test: user 0 has warm items 5, 6 and cold item 7; user 1 warm 8 (label 0) and
    cold 9; user 2 only cold item 10 (label 0) and warm 11; user 3 only warm item 4."""
    train = _frame([(0, 0, 1, 1), (0, 1, 0, 2), (1, 0, 1, 1), (1, 2, 1, 2), (2, 1, 1, 1), (3, 3, 0, 1)])
    valid = _frame([(0, 2, 1, 5), (1, 3, 0, 5)], warm=[True, False])
    test_rows = [(0, 5, 1, 9), (0, 6, 0, 9), (0, 7, 1, 9), (1, 8, 0, 9), (1, 9, 1, 9), (2, 10, 0, 9)]
    test_rows += [(2, 11, 1, 9), (3, 4, 1, 9)]
    test = _frame(test_rows, warm=[True, True, False, True, False, False, True, True])
    if not labeled:
        for f in (train, valid, test):
            f["label"] = np.int8(-1)
    inter = pd.concat([train, valid, test], ignore_index=True)[
        ["user", "item", "rating", "label", "timestamp"]
    ]
    items = pd.DataFrame(
        {"raw_id": [f"i{i}" for i in range(N_ITEMS)], "title": [f"t{i}" for i in range(N_ITEMS)]}
    )
    users = pd.DataFrame({"raw_id": [f"u{u}" for u in range(N_USERS)]})
    data = InteractionData(name="tiny", interactions=inter, items=items, users=users)
    split = Split(data, "hand", {"warm_threshold": 1}, train, valid, test)
    split.hash = split.compute_hash()
    return split


def ctx(tmp_path: Path, task: str = "ctr", seed: int = 0) -> RunContext:
    setup = TaskSetup(task=task, feedback="labels" if task == "ctr" else "interactions")
    return RunContext(setup=setup, seed=seed, cache_dir=tmp_path / "cache", work_dir=tmp_path / "work")


class TableScores(BaseRecommender):
    """Scores from a fixed (user, item) table; for unseen templates the scores are negated."""

    name: ClassVar[str] = "table"
    tasks: ClassVar[frozenset[str]] = frozenset({"ctr", "topk"})
    defaults: ClassVar[dict[str, Any]] = {"kind": "probability", "templates": False}

    def __init__(self, table: dict[tuple[int, int], float], **params: Any) -> None:
        super().__init__(**params)
        self.table = table
        self.seen_templates: list[str] = []

    @property
    def score_kind(self) -> str:  # type: ignore[override]
        return str(self.params["kind"])

    @property
    def uses_templates(self) -> bool:  # type: ignore[override]
        return bool(self.params["templates"])

    def fit(self, split: Split, ctx: RunContext) -> None:
        pass

    def score(self, requests: ScoreRequests) -> np.ndarray:
        self.seen_templates.append(requests.template)
        s = np.array(
            [
                self.table.get((int(u), int(i)), 0.5)
                for u, i in zip(requests.users, requests.items, strict=True)
            ]
        )
        return 1.0 - s if requests.template == "unseen" else s


TEST_SCORES = {(0, 5): 0.9, (0, 6): 0.2, (0, 7): 0.4, (1, 8): 0.7, (1, 9): 0.6, (2, 10): 0.3, (2, 11): 0.8}
TEST_SCORES[(3, 4)] = 0.1


# --- CTR --------------------------------------------------------------------------------------------------
def test_ctr_metrics_per_subset_match_metric_functions(tmp_path: Path) -> None:
    split = make_split()
    method = TableScores(TEST_SCORES)
    result = CTRTask(batch_size=3).evaluate(method, split, ctx(tmp_path))
    test = split.test
    for subset, mask in {
        "all": np.ones(8, bool),
        "warm": test["warm"].to_numpy(),
        "cold": ~test["warm"].to_numpy(),
    }.items():
        rows = test[mask]
        s = np.array([TEST_SCORES[(u, i)] for u, i in zip(rows["user"], rows["item"], strict=True)])
        y = rows["label"].to_numpy()
        assert result.metrics[subset]["auc"] == pytest.approx(auc(y, s).value, nan_ok=True)
        assert result.metrics[subset]["uauc"] == pytest.approx(uauc(rows["user"], y, s).value, nan_ok=True)
        assert result.metrics[subset]["ndcg"] == pytest.approx(
            user_ndcg(rows["user"], y, s).value, nan_ok=True
        )
        assert result.metrics[subset]["logloss"] == pytest.approx(logloss(y, s).value)
        assert result.counts[subset] == {
            "rows": len(rows),
            "users": rows["user"].nunique(),
            "positives": int(y.sum()),
        }
    assert result.counts["warm"]["rows"] == 5 and result.counts["cold"]["rows"] == 3
    assert set(result.metrics) == {"all", "warm", "cold"}
    # batches of 3 cover all 8 rows exactly once, in order
    assert result.predictions is not None and result.predictions["score"].tolist() == [
        TEST_SCORES[(u, i)] for u, i in zip(test["user"], test["item"], strict=True)
    ]


def test_ctr_score_kinds(tmp_path: Path) -> None:
    split = make_split()
    logits = {k: (v - 0.5) * 6 for k, v in TEST_SCORES.items()}
    res = CTRTask().evaluate(TableScores(logits, kind="logit"), split, ctx(tmp_path))
    y = split.test["label"].to_numpy()
    s = np.array([logits[(u, i)] for u, i in zip(split.test["user"], split.test["item"], strict=True)])
    assert res.metrics["all"]["logloss"] == pytest.approx(logloss(y, sigmoid(s)).value)
    res = CTRTask().evaluate(TableScores(logits, kind="score"), split, ctx(tmp_path))
    assert "logloss" not in res.metrics["all"] and "auc" in res.metrics["all"]
    with pytest.raises(DataError, match="outside \\[0, 1\\]"):
        CTRTask().evaluate(TableScores(logits, kind="probability"), split, ctx(tmp_path))


def test_ctr_templates_give_seen_and_unseen_subsets(tmp_path: Path) -> None:
    split = make_split()
    method = TableScores(TEST_SCORES, templates=True)
    res = CTRTask().evaluate(method, split, ctx(tmp_path))
    assert set(res.metrics) == {"all", "warm", "cold", "seen", "unseen", "unseen:warm", "unseen:cold"}
    assert set(method.seen_templates) == {"seen", "unseen"}
    assert res.metrics["seen"] == res.metrics["all"]
    # the unseen template negates scores, so its AUC mirrors the seen one
    assert res.metrics["unseen"]["auc"] == pytest.approx(1 - res.metrics["all"]["auc"])
    # validation never evaluates the unseen template
    assert set(CTRTask().evaluate(method, split, ctx(tmp_path), stage="valid").metrics) == {
        "all",
        "warm",
        "cold",
    }


def test_ctr_refuses_implicit_data_and_bad_params() -> None:
    with pytest.raises(ConfigError, match="needs 0/1 labels"):
        CTRTask().check_split(make_split(labeled=False))
    with pytest.raises(ConfigError, match=r"metrics=\['acu'\] is invalid; expected .*auc"):
        CTRTask(metrics=["acu"])
    with pytest.raises(ConfigError, match="has no parameter"):
        CTRTask(ks=[5])


# --- top-K ------------------------------------------------------------------------------------------------
class Oracle(BaseRecommender):
    """Ranks the user's test items first (cold ones before warm ones), then train items, then the rest."""

    name: ClassVar[str] = "oracle"
    tasks: ClassVar[frozenset[str]] = frozenset({"topk"})

    def fit(self, split: Split, ctx: RunContext) -> None:
        self.n_items = split.n_items
        self.test = split.test
        self.train = split.train

    def score_all(self, users: np.ndarray, histories: list[list[int]]) -> np.ndarray:
        out = np.zeros((len(users), self.n_items))
        for row, u in enumerate(users):
            for f, base in ((self.train, 50.0), (self.test, 100.0)):
                mine = f[f["user"] == u]
                for item, warm in zip(
                    mine["item"], mine.get("warm", pd.Series(True, index=mine.index)), strict=True
                ):
                    out[row, item] = base + (0 if warm else 10)
        return out


class PointwiseOracle(Oracle):
    """The same scores through `score` only (no score_all): full ranking goes through the pointwise path."""

    name: ClassVar[str] = "pointwise-oracle"

    def score(self, requests: ScoreRequests) -> np.ndarray:
        full = Oracle.score_all(self, np.unique(requests.users), [])
        users = {u: i for i, u in enumerate(np.unique(requests.users))}
        return full[[users[u] for u in requests.users], requests.items]

    score_all = BaseRecommender.score_all  # type: ignore[assignment]


def test_topk_oracle_scores_one_in_every_subset(tmp_path: Path) -> None:
    split = make_split()
    method = Oracle()
    method.fit(split, ctx(tmp_path, "topk"))
    res = TopKTask(ks=[1, 2, 5]).evaluate(method, split, ctx(tmp_path, "topk"))
    for subset in ("all", "warm", "cold"):
        assert res.metrics[subset]["ndcg@5"] == pytest.approx(1.0), subset
        assert res.metrics[subset]["recall@5"] == pytest.approx(1.0), subset
        assert res.metrics[subset]["mrr@1"] == pytest.approx(1.0), subset
    # user 0: 3 positives (2 warm, 1 cold) -> precision@5 = 3/5 on all, 2/5 warm
    assert res.counts == {
        "all": {"rows": 8, "users": 4},
        "warm": {"rows": 5, "users": 4},
        "cold": {"rows": 3, "users": 3},
    }
    # train items are masked (exclude=history): none is ever ranked
    ranked = res.predictions.set_index("user")["ranked"]  # type: ignore[union-attr]
    assert 0 not in ranked[0] and 1 not in ranked[0] and 2 not in ranked[0]
    res_none = TopKTask(ks=[5], exclude="none").evaluate(method, split, ctx(tmp_path, "topk"))
    assert res_none.metrics["all"]["ndcg@5"] == pytest.approx(1.0)
    ranked_none = res_none.predictions.set_index("user")["ranked"]  # type: ignore[union-attr]
    assert 0 in ranked_none[0][:5]  # the train item (score 50) follows user 0's 3 test items


def test_topk_pointwise_full_ranking_budget_and_equivalence(tmp_path: Path) -> None:
    split = make_split()
    method = PointwiseOracle()
    method.fit(split, ctx(tmp_path, "topk"))
    with pytest.raises(ConfigError, match="candidates=100"):
        TopKTask(max_pointwise_pairs=10).check_method(method, split)
    res = TopKTask(ks=[2, 5]).evaluate(method, split, ctx(tmp_path, "topk"))
    ref = Oracle()
    ref.fit(split, ctx(tmp_path, "topk"))
    assert res.metrics == TopKTask(ks=[2, 5]).evaluate(ref, split, ctx(tmp_path, "topk")).metrics


def test_sampled_candidates_shared_cached_and_never_interacted(tmp_path: Path) -> None:
    split = make_split()
    c = ctx(tmp_path, "topk", seed=3)
    pop = PopRecommender()
    pop.fit(split, c)
    task = TopKTask(ks=[2], candidates=2)
    task.evaluate(pop, split, c)
    key = task.candidates_key(split, "test", 3)
    cached = tmp_path / "cache" / "candidates" / f"{key}.parquet"
    assert cached.exists()
    table = pd.read_parquet(cached).set_index("user")["negatives"]
    everything = pd.concat([split.train, split.valid, split.test])
    for user, negs in table.items():
        n_pos = int((split.test["user"] == user).sum())
        touched = set(everything.loc[everything["user"] == user, "item"])
        assert len(negs) == min(2 * n_pos, N_ITEMS - len(touched)) and not touched & set(negs)
    # a second method on a fresh copy of the split reads the same file and gets the same lists
    fresh = make_split()
    users = np.array([0, 1, 2, 3])
    positives = [split.test.loc[split.test["user"] == u, "item"].to_numpy() for u in users]
    rnd = RandomRecommender()
    rnd.fit(fresh, c)
    again = task.sampled_candidates(fresh, "test", c, users, positives)
    assert [sorted(a[len(p) :]) for a, p in zip(again, positives, strict=True)] == [
        sorted(table[u]) for u in users
    ]
    other_seed = task.sampled_candidates(
        make_split(), "test", ctx(tmp_path, "topk", seed=4), users, positives
    )
    assert task.candidates_key(split, "test", 4) != key and len(other_seed) == 4


def test_topk_metrics_recompute_from_saved_predictions(tmp_path: Path) -> None:
    split = make_split()
    for task, method in (
        (TopKTask(ks=[2, 5], recall_denominator="min_k"), RandomRecommender()),
        (CTRTask(), PopRecommender()),
    ):
        c = ctx(tmp_path, task.name)
        method.fit(split, c)
        res = task.evaluate(method, split, c)
        path = tmp_path / f"{task.name}.parquet"
        res.predictions.to_parquet(path)  # type: ignore[union-attr]
        metrics, counts = task.compute_metrics(pd.read_parquet(path))
        assert metrics == res.metrics and counts == res.counts
    assert "recall_min@2" in res.metrics["all"] or "auc" in res.metrics["all"]


def test_topk_param_errors() -> None:
    with pytest.raises(ConfigError, match="candidates='some' is invalid; expected an integer >= 1 or 'full'"):
        TopKTask(candidates="some")
    with pytest.raises(ConfigError, match=r"ks=\[0\] is invalid; expected a list of integers >= 1"):
        TopKTask(ks=[0])
    with pytest.raises(ConfigError, match="positives=label needs 0/1 labels"):
        TopKTask(positives="label").check_split(make_split(labeled=False))


# --- reference methods ------------------------------------------------------------------------------------
def test_random_is_seeded_and_independent_of_batching(tmp_path: Path) -> None:
    split = make_split()
    a, b = RandomRecommender(), RandomRecommender(seed=7)
    a.fit(split, ctx(tmp_path, seed=0))
    b.fit(split, ctx(tmp_path, seed=0))
    users, items = np.repeat(np.arange(4), 12), np.tile(np.arange(12), 4)
    whole = a.score(ScoreRequests(users, items, [[]] * 48))
    halves = np.concatenate(
        [a.score(ScoreRequests(users[s], items[s], [])) for s in (slice(0, 20), slice(20, 48))]
    )
    assert np.array_equal(whole, halves) and ((whole >= 0) & (whole < 1)).all()
    assert np.array_equal(a.score_all(np.arange(4), []).reshape(-1), whole)
    assert not np.allclose(whole, b.score(ScoreRequests(users, items, [])))


def test_pop_ctr_rate_and_topk_counts(tmp_path: Path) -> None:
    split = make_split()
    pop = PopRecommender(prior_strength=2.0)
    pop.fit(split, ctx(tmp_path, "ctr"))
    g = 4 / 6  # train positive rate
    # item 0: 2 rows, both positive; item 3: 1 row, negative; item 9: unseen in train
    got = pop.score(ScoreRequests(np.zeros(3, np.int64), np.array([0, 3, 9]), [[]] * 3))
    assert got == pytest.approx([(2 + 2 * g) / 4, (0 + 2 * g) / 3, g])
    assert pop.score_kind == "probability" and PopRecommender(ctr_score="count").score_kind == "score"
    assert pop.score_all(np.array([0]), [])[0, :4].tolist() == [2, 2, 1, 1]
    with pytest.raises(ConfigError, match="ctr_score='median' is invalid; expected one of"):
        PopRecommender(ctr_score="median")


def test_topk_history_len_cuts_the_history_and_zero_hands_none() -> None:
    split, users = make_split(), np.asarray([0, 1, 3])
    assert TopKTask(history_len=1)._histories(split, "test", users) == [[2], [3], [3]]
    assert TopKTask(history_len=5)._histories(split, "test", users) == [[0, 1, 2], [0, 2, 3], [3]]
    assert TopKTask(history_len=0)._histories(split, "test", users) == [[], [], []]  # [-0:] is everything
