"""The base of every RecBole-trained ID baseline: parameters, training through RecBole, scoring, embeddings.

Each subclass (:mod:`benchbed.baselines.recbole_models`) is a thin description: which RecBole model, whether
it is pointwise (trains on labels for ``ctr``) or sequential, its hyper-parameters with the source of each
default, and how to read its user / item / sequence embeddings. Training, files and id maps live in
:mod:`benchbed.baselines.recbole_adapter`.

Common parameters (every RecBole baseline):

* ``lr`` — learning rate; 1e-3 is RecBole's default and the middle of CoLLM's grid {1e-2, 1e-3, 1e-4}.
* ``epochs`` — upper bound on epochs; 100 (RecBole's 300 is rarely reached with early stopping and would
  make ``benchbed run`` on a CPU take too long when it is). ``RunContext.budget["epochs"]`` caps it.
* ``stopping_step`` — early stopping patience in epochs on the task's validation metric (AUC for ctr,
  NDCG@10 for topk); 10 is RecBole's default.
* ``batch_size`` (2048) and ``weight_decay`` (0.0): RecBole's defaults.
* ``recbole`` — a mapping of further RecBole config keys, checked against the keys RecBole knows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from benchbed.api import BaseRecommender, RunContext, ScoreRequests
from benchbed.baselines.collm_history import RowHistories
from benchbed.baselines.recbole_adapter import RecBoleSession, check_recbole_keys, model_property_defaults
from benchbed.baselines.recbole_containment import quiet_recbole
from benchbed.baselines.recbole_files import DataPlan
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.param_sets import ParamSet, param
from benchbed.params import Param


@dataclass(frozen=True)
class RecBoleParams(ParamSet):
    """The common parameters of every RecBole baseline (the module docstring says why each default)."""

    lr: float = 1e-3  # RecBole default; CoLLM grid {1e-2, 1e-3, 1e-4} (PROTOCOLS.md)
    epochs: int = 100  # benchbed cap (RecBole: 300); early stopping usually ends sooner
    stopping_step: int = 10  # RecBole default
    batch_size: int = 2048  # RecBole default train_batch_size
    weight_decay: float = 0.0  # RecBole default
    recbole: dict[str, Any] = param({})  # extra RecBole config keys


class ReadsHistory:
    """Marks the parameters of a model that reads each row's history (SASRec, DIN, RecBole's sequential
    models): they declare ``max_len`` and may declare ``history`` (CoLLM's file-order rule). Not a dataclass,
    so each model's fields keep the order its own declaration gives them."""

    max_len: int
    history: str = "split"  # the split's history column, for a model that does not declare the choice


COMMON_KEYS = {
    "lr": "learning_rate",
    "epochs": "epochs",
    "stopping_step": "stopping_step",
    "batch_size": "train_batch_size",
    "weight_decay": "weight_decay",
}
# CoLLM's settings common to its CF baselines (baseline_train_{mf,lightgcn}_ood.py, baseline_train_sasrec.py,
# final runs: "patience": 50, "batch_size": 1024, "epoch": 5000, Adam weight_decay 1e-4; PROTOCOLS.md, CoLLM)
CTR_COMMON: dict[str, Any] = {"weight_decay": 1e-4, "stopping_step": 50, "batch_size": 1024, "epochs": 5000}
CTR_SOURCE = "CoLLM baseline scripts (PROTOCOLS.md, CoLLM: settings in the authors' baseline scripts)"
SCORE_BATCH = 4096  # (user, item) rows per forward pass when scoring
# which history a sequential model reads on ctr: the split's column (earlier timestamps) or CoLLM's rule
HISTORY_SPEC = Param(
    kind="str",
    choices=("split", "file"),
    help="split = the split's history (strictly earlier timestamps) | file = CoLLM's: earlier in file order",
)
FULL_BATCH = 256  # users per forward pass when scoring all items


class RecBoleRecommender(BaseRecommender):
    """Base of every RecBole-trained baseline (see the module docstring for the common parameters)."""

    name: ClassVar[str] = "recbole"
    tasks: ClassVar[frozenset[str]] = frozenset({"ctr", "topk"})
    Params: ClassVar[type[ParamSet]] = RecBoleParams
    p: RecBoleParams
    # what score() returns (see benchbed.tasks.ctr): ranking losses give uncalibrated scores, so no LogLoss
    score_kind: ClassVar[str] = "score"
    recbole_model: ClassVar[Any] = ""  # RecBole model name, or a RecBole model class
    pointwise: ClassVar[bool] = False
    sequential: ClassVar[bool] = False
    min_history: ClassVar[int] = 0
    param_keys: ClassVar[dict[str, str]] = {}  # model-specific benchbed name -> RecBole key
    # where each task's defaults come from (shown by ``benchbed methods NAME``)
    task_defaults_source: ClassVar[dict[str, str]] = {}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)  # 'recbole' is checked to be a mapping (benchbed.params NAME_RULES)
        check_recbole_keys(self._model_name(), self.p.recbole, f"method {self.name!r} parameter 'recbole'")
        self.session: RecBoleSession | None = None
        self.row_histories: RowHistories | None = None  # CoLLM's file-order histories (history='file')
        if self.is_pointwise() and not self.pointwise:  # a pointwise variant chosen by a parameter
            self.score_kind = "logit"  # type: ignore[misc]

    # --- configuration -----------------------------------------------------------------------------
    @classmethod
    def _model_name(cls) -> str:
        return cls.recbole_model if isinstance(cls.recbole_model, str) else cls.recbole_model.__name__

    def _model_ref(self) -> Any:
        return self.recbole_model

    def is_pointwise(self) -> bool:
        """Trains on the row labels (ctr) / on sampled negatives (topk); a parameter may choose it."""
        return self.pointwise

    def history_minimum(self) -> int:
        return self.min_history

    def recbole_settings(self, ctx: RunContext) -> dict[str, Any]:
        """The RecBole config keys this method sets (benchbed names translated)."""
        keys = {**COMMON_KEYS, **self.param_keys}
        out = {keys[k]: v for k, v in self.params.items() if k in keys}
        cap = ctx.budget.get("epochs")
        if cap is not None:
            out["epochs"] = min(int(out["epochs"]), int(cap))
        out.update(self.p.recbole)
        subclass = not isinstance(self._model_ref(), str) and isinstance(self.recbole_model, str)
        if subclass and self.recbole_model:
            # a benchbed subclass of a RecBole model: RecBole loads properties/model/<name>.yaml by class
            # name, so the parent's own defaults (SASRec's hidden_act, LightGCN's require_pow...) come here
            out = {**model_property_defaults(self.recbole_model), **out}
        return out

    def data_plan(self, feedback: str) -> DataPlan:
        plan = DataPlan(
            feedback=feedback,
            pointwise=self.is_pointwise(),
            sequential=self.sequential,
            min_history=self.history_minimum(),
        )
        if isinstance(self.p, ReadsHistory):  # a model without one keeps DataPlan's 50 and the split's rule
            plan = replace(plan, max_len=self.p.max_len, history_rule=self.p.history)
        return plan

    # --- training ------------------------------------------------------------------------------------
    def fit(self, split: Split, ctx: RunContext) -> None:
        self.split = split
        plan = self.data_plan(ctx.feedback)
        if plan.history_rule == "file" and plan.feedback != "labels":
            raise ConfigError(
                f"method {self.name!r}: history='file' (CoLLM's CTR history rule) needs labeled rows "
                f"(task ctr); this task's feedback is {plan.feedback!r}: use history='split'"
            )
        file_rule = plan.sequential and plan.history_rule == "file"
        self.row_histories = RowHistories(split.frames(), plan.max_len) if file_rule else None
        self.session = RecBoleSession(split, self._model_ref(), plan, self.recbole_settings(ctx), ctx)
        outcome = self.session.train()
        self.backbone_info = {
            "library": "recbole 1.2.1",
            "recbole_model": self.session.model_name,
            "loss": self.session.loss_name(),
            "data_plan": self.session.plan.variant,
            "train_rows": self.session.file_rows["train"],
            "valid_metric": outcome.valid_metric,
            "best_valid": outcome.best_valid,
            "epochs_run": outcome.epochs_run,
            "train_seconds": round(outcome.train_seconds, 3),
            "device": ctx.device,
        }

    def _require(self) -> RecBoleSession:
        if self.session is None:
            raise ConfigError(f"method {self.name!r} must be fitted before it can score")
        return self.session

    def trainable_parameters(self) -> int:
        if self.session is None:
            return 0
        return int(sum(p.numel() for p in self.session.model.parameters() if p.requires_grad))

    # --- scoring -------------------------------------------------------------------------------------
    def _fields(
        self, s: RecBoleSession, users: np.ndarray, histories: list[list[int]] | None
    ) -> dict[str, np.ndarray]:
        fields = {"user_id": s.user_map[np.asarray(users, dtype=np.int64)]}
        if self.sequential:
            width = int(s.config["MAX_ITEM_LIST_LENGTH"])
            seq, lengths = s.seq_tensor(histories or [[] for _ in users], width)
            fields["item_id_list"] = seq
            fields["item_length"] = lengths
        return fields

    def _predict(self, s: RecBoleSession, inter: Any) -> Any:
        return s.model.predict(inter)

    def score(self, requests: ScoreRequests) -> np.ndarray:
        import torch

        s = self._require()
        out = np.empty(len(requests), dtype=np.float64)
        with torch.no_grad(), quiet_recbole():
            for lo in range(0, len(requests), SCORE_BATCH):
                hi = min(lo + SCORE_BATCH, len(requests))
                hist = requests.histories[lo:hi]
                if self.row_histories is not None:  # the row's CoLLM history, found by its (user, item)
                    hist = self.row_histories.lookup(requests.users[lo:hi], requests.items[lo:hi], hist)
                fields = self._fields(s, requests.users[lo:hi], hist)
                fields["item_id"] = s.item_map[np.asarray(requests.items[lo:hi], dtype=np.int64)]
                out[lo:hi] = self._predict(s, s.interaction(fields)).detach().cpu().numpy().reshape(-1)
        return out

    def _full(self, s: RecBoleSession, inter: Any, n_rows: int) -> Any:
        import torch

        try:
            return s.model.full_sort_predict(inter).view(n_rows, -1)
        except NotImplementedError:
            n_items = s.dataset.item_num
            rep = inter.repeat_interleave(n_items)
            rep.update(s.interaction({"item_id": np.tile(np.arange(n_items), n_rows)}))
            return torch.cat(
                [self._predict(s, rep[i : i + SCORE_BATCH]) for i in range(0, n_rows * n_items, SCORE_BATCH)]
            ).view(n_rows, n_items)

    def score_all(self, users: np.ndarray, histories: list[list[int]]) -> np.ndarray:
        import torch

        s = self._require()
        users = np.asarray(users, dtype=np.int64)
        out = np.empty((len(users), s.split.n_items), dtype=np.float32)
        with torch.no_grad(), quiet_recbole():
            for lo in range(0, len(users), FULL_BATCH):
                hi = min(lo + FULL_BATCH, len(users))
                inter = s.interaction(self._fields(s, users[lo:hi], histories[lo:hi] if histories else None))
                scores = self._full(s, inter, hi - lo)
                out[lo:hi] = scores[:, torch.as_tensor(s.item_map)].detach().cpu().numpy()
        return out

    # --- embeddings ----------------------------------------------------------------------------------
    def embeddings(self) -> dict[str, np.ndarray | None]:
        """User and item embeddings in benchbed id order (and a sequence representation where defined)."""
        s = self._require()
        model = s.model
        if not (hasattr(model, "user_embedding") and hasattr(model, "item_embedding")):
            raise ConfigError(
                f"method {self.name!r}: RecBole model {self._model_name()} has no embedding export"
            )
        return {
            "user": as_f32(model.user_embedding.weight)[s.user_map],
            "item": as_f32(model.item_embedding.weight)[s.item_map],
            "sequence": None,
        }

    def _train_histories(self, width: int) -> list[list[int]]:
        """Each benchbed user's training items (positives only when trained on labels), last ``width``."""
        s = self._require()
        train = s.split.train
        if s.plan.feedback == "labels":
            train = train[train["label"] == 1]
        ordered = train.sort_values("timestamp", kind="stable")
        hist: list[list[int]] = [[] for _ in range(s.split.n_users)]
        for user, group in ordered.groupby("user", sort=False):
            hist[int(user)] = group["item"].to_numpy()[-width:].tolist()
        return hist


def as_f32(tensor: Any) -> np.ndarray:
    """A torch tensor as a float32 numpy array on the CPU (embeddings handed to benchbed)."""
    return tensor.detach().cpu().numpy().astype(np.float32)
