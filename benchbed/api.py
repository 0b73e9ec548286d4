"""The types tasks and methods share, in one neutral module both import (neither imports the other).

- ``TaskSetup``: what a task hands every method's ``fit`` through ``RunContext.setup``: the task's name, which
  training rows are positives, and the protocol's own setup (generative: item index, template banks,
  history cap). A method reads these, never ``split.extras`` or a task name.
- ``RunContext``: device, dtype, seed, working dirs, progress, the task setup and the embedding source.
- Requests (``ScoreRequests``, ``RankRequests``, ``GenerateRequests``) and answers (``Rankings``), batched
  like lm-evaluation-harness's model interface: a task builds all requests of a subset, and the method
  answers them in batches it chooses.
- ``BaseRecommender``: every hook the runner, tasks or leaderboard call on a method, declared with its
  default. One method class per file in ``benchbed/methods/`` (or an adapter in ``benchbed/baselines/``),
  registered in ``benchbed.methods``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.param_sets import ParamSet
from benchbed.param_sets import declare as declare_params
from benchbed.params import Param
from benchbed.params import resolve as resolve_params

if TYPE_CHECKING:  # the card lives with the methods; only its type is named here
    from benchbed.cards import MethodCard

# Which training rows are positives. "labels": the rows' 0/1 labels (CTR: label 1 positive, label 0 a
# negative); "interactions": every training interaction is a positive (top-K and generative retrieval).
FEEDBACKS = ("labels", "interactions")


@dataclass(frozen=True)
class TaskSetup:
    """What a task hands a method's ``fit`` (``RunContext.setup``), declared so nothing travels on the side.

    ``protocol`` is the task's own setup object (``benchbed.generative.setup.GenerativeProtocol`` for the
    generative task; None for ctr/topk)."""

    task: str = "ctr"
    feedback: str = "labels"
    protocol: Any = None

    def __post_init__(self) -> None:
        if self.feedback not in FEEDBACKS:
            raise ConfigError(f"task setup: feedback {self.feedback!r}; expected one of {FEEDBACKS}")


class EmbeddingSource(Protocol):
    """Trains (or finds cached) ID-model embeddings for a split; handed to methods by the orchestrator."""

    def get(
        self, split: Split, model: str, *, params: dict[str, Any] | None, seed: int, feedback: str
    ) -> Any: ...


@dataclass
class RunContext:
    """Where and how a method runs: device, dtype, seed, working dirs, progress, budget, and what the task
    hands the method (``setup``) and where ID embeddings come from (``embeddings``)."""

    setup: TaskSetup = field(default_factory=TaskSetup)
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    cache_dir: Path = Path(".benchbed/cache")
    work_dir: Path = Path(".benchbed/work")  # checkpoints of resumable stages live here
    verbose: int = 0
    budget: dict[str, Any] = field(default_factory=dict)  # e.g. {"epochs": 1, "max_rows": 2000}
    log: Any = None  # callable(str) for progress messages; None = silent
    embeddings: EmbeddingSource | None = None  # set by the orchestrator; ID-embedding methods need it

    @property
    def feedback(self) -> str:
        return self.setup.feedback

    def say(self, message: str) -> None:
        if self.log is not None:
            self.log(message)

    def embedding_source(self, method: str) -> EmbeddingSource:
        if self.embeddings is None:
            raise ConfigError(
                f"method {method!r} needs ID embeddings but the run context has no embedding source "
                f"(run it through benchbed's runner, or pass RunContext(embeddings=...))"
            )
        return self.embeddings


@dataclass
class ScoreRequests:
    """Pointwise requests (CTR): one row per (user, item) with that row's history."""

    users: np.ndarray  # int64 (n,)
    items: np.ndarray  # int64 (n,)
    histories: list[list[int]]  # per row, oldest first
    template: str = "seen"  # "seen" (template 0) or "unseen": only prompt-based methods care

    def __len__(self) -> int:
        return len(self.users)


@dataclass
class RankRequests:
    """Ranking requests: one row per user.

    ``candidates`` is None for full ranking over all items, else an int64 (n, C) array of candidate ids.
    ``exclude`` lists items to mask per user in full ranking (their training items).
    """

    users: np.ndarray
    histories: list[list[int]]
    k: int
    candidates: np.ndarray | None = None
    exclude: list[np.ndarray] | None = None
    template: str = "seen"

    def __len__(self) -> int:
        return len(self.users)


@dataclass
class Rankings:
    """Top-k answers: item ids (n, k), -1 padded, and their scores (n, k), best first."""

    items: np.ndarray
    scores: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)  # e.g. share of constrained beams


@dataclass
class GenerateRequests:
    prompts: list[str]
    items: np.ndarray | None = None
    max_new_tokens: int = 64
    num_beams: int = 1  # 1 = greedy


@runtime_checkable
class Recommender(Protocol):
    tasks: ClassVar[frozenset[str]]

    def fit(self, split: Split, ctx: RunContext) -> None: ...

    def score(self, requests: ScoreRequests) -> np.ndarray: ...

    def rank(self, requests: RankRequests) -> Rankings: ...

    def generate(self, requests: GenerateRequests) -> list[str]: ...


