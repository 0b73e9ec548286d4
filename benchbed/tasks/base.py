"""The task (evaluator) interface: build requests from a split, call a method in batches, compute metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd

from benchbed.api import BaseRecommender, RunContext, TaskSetup
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.param_sets import ParamSet
from benchbed.param_sets import declare as declare_params
from benchbed.params import Param
from benchbed.params import resolve as resolve_params


@dataclass
class TaskResult:
    """Metrics per subset (``{"all": {"auc": .7}, "warm": {...}, "unseen": {...}}``), counts per subset
    (``{"all": {"rows": 9000, "users": 900}}``), optional per-row predictions and free-form info."""

    metrics: dict[str, dict[str, float]]
    counts: dict[str, dict[str, int]]
    predictions: pd.DataFrame | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Task:
    """Every hook the runner and CLI call on a task, declared here with its default."""

    name: ClassVar[str] = "task"
    # parameters as for methods (benchbed.param_sets): ``Params`` declares, ``self.p`` reads
    Params: ClassVar[type[ParamSet]] = ParamSet
    p: ParamSet
    defaults: ClassVar[dict[str, Any]] = {}
    param_specs: ClassVar[dict[str, Param]] = {}  # beyond what benchbed.params infers
    # metric name that early stopping / `tune` maximises on the validation set
    validation_metric: ClassVar[str] = ""
    # which training rows are positives for every method this task fits (see ``benchbed.api.FEEDBACKS``)
    feedback: ClassVar[str] = "interactions"
    # the split protocol of runs that name none (None: the dataset's default)
    default_split: ClassVar[str | None] = None

    def __init__(self, **params: Any) -> None:
        # the same checking as methods' parameters (benchbed.params): unknown keys, types, ranges
        self.params: dict[str, Any] = resolve_params(
            f"task {self.name!r}", self.defaults, params, self.param_specs
        )
        self.p = self.Params.view(self.params)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declare_params(cls)

    @property
    def validation_metric_key(self) -> str:
        """The validation metric with its cut-off as the task computes it (``tune`` maximises it)."""
        return self.validation_metric

    def accepts_method(self, method: BaseRecommender) -> bool:
        """Whether this task can evaluate ``method`` (default: the method lists the task)."""
        return self.name in method.tasks

    def check_split(self, split: Split) -> None:
        """Raise a one-line error when the split cannot serve this task (e.g. ctr needs labels)."""

    def check_method(self, method: BaseRecommender, split: Split) -> None:
        """Raise a one-line error when ``method`` cannot run on this split for this task (default: none)."""

    def method_setup(self, split: Split) -> TaskSetup:
        """What every method's ``fit`` learns of this task (``RunContext.setup``); called after
        ``check_split``. Subclasses add their protocol setup."""
        del split
        return TaskSetup(task=self.name, feedback=self.feedback)

    def compute_metrics(
        self, predictions: pd.DataFrame
    ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, int]]]:
        """Metrics and counts recomputed from a record's predictions (``benchbed rescore``)."""
        raise ConfigError(f"task {self.name!r} cannot recompute metrics from predictions")

    def evaluate(
        self, method: BaseRecommender, split: Split, ctx: RunContext, *, stage: str = "test"
    ) -> TaskResult:
        raise NotImplementedError
