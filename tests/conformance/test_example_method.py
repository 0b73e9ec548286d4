"""The example method of CONTRIBUTING.md (``tests/example_method.py``), registered here as a plugin: it passes
the conformance suite, learns on planted data, and the suite fails it when it is broken on purpose."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import pytest
from cases import CTR_MICRO, MicroCase, World, ctr_world
from example_method import IDTokens
from sklearn.metrics import roc_auc_score
from suite import MethodConformance, bad_value, fit_three_times, same

from benchbed.api import RunContext, ScoreRequests
from benchbed.data.schema import Split
from benchbed.methods import build_method
from benchbed.params import Param, specs_for
from benchbed.registry import METHODS

pytestmark = pytest.mark.slow
EXAMPLE = MicroCase("id-tokens", "ctr", {**CTR_MICRO, "eval_unseen": False})


class Unseeded(IDTokens):
    """Broken on purpose: the fit draws its own seed instead of the run's."""

    name: ClassVar[str] = "id-tokens-unseeded"

    def fit(self, split: Split, ctx: RunContext) -> None:
        drawn = int(np.random.SeedSequence().entropy % 2**31)  # fresh entropy: what a forgotten seed gives
        super().fit(split, dataclasses.replace(ctx, seed=drawn))


class Unchecked(IDTokens):
    """Broken on purpose: a parameter whose spec accepts any value (no type, no range)."""

    name: ClassVar[str] = "id-tokens-unchecked"
    defaults: ClassVar[dict[str, Any]] = {**IDTokens.defaults, "mystery": None}
    param_specs: ClassVar[dict[str, Param]] = {
        **IDTokens.param_specs,
        "mystery": Param(kind="any", nullable=True),
    }


for _cls in (IDTokens, Unseeded, Unchecked):
    if _cls.name not in METHODS:
        METHODS.register(_cls.name, _cls, plugin=True)


@pytest.fixture(scope="class")
def case() -> MicroCase:
    return EXAMPLE


class TestExampleMethod(MethodConformance):
    pass


def test_it_learns_planted_user_and_item_offsets_and_loses_them_without_its_vectors(tmp_path) -> None:
    """Labels = 1[b_u + b_i + noise > 0] with planted per-user and per-item offsets (``planted_split`` at
    rank 0); titles carry no signal, so only the ID vectors can separate the test rows. The negative control:
    the same fitted model with its tables zeroed (every user and item alike) falls to chance."""
    from benchbed.llm.synthetic import planted_split

    split = planted_split(n_users=30, n_items=12, rows_per_user=16, rank=0)
    test = split.test
    req = ScoreRequests(test["user"].to_numpy(), test["item"].to_numpy(), [list(h) for h in test["history"]])
    params = {"history_len": 2, "epochs": 3, "lr": 0.1, "max_train_rows": 0, "max_valid_rows": 0}
    method = build_method("id-tokens", {**params, "eval_unseen": False}, task="ctr")
    method.fit(split, RunContext(seed=0, cache_dir=tmp_path / "cache", work_dir=tmp_path / "work"))
    trained = roc_auc_score(test["label"], method.score(req))
    for table in method.tables.values():
        table.weight.data.zero_()
    control = roc_auc_score(test["label"], method.score(req))
    print(f"planted test AUC: trained {trained:.3f}, tables zeroed {control:.3f}")
    assert trained > 0.68 and trained > control + 0.12, (trained, control)


def test_the_suite_fails_a_fit_that_ignores_the_seed(world_for_broken: World) -> None:
    fits = fit_three_times(MicroCase("id-tokens-unseeded", "ctr", EXAMPLE.params), world_for_broken)
    assert not same(fits.first.outputs, fits.again.outputs)


def test_the_suite_fails_a_parameter_that_accepts_anything() -> None:
    specs = specs_for(Unchecked.defaults, Unchecked.param_specs)
    with pytest.raises(AssertionError, match="mystery"):
        bad_value("mystery", specs["mystery"])
    assert np.all([bad_value(k, s) is not None for k, s in specs.items() if k != "mystery"])


@pytest.fixture
def world_for_broken(tmp_path) -> World:
    return ctr_world(tmp_path)