class BaseRecommender:
    """Defaults shared by all methods: parameter checking, `rank` derived from `score_all`.

    Subclasses set ``name``, ``tasks``, ``defaults`` (every accepted parameter with its default and, in
    a comment, its source) and implement ``fit`` plus ``score`` and/or ``score_all``.
    """

    name: ClassVar[str] = "base"
    tasks: ClassVar[frozenset[str]] = frozenset()
    # The parameters: a frozen dataclass of fields with defaults (benchbed.param_sets), read as ``self.p``;
    # ``defaults`` and ``param_specs`` are derived from it when the class is made. A plugin may still give
    # ``defaults`` (and ``param_specs``) as dicts: its ``self.p`` is then an untyped view of them.
    Params: ClassVar[type[ParamSet]] = ParamSet
    p: ParamSet
    defaults: ClassVar[dict[str, Any]] = {}
    # types/ranges beyond what benchbed.params infers from a default and the project's naming conventions
    param_specs: ClassVar[dict[str, Param]] = {}
    # what the method is (paper, injection, head, tasks, variants, backbone): benchbed.cards
    card: ClassVar[MethodCard | None] = None
    # defaults that depend on the task (and so on the protocol's paper), merged under the user's parameters
    # by ``build_method(name, params, task=...)``: {"ctr": {"weight_decay": 1e-4}} (CoLLM's CF settings)
    task_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    uses_templates: ClassVar[bool] = False  # prompt-based: the task also evaluates the unseen template
    # Parameters that change how a fitted method is evaluated (batch sizes of scoring, which templates are
    # scored) and never a trained tensor: no training stage names them, so changing one reuses every cached
    # stage. The stage-identity conformance test (tests/test_stage_identity_conformance.py) checks the claim;
    # every other parameter must change the key of each stage whose tensors it changes.
    evaluation_only: ClassVar[frozenset[str]] = frozenset()
    # What `score` returns (the ctr task reads it): "probability" in [0, 1]; "logit" (a sigmoid gives the
    # probability for LogLoss); "score" (an order only: LogLoss is not reported).
    score_kind: ClassVar[str] = "probability"
    backbone_info: dict[str, Any]
    # what the runner writes as the record's ``templates`` (prompt methods set it in ``__init__``/``fit``)
    template_info: dict[str, Any] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declare_params(cls)  # defaults/param_specs from Params (or an untyped Params from a defaults dict)

    def __init__(self, **params: Any) -> None:
        # one checking mechanism for every method (benchbed.params): unknown keys, types and ranges
        self.params: dict[str, Any] = resolve_params(
            f"method {self.name!r}", self.defaults, params, self.param_specs
        )
        # the typed view the method reads; ``self.params`` (the same values) is what identities hash
        self.p = self.Params.view(self.params)
        self.backbone_info = {}

    # --- what a method implements -------------------------------------------------------------------
    def fit(self, split: Split, ctx: RunContext) -> None:
        raise NotImplementedError

    def score(self, requests: ScoreRequests) -> np.ndarray:
        raise NotImplementedError(f"method {self.name!r} does not score pointwise requests")

    def score_all(self, users: np.ndarray, histories: list[list[int]]) -> np.ndarray:
        """Scores of every item for each user, shape (n_users_in_batch, n_items)."""
        raise NotImplementedError(f"method {self.name!r} cannot score all items")

    def generate(self, requests: GenerateRequests) -> list[str]:
        raise NotImplementedError(f"method {self.name!r} does not generate text")

    def trainable_parameters(self) -> int:
        return 0

    # --- hooks the runner, tasks and leaderboard call (declared here with their defaults) ------------------
    def companions(self) -> list[tuple[str, dict[str, Any]]]:
        """(method, params) the runner runs first with the same dataset/split/task/seed, so the board printed
        after the run holds the comparison (CoLLM: its CF model and tallrec). Default: none."""
        return []

    def record_info(self) -> dict[str, Any]:
        """Extra facts for the run record's ``info.method`` (budgets, stages). Default: none."""
        return {}

    def embeddings(self) -> dict[str, np.ndarray | None] | None:
        """``{"user": (n_users, d), "item": (n_items, d)[, "sequence"]}`` after ``fit`` for ID models whose
        embeddings LLM methods consume; None (the default) for methods that export none."""
        return None

    # --- derived ----------------------------------------------------------------------------------------
    def rank(self, requests: RankRequests) -> Rankings:
        """Top-k from ``score_all`` (full ranking, train items masked) or ``score`` over candidates."""
        n, k = len(requests), requests.k
        if requests.candidates is None:
            scores = np.asarray(self.score_all(requests.users, requests.histories), dtype=np.float64)
            if requests.exclude is not None:
                for row, items in enumerate(requests.exclude):
                    scores[row, items] = -np.inf
            return top_k(scores, None, k)
        cand = requests.candidates
        flat = ScoreRequests(
            users=np.repeat(requests.users, cand.shape[1]),
            items=cand.reshape(-1),
            histories=[h for h in requests.histories for _ in range(cand.shape[1])],
            template=requests.template,
        )
        scores = np.asarray(self.score(flat), dtype=np.float64).reshape(n, cand.shape[1])
        return top_k(scores, np.asarray(cand), k)

    def save(self, path: Path) -> None:  # pragma: no cover - methods with stages override
        del path

    def load(self, path: Path) -> None:  # pragma: no cover
        del path


def top_k(scores: np.ndarray, candidates: np.ndarray | None, k: int) -> Rankings:
    """Best ``k`` per row; ties broken by the lower item id (deterministic); -inf entries never rank.

    Delegates to ``benchbed.metrics.ranking.top_k`` (a partial sort, same result as a full lexsort)."""
    from benchbed.metrics.ranking import top_k as ranking_top_k

    items, top = ranking_top_k(scores, k, candidates)
    return Rankings(items=items, scores=top)
