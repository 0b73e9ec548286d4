"""Item-to-text examples: (sub-task, items, template, prompt with markers, reference, attribute set).

Training examples use train items only (both items of a pair), each with ``templates_per_example`` distinct
seen templates drawn with the seed; evaluation examples use one fixed template ("seen:0" or "unseen:0").
Random partners are drawn per (seed, sub-task, item), so an item's example does not depend on the others;
nearest-neighbour partners come from the co-occurrence neighbours within the allowed pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchbed.item2text.facts import ItemFacts
from benchbed.item2text.subtasks import SUB_TASKS, SubTask
from benchbed.item2text.templates import Item2TextBank


@dataclass(frozen=True)
class Example:
    task: str
    items: tuple[int, ...]
    template: str  # "seen:<k>" | "unseen:<k>"
    prompt: str  # with {item1} [{item2}] markers
    reference: str
    attributes: frozenset[str]


def _eligible(facts: ItemFacts, spec: SubTask, items: Sequence[int] | np.ndarray) -> list[int]:
    return [int(i) for i in items if all(facts.has(int(i), need) for need in spec.needs)]


def partner_of(
    spec: SubTask, item: int, pool: np.ndarray, neighbours: np.ndarray | None, seed: int
) -> int | None:
    """The second item of a pair example: the neighbour (``nn``) or a seeded random other pool item."""
    if spec.partner == "nn":
        assert neighbours is not None
        j = int(neighbours[item])
        return j if j >= 0 else None
    others = pool[pool != item]
    if not len(others):
        return None
    rng = np.random.default_rng([seed, list(SUB_TASKS).index(spec.name), item])
    return int(others[rng.integers(len(others))])


def make_examples(
    facts: ItemFacts,
    bank: Item2TextBank,
    tasks: Sequence[str],
    items: np.ndarray,
    *,
    partner_pool: np.ndarray,
    neighbours: np.ndarray | None,
    template: str | None,
    templates_per_example: int = 1,
    seed: int = 0,
) -> list[Example]:
    """Examples of ``tasks`` whose first item is in ``items``; ``template`` None = seeded seen templates."""
    rng = np.random.default_rng(seed)
    out: list[Example] = []
    for task in tasks:
        spec = SUB_TASKS[task]
        pool = np.asarray(_eligible(facts, spec, partner_pool), dtype=np.int64)
        allowed = set(pool.tolist())
        n_seen = len(bank.seen[task])
        for i in _eligible(facts, spec, items):
            pair: tuple[int, ...] = (i,)
            if spec.arity == 2:
                j = partner_of(spec, i, pool, neighbours, seed)
                if j is None or j not in allowed:
                    continue
                pair = (i, j)
            if template is None:
                keys = [
                    f"seen:{int(k)}" for k in rng.choice(n_seen, size=templates_per_example, replace=False)
                ]
            else:
                keys = [template]
            reference = spec.reference(facts, pair)
            attrs = spec.attributes(facts, pair)
            for key in keys:
                prompt = bank.render(task, key, domain_one=facts.domain_one, attr_noun=facts.attr_noun)
                out.append(Example(task, pair, key, prompt, reference, attrs))
    return out


def sample_examples(examples: Sequence[Example], cap: int | None, seed: int) -> list[Example]:
    """The training examples under a ``max_train_examples`` cap: a seeded sample, in their original order.

    Every item-to-text method samples through this one function, so methods compared on one board train on
    the same examples (ILM used to draw its own stream and saw other examples than the baselines)."""
    if cap is None or len(examples) <= int(cap):
        return list(examples)
    keep = np.sort(np.random.default_rng(seed).choice(len(examples), size=int(cap), replace=False))
    return [examples[i] for i in keep]
