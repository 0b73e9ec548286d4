"""The task (evaluator) interface: build requests from a split, call a method in batches, compute metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd

from benchbed.data.schema import Split
from benchbed.methods.base import BaseRecommender, RunContext


@dataclass
class TaskResult:
    """Metrics per subset (``{"all": {"auc": .7}, "warm": {...}, "unseen": {...}}``), counts per subset
    (``{"all": {"rows": 9000, "users": 900}}``), optional per-row predictions and free-form info."""

    metrics: dict[str, dict[str, float]]
    counts: dict[str, dict[str, int]]
    predictions: pd.DataFrame | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Task:
    name: ClassVar[str] = "task"
    defaults: ClassVar[dict[str, Any]] = {}
    # metric name that early stopping / `tune` maximises on the validation set
    validation_metric: ClassVar[str] = ""

    def __init__(self, **params: Any) -> None:
        from benchbed.errors import ConfigError

        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ConfigError(
                f"task {self.name!r} has no parameter(s) {unknown}; known: {sorted(self.defaults)}"
            )
        self.params: dict[str, Any] = {**self.defaults, **params}

    def check_split(self, split: Split) -> None:
        """Raise a one-line error when the split cannot serve this task (e.g. ctr needs labels)."""

    def evaluate(
        self, method: BaseRecommender, split: Split, ctx: RunContext, *, stage: str = "test"
    ) -> TaskResult:
        raise NotImplementedError
