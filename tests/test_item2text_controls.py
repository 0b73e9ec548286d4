"""Controls that control (issue 22, item 4): the floor never hands a row its own answer, the constant answer
is the sub-task's most frequent training answer, and every item-to-text record says how far it is above the
stronger of the two on its own rows (``sc_gap``) and how varied its outputs are (``distinct``)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from benchbed.item2text.controls import constant_answers, distinct_share, mismatched_references
from benchbed.item2text.examples import Example
from benchbed.results.record import read_record
from benchbed.results.store import read_predictions


def _ex(task: str, reference: str) -> Example:
    return Example(task, (0,), "seen:0", "p", reference, frozenset())


def test_mismatched_reference_differs_from_the_rows_own_or_is_undefined() -> None:
    tasks = ["decade"] * 5 + ["genres"] * 2 + ["same"] * 2
    items = [4, 1, 3, 2, 0, 7, 5, 8, 9]
    refs = ["1990s", "1990s", "1980s", "1990s", "1990s", "Drama", "Comedy", "x", "x"]
    got = mismatched_references(tasks, items, refs)
    # decade: every 1990s row gets the one 1980s answer, the 1980s row the next different item's
    assert got[:5] == ["1980s", "1980s", "1990s", "1980s", "1980s"]
    assert got[5:7] == ["Comedy", "Drama"]
    assert got[7:] == [None, None]  # no different answer exists: undefined, never the true one


def test_constant_answer_is_the_most_frequent_training_answer() -> None:
    train = [_ex("decade", "1990s"), _ex("decade", "1980s"), _ex("decade", "1990s"), _ex("genres", "b")]
    train.append(_ex("genres", "a"))
    assert constant_answers(train) == {"decade": "1990s", "genres": "a"}  # a tie: sorted order
    assert distinct_share(["a", "a", "b", "b"]) == 50.0 and math.isnan(distinct_share([]))


@pytest.mark.slow
def test_floor_and_constant_rows_control_and_records_carry_the_gap(cli) -> None:
    rows = {}
    for method in ("i2t-floor", "i2t-const"):
        code, _, err = cli(
            "run", "--method", method, "--task", "item2text", "--task-param", "max_test_items=30"
        )
        assert code == 0, err
        [path] = [p for p in cli.results.rglob(f"{method}-*.json") if not p.name.endswith(".failed.json")]
        record = read_record(path)
        rows[method] = (record, read_predictions(path, record))
    floor, floor_pred = rows["i2t-floor"]
    const, const_pred = rows["i2t-const"]
    assert not (floor_pred["generated"] == floor_pred["reference"]).any()  # no true answers
    # the constant row writes one string per sub-task, and that string is the task's own constant control
    assert (const_pred["generated"] == const_pred["const"]).all()
    assert (const_pred.groupby("task")["generated"].nunique() == 1).all()
    tasks = sorted(set(const_pred["task"]))
    for task in tasks:
        m = const.metrics[task]
        assert m["sc"] == pytest.approx(m["sc_const"]) and m["sc_gap"] <= 1e-4  # encoder batches: float noise
        assert m["distinct"] == pytest.approx(100.0 / int(const.counts[task]["rows"]))
    for task in tasks:  # the floor row's SC is the floor control's SC: the gap over it is at most 0
        assert floor.metrics[task]["sc"] == pytest.approx(floor.metrics[task]["sc_floor"])
        assert floor.metrics[task]["sc_gap"] <= 1e-4
    assert {"sc", "attr_f1", "sc_const", "sc_floor", "sc_gap", "distinct"} <= set(floor.metrics["all"])
    assert isinstance(floor_pred, pd.DataFrame)
