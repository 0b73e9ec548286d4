"""The two controls every item-to-text number is read against (issue 22, item 4).

A trained item-to-text model on a low-variety sub-task can score well by writing one string for every item:
on ml-100k the decade sub-task has a handful of answers, so the SC of "the 1990s" for every item is high.
Two controls say what an item-blind answer reaches on the same rows:

- ``constant``: per sub-task, the most frequent answer among the training examples (ties: the first in
  sorted order), written for every test row. This is what a model that ignores the item converges to.
- ``mismatched``: per row, the reference of another test item of the same sub-task *whose reference differs*
  from this row's (the next such row in item order, cyclically). Without the "differs" rule the other item's
  answer is often the true one (72% of decade rows, 50% of common rows on ml-100k), so it was no floor.

Both are pure functions of examples, shared by the ``i2t-const`` / ``i2t-floor`` rows and by the item2text
task, which scores them on every record's own rows (``sc_const``, ``sc_floor`` and the gap over the stronger,
``sc_gap``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from benchbed.item2text.examples import Example


def constant_answers(train: Sequence[Example]) -> dict[str, str]:
    """Sub-task -> its most frequent training answer (ties broken by sorted order, so it is deterministic)."""
    by_task: dict[str, Counter[str]] = {}
    for ex in train:
        by_task.setdefault(ex.task, Counter())[ex.reference] += 1
    return {task: min(counts, key=lambda ref: (-counts[ref], ref)) for task, counts in by_task.items()}


def mismatched_references(
    tasks: Sequence[str], items: Sequence[int], references: Sequence[str]
) -> list[str | None]:
    """Per row, the reference of the next row of the same sub-task (rows ordered by item, cyclically) whose
    reference differs from this row's; None where every row of the sub-task has the same reference (then no
    mismatch exists and the control is undefined for that sub-task)."""
    out: list[str | None] = [None] * len(references)
    rows_of: dict[str, list[int]] = {}
    for r, task in enumerate(tasks):
        rows_of.setdefault(task, []).append(r)
    for rows in rows_of.values():
        order = sorted(rows, key=lambda r: (int(items[r]), r))
        n = len(order)
        for k, r in enumerate(order):
            for step in range(1, n):
                other = order[(k + step) % n]
                if references[other] != references[r]:
                    out[r] = references[other]
                    break
    return out


def mismatch_by_item(examples: Sequence[Example]) -> dict[tuple[str, int], str | None]:
    """(sub-task, first item) -> its mismatched reference, over a pool of examples (the test items'): the
    floor row and the task's floor control both read this, so they agree row for row."""
    other = mismatched_references(
        [e.task for e in examples], [e.items[0] for e in examples], [e.reference for e in examples]
    )
    return {(e.task, e.items[0]): text for e, text in zip(examples, other, strict=True)}


def distinct_share(texts: Sequence[str]) -> float:
    """Share of distinct strings among ``texts`` (x100): 100/len for a constant answer, 100 if all differ."""
    return 100.0 * len(set(texts)) / len(texts) if len(texts) else float("nan")
