"""What the item2text task hands every method (``RunContext.setup.protocol``): settings, item split,
training examples, facts and neighbours, so a method trains on exactly what it is evaluated with.

A method fitted without the task (a direct call in a test) gets the task's defaults:
``Item2TextProtocol.default(split)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from benchbed.data.schema import Split
from benchbed.errors import ConfigError, DataError
from benchbed.item2text.examples import Example, make_examples
from benchbed.item2text.facts import ItemFacts, item_facts
from benchbed.item2text.itemsplit import ItemSplit, get_item_split
from benchbed.item2text.neighbours import cooccurrence, nearest_neighbours
from benchbed.item2text.subtasks import FACT_FIELDS, SUB_TASKS
from benchbed.item2text.templates import Item2TextBank, load_item2text_bank

AUTO = "auto"


@dataclass(frozen=True)
class Decoding:
    num_beams: int = 1  # greedy by default; ILM does not say (beam search only for OpenP5's ids)
    max_new_tokens: int = (
        32  # the longest reference (describe, ml-100k) is ~30 tokens with the tiny tokenizer
    )


@dataclass(frozen=True)
class Item2TextSetup:
    tasks: Any = AUTO  # "auto" (every sub-task the dataset has facts for), a list, or "a,b"
    test_items: float = 0.2  # share of items held out (ELM "unseen embedding" regime)
    valid_items: float = 0.05
    item_seed: int = 0
    templates_per_example: int = 1  # seen templates per training example
    bank: str | None = None  # None: benchbed/item2text/templates.yaml
    num_beams: int = 1
    max_new_tokens: int = 32

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @cached_property
    def loaded_bank(self) -> Item2TextBank:
        return load_item2text_bank(self.bank)

    def task_list(self, facts: ItemFacts) -> tuple[str, ...]:
        """The evaluated sub-tasks; one-line errors for unknown names or facts the dataset lacks."""
        raw = self.tasks
        if raw == AUTO:
            names = [t for t, s in SUB_TASKS.items() if all(_any_has(facts, n) for n in s.needs)]
            if not names:
                raise DataError(f"dataset {facts.dataset!r}: no item text for any item2text sub-task")
        else:
            names = [t.strip() for t in raw.split(",")] if isinstance(raw, str) else [str(t) for t in raw]
            unknown = [t for t in names if t not in SUB_TASKS]
            if unknown or not names:
                raise ConfigError(
                    f"task item2text: unknown sub-task {unknown[0] if unknown else ''!r}; "
                    f"expected 'auto' or some of {list(SUB_TASKS)}"
                )
            for t in names:
                missing = [n for n in SUB_TASKS[t].needs if not _any_has(facts, n)]
                if missing:
                    raise DataError(
                        f"dataset {facts.dataset!r} has no item field {FACT_FIELDS[missing[0]]!r}, which "
                        f"sub-task {t!r} needs"
                    )
        for t in names:
            if SUB_TASKS[t].arity == 2 and len(facts) < 2:
                raise DataError(
                    f"dataset {facts.dataset!r} has {len(facts)} item(s); pair sub-task {t!r} needs 2"
                )
        return tuple(dict.fromkeys(names))

    def check(self) -> None:
        if not isinstance(self.templates_per_example, int) or self.templates_per_example < 1:
            raise ConfigError("task item2text: templates_per_example must be an integer >= 1")
        n_seen = min(len(v) for v in self.loaded_bank.seen.values())
        if self.templates_per_example > n_seen:
            raise ConfigError(f"task item2text: templates_per_example must be <= {n_seen} (seen templates)")


def _any_has(facts: ItemFacts, need: str) -> bool:
    return any(facts.has(i, need) for i in range(len(facts)))


@dataclass(frozen=True)
class Item2TextProtocol:
    setup: Item2TextSetup
    tasks: tuple[str, ...]
    items: ItemSplit
    facts: ItemFacts
    neighbours: np.ndarray  # (n_items,) CF nearest neighbour over all titled items, -1 = none
    train_neighbours: np.ndarray  # the same within train items (what training NN pairs use)
    train: list[Example] = field(repr=False)
    valid: list[Example] = field(repr=False)

    @property
    def arity(self) -> dict[str, int]:
        return {t: SUB_TASKS[t].arity for t in self.tasks}

    @property
    def decoding(self) -> Decoding:
        return Decoding(num_beams=int(self.setup.num_beams), max_new_tokens=int(self.setup.max_new_tokens))

    @property
    def bank(self) -> Item2TextBank:
        return self.setup.loaded_bank

    @property
    def bank_hash(self) -> str:
        return self.bank.hash()

    def template_info(self) -> dict[str, Any]:
        return {**self.bank.info(self.setup.templates_per_example), "tasks": list(self.tasks)}

    def eval_examples(self, items: np.ndarray, template: str) -> list[Example]:
        """Examples of the evaluated sub-tasks for ``items`` (test or valid) with one template."""
        return make_examples(
            self.facts,
            self.bank,
            self.tasks,
            items,
            partner_pool=np.arange(len(self.facts)),
            neighbours=self.neighbours,
            template=template,
            seed=self.setup.item_seed,
        )

    @classmethod
    def build(cls, split: Split, setup: Item2TextSetup) -> Item2TextProtocol:
        setup.check()
        facts = item_facts(split.data)
        tasks = setup.task_list(facts)
        items = get_item_split(
            split,
            facts,
            test_items=float(setup.test_items),
            valid_items=float(setup.valid_items),
            seed=int(setup.item_seed),
        )
        titled = np.asarray([i for i in range(len(facts)) if facts.has(i, "title")], dtype=np.int64)
        co = cooccurrence(split)
        neighbours = nearest_neighbours(co, titled)
        train_nn = nearest_neighbours(co, items.train)
        train = make_examples(
            facts,
            setup.loaded_bank,
            tasks,
            items.train,
            partner_pool=items.train,
            neighbours=train_nn,
            template=None,
            templates_per_example=int(setup.templates_per_example),
            seed=int(setup.item_seed),
        )
        proto = cls(setup, tasks, items, facts, neighbours, train_nn, train, [])
        valid = proto.eval_examples(items.valid, "seen:0")
        return cls(setup, tasks, items, facts, neighbours, train_nn, train, valid)

    @classmethod
    def default(cls, split: Split) -> Item2TextProtocol:
        return cls.build(split, Item2TextSetup())
