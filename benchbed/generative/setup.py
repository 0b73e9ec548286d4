"""The generative protocol's settings that methods must share with the task (index, banks, history cap).

The task hands a ``GenerativeProtocol`` (settings + the split's item index) to every method through
``RunContext.setup.protocol`` (``benchbed.api.TaskSetup``), so a method trains on exactly the ids, templates
and history cap it will be evaluated with. A method fitted without one (called directly from Python) gets
the task's defaults (``GenerativeProtocol.default``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

from benchbed.data.schema import Split
from benchbed.generative.indexing import ItemIndex, get_index
from benchbed.generative.templates import load_generative_bank
from benchbed.prompts import PromptBank


@dataclass(frozen=True)
class GenerativeSetup:
    sub_task: str = "sequential"  # evaluated sub-task: "sequential" | "straightforward"
    indexing: str = "random"  # OpenP5 default (OpenP5-R)
    index_seed: int = 0
    history_len: int = 20  # OpenP5 (T5) cap; 10 for its LLaMA runs
    templates_per_example: int = 1  # seen templates sampled per training example
    bank_sequential: str | None = None  # None: benchbed/prompts/generative_sequential.yaml
    bank_straightforward: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @cached_property
    def banks(self) -> dict[str, PromptBank]:
        return {
            "sequential": load_generative_bank("sequential", self.bank_sequential),
            "straightforward": load_generative_bank("straightforward", self.bank_straightforward),
        }

    def bank(self, sub_task: str | None = None) -> PromptBank:
        return self.banks[sub_task or self.sub_task]

    def index(self, split: Split) -> ItemIndex:
        return get_index(split, self.indexing, self.index_seed)

    def template_info(self) -> dict[str, Any]:
        bank = self.bank()
        return {**bank.info("text", train_templates=len(bank.seen)), "answer": bank.extra.get("answer")}


@dataclass(frozen=True)
class GenerativeProtocol:
    """What the generative task hands a method: its settings and the split's item index."""

    setup: GenerativeSetup
    index: ItemIndex

    @classmethod
    def default(cls, split: Split) -> GenerativeProtocol:
        setup = GenerativeSetup()
        return cls(setup=setup, index=setup.index(split))
