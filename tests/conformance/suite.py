"""The conformance suite every registered method passes (issue 23, item 8; the ``implicit`` library's mixin
pattern): a test class that mixes in :class:`MethodConformance` and provides a ``case`` fixture (a
:class:`~cases.MicroCase`) gets every check.

Per method, on its micro world (``cases.py``), three fits share the work of all checks:

1. ``first``: a fit into the world's cache, then the task's answers (``World.outputs``);
2. ``again``: a fresh instance with the same seed, every stage trained afresh in a scratch folder (the
   stage-identity spy: nothing is loaded from the cache); its answers must equal the first's bit for bit;
3. ``reloaded``: a fresh instance on the first fit's cache: every stage must load, none train, and the
   answers must equal the first's bit for bit (the save/load round trip).

Parameters: every declared parameter given a value its spec refuses makes the constructor raise a one-line
``ParamError`` naming it, so a bad value stops a run before any data is read or anything trained; an
unknown name is refused the same way. The card must agree with the class.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from cases import MicroCase, World
from stage_conformance import StageSpy, spying

from benchbed.cards import MethodCard
from benchbed.llm import stages
from benchbed.methods import build_method, get_method_class, method_defaults
from benchbed.params import ParamError, check_value, specs_for

# values tried, in order, until the parameter's spec refuses one (a string fails numbers, bools, choices,
# mappings and lists; a number fails strings; the extremes fail bounded numbers)
BAD_CANDIDATES: tuple[Any, ...] = ("not-a-valid-value:?", 123456789, -(10**9), 10**12, [], {})


@dataclass
class Fit:
    outputs: dict[str, np.ndarray]
    stages: list[tuple[str, bool]]  # (stage name, loaded from the cache) in the order the fit ran them


@dataclass
class Fits:
    first: Fit
    again: Fit
    reloaded: Fit


@contextmanager
def recording() -> Iterator[list[tuple[str, bool]]]:
    """Every stage a fit runs through the kit (``stages._run_or_load``) and whether it came from disk."""
    seen: list[tuple[str, bool]] = []
    original = stages._run_or_load

    def record(st: stages.Stage, train_fn: Any, load_fn: Any) -> stages.StageOutcome:
        outcome = original(st, train_fn, load_fn)
        seen.append((st.name, outcome.loaded))
        return outcome

    stages._run_or_load = record  # type: ignore[assignment]
    try:
        yield seen
    finally:
        stages._run_or_load = original  # type: ignore[assignment]


def build(case: MicroCase, world: World, **over: Any) -> Any:
    params = {**case.params, **over}
    if case.world_backbone:
        params["backbone"] = world.extra["backbone"]
    return build_method(case.method, params, task=world.task)


def fit_three_times(case: MicroCase, world: World) -> Fits:
    """The three fits of the module docstring."""
    cache = f"cache-{case.method}"  # its own: methods that share a stage (tallrec, collm) would load it
    method = build(case, world)
    with recording() as seen:
        method.fit(world.split, world.context(cache))
    first = Fit(world.outputs(method), seen)
    method = build(case, world)
    with spying(StageSpy(None)) as spy:  # trains every stage in a scratch folder, loads none
        method.fit(world.split, world.context(cache))
    again = Fit(world.outputs(method), [(s.name, False) for s in spy.seen])
    method = build(case, world)
    with recording() as seen:
        method.fit(world.split, world.context(cache))
    return Fits(first, again, Fit(world.outputs(method), seen))


def bad_value(key: str, spec: Any) -> Any:
    for value in BAD_CANDIDATES:
        try:
            check_value("probe", key, value, spec)
        except ParamError:
            return value
    raise AssertionError(f"parameter {key!r} accepts every probe value: declare its type or range")


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes()
        if a[k].dtype != object
        else a[k].tolist() == b[k].tolist()
        for k in a
    )


def check_answers(outputs: dict[str, np.ndarray], world: World, cls: Any) -> None:
    """The task's answers have the right shapes and finite values."""
    assert outputs, "the method answered nothing"
    if "score" in outputs:
        s = outputs["score"]
        assert s.shape == (min(24, len(world.split.test)),) and np.isfinite(s).all()
        if cls.score_kind == "probability":
            assert ((s >= 0) & (s <= 1)).all(), "score_kind 'probability' but a score outside [0, 1]"
    if "items" in outputs:
        items, scores = outputs["items"], outputs["scores"]
        assert items.ndim == 2 and items.shape[1] == 5 and items.shape == scores.shape
        assert ((items >= -1) & (items < world.split.n_items)).all()
        assert np.isfinite(scores[items >= 0]).all() and (items >= 0).any()
        assert (np.diff(np.where(items >= 0, scores, -np.inf), axis=1) <= 0).all(), "not best first"
    if "ranked" in outputs:
        ranked = outputs["ranked"]
        assert ranked.ndim == 2 and ranked.shape[1] >= 1
        assert ((ranked >= -1) & (ranked < world.split.n_items)).all()
    if "texts" in outputs:
        assert outputs["texts"].ndim == 1 and all(isinstance(t, str) for t in outputs["texts"])


class MethodConformance:
    """Mix into a test class that provides ``case`` (a :class:`MicroCase`) and ``fits`` (its
    :class:`Fits`, see ``conftest.py``) and ``world`` fixtures."""

    def test_card_agrees_with_the_class(self, case: MicroCase) -> None:
        cls = get_method_class(case.method)
        assert isinstance(cls.card, MethodCard), f"{case.method}: no `card = MethodCard(...)` on the class"
        assert cls.card.tasks == cls.tasks, f"{case.method}: card tasks {cls.card.tasks} != {cls.tasks}"

    def test_every_parameter_is_refused_in_one_line_before_any_work(
        self, case: MicroCase, world: World
    ) -> None:
        defaults = method_defaults(case.method, world.task)
        specs = specs_for(defaults, get_method_class(case.method).param_specs)
        for key, spec in specs.items():
            value = bad_value(key, spec)
            with pytest.raises(ParamError) as err:
                build_method(case.method, {**case.params, key: value}, task=world.task)
            text = str(err.value)
            assert key in text and "\n" not in text, f"{case.method}: {key}={value!r} -> {text!r}"
        with pytest.raises(ParamError, match="no_such_parameter"):
            build_method(case.method, {"no_such_parameter": 1}, task=world.task)

    def test_fit_answers_the_task_with_right_shapes_and_finite_values(
        self, case: MicroCase, world: World, fits: Fits
    ) -> None:
        check_answers(fits.first.outputs, world, get_method_class(case.method))

    def test_same_seed_gives_bit_identical_answers(self, fits: Fits) -> None:
        assert [n for n, _ in fits.again.stages] == [n for n, _ in fits.first.stages]
        assert same(fits.first.outputs, fits.again.outputs), "a second fit with the same seed differs"

    def test_a_fresh_instance_on_the_same_cache_loads_every_stage(self, fits: Fits) -> None:
        assert not any(loaded for _, loaded in fits.first.stages), "the first fit found stages already cached"
        assert [n for n, _ in fits.reloaded.stages] == [n for n, _ in fits.first.stages]
        trained = [n for n, loaded in fits.reloaded.stages if not loaded]
        assert not trained, f"trained again instead of loading: {trained}"
        assert same(fits.first.outputs, fits.reloaded.outputs), "answers after loading the stages differ"
