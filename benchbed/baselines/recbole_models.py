"""ID baselines trained by RecBole on benchbed's split and scored through benchbed's ``Recommender`` API.

Each class is a thin description: which RecBole model, whether it is pointwise (trains on labels for
``ctr``) or sequential, its hyper-parameters with the source of each default, and how to read its user /
item / sequence embeddings. Training, files and id maps live in :mod:`benchbed.baselines.recbole_adapter`.

Common parameters (every RecBole baseline):

* ``lr`` — learning rate; 1e-3 is RecBole's default and the middle of CoLLM's grid {1e-2, 1e-3, 1e-4}.
* ``epochs`` — upper bound on epochs; 100 (RecBole's 300 is rarely reached with early stopping and would
  make ``benchbed run`` on a CPU take too long when it is). ``RunContext.budget["epochs"]`` caps it.
* ``stopping_step`` — early stopping patience in epochs on the task's validation metric (AUC for ctr,
  NDCG@10 for topk); 10 is RecBole's default.
* ``batch_size`` (2048) and ``weight_decay`` (0.0): RecBole's defaults.
* ``recbole`` — a mapping of further RecBole config keys, checked against the keys RecBole knows.

Task defaults (``task_defaults``, merged under the user's parameters by ``build_method(..., task=...)``): on
``ctr`` the four CF models CoLLM pretrains (``mf``, ``lightgcn``, ``sasrec``, ``din``) train pointwise with
BCE on the row labels, with the settings of CoLLM's baseline scripts (``../shared/PROTOCOLS.md``, CoLLM,
"Settings in the authors' baseline scripts"): Adam weight decay 1e-4, patience 50 and batch 1024 (the final
runs; the grids used 100 and 2048), at most 5000 epochs, and each model's lr / size. RecBole-style defaults
(patience 10, no weight decay) stop far earlier and give a weaker baseline than the paper's.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from benchbed.api import BaseRecommender, RunContext, ScoreRequests
from benchbed.baselines.collm_history import RowHistories
from benchbed.baselines.recbole_adapter import (
    DataPlan,
    RecBoleSession,
    check_recbole_keys,
    model_property_defaults,
    quiet_recbole,
    recbole_model_class,
)
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.params import Param

COMMON_DEFAULTS: dict[str, Any] = {
    "lr": 1e-3,  # RecBole default; CoLLM grid {1e-2, 1e-3, 1e-4} (PROTOCOLS.md)
    "epochs": 100,  # benchbed cap (RecBole: 300); early stopping usually ends sooner
    "stopping_step": 10,  # RecBole default
    "batch_size": 2048,  # RecBole default train_batch_size
    "weight_decay": 0.0,  # RecBole default
    "recbole": {},  # extra RecBole config keys
}
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
    defaults: ClassVar[dict[str, Any]] = dict(COMMON_DEFAULTS)
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
        super().__init__(**params)
        extra = self.params.get("recbole") or {}
        if not isinstance(extra, dict):
            raise ConfigError(f"method {self.name!r}: parameter 'recbole' must be a mapping of RecBole keys")
        check_recbole_keys(self._model_name(), extra, f"method {self.name!r} parameter 'recbole'")
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
        out.update(self.params.get("recbole") or {})
        subclass = not isinstance(self._model_ref(), str) and isinstance(self.recbole_model, str)
        if subclass and self.recbole_model:
            # a benchbed subclass of a RecBole model: RecBole loads properties/model/<name>.yaml by class
            # name, so the parent's own defaults (SASRec's hidden_act, LightGCN's require_pow...) come here
            out = {**model_property_defaults(self.recbole_model), **out}
        return out

    def data_plan(self, feedback: str) -> DataPlan:
        return DataPlan(
            feedback=feedback,
            pointwise=self.is_pointwise(),
            sequential=self.sequential,
            max_len=int(self.params.get("max_len", 50)),
            min_history=self.history_minimum(),
            history_rule=str(self.params.get("history", "split")),
        )

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
            "user": _np(model.user_embedding.weight)[s.user_map],
            "item": _np(model.item_embedding.weight)[s.item_map],
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


def _np(tensor: Any) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32)


# ------------------------------------------------------------------------------------------------------
# The named baselines
# ------------------------------------------------------------------------------------------------------
class MFBPR(RecBoleRecommender):
    """MF with BPR loss (RecBole ``BPR``); a ranking model: on ctr it learns from positive rows only."""

    name = "mf-bpr"
    recbole_model = "BPR"
    defaults = {**COMMON_DEFAULTS, "dim": 64}  # dim: RecBole BPR embedding_size default
    param_keys = {"dim": "embedding_size"}


class MFPointwise(RecBoleRecommender):
    """MF trained pointwise with BCE on the labels, as CoLLM pretrains it (:class:`PointwiseMF`)."""

    name = "mf"
    pointwise = True
    score_kind = "logit"
    defaults = {**COMMON_DEFAULTS, "dim": 256}  # dim: CoLLM MF d=256 (PROTOCOLS.md)
    param_keys = {"dim": "embedding_size"}
    # CoLLM baseline_train_mf_ood.py best run: lr 1e-3, wd 1e-4, d 256 (stopped at epoch 465; Table II's MF)
    task_defaults = {"ctr": {**CTR_COMMON, "lr": 1e-3, "dim": 256}}
    task_defaults_source = {"ctr": CTR_SOURCE}

    def _model_ref(self) -> Any:
        from benchbed.baselines.pointwise_mf import PointwiseMF

        return PointwiseMF

    @classmethod
    def _model_name(cls) -> str:
        return "PointwiseMF"


class LightGCN(RecBoleRecommender):
    """LightGCN: BPR (RecBole's) or pointwise BCE on labels (CoLLM's, on ctr); exports propagated embeddings.

    ``loss="bce"`` trains :class:`~benchbed.baselines.pointwise_lightgcn.PointwiseLightGCN` (graph of the
    positive rows, BCE on every labeled row), the default on ``ctr``; ``loss="bpr"`` RecBole's own model.
    """

    name = "lightgcn"
    recbole_model = "LightGCN"
    defaults = {
        **COMMON_DEFAULTS,
        "dim": 64,  # RecBole LightGCN default
        "n_layers": 2,  # CoLLM LightGCN 2 layers (PROTOCOLS.md); also RecBole's default
        "reg_weight": 1e-5,  # RecBole default
        "loss": "bpr",  # RecBole's LightGCN is pairwise; ctr: "bce" (CoLLM)
    }
    param_specs = {
        **RecBoleRecommender.param_specs,
        "loss": Param(kind="str", choices=("bpr", "bce"), help="bpr (RecBole) | bce on labels"),
    }
    param_keys = {"dim": "embedding_size", "n_layers": "n_layers", "reg_weight": "reg_weight"}
    # CoLLM baseline_train_lightgcn_ood.py final run: lr 1e-2, wd 1e-4, d 64, 2 GCN layers, BCE on labels;
    # no embedding L2 term besides Adam's weight decay (so reg_weight 0)
    task_defaults = {
        "ctr": {**CTR_COMMON, "lr": 1e-2, "dim": 64, "n_layers": 2, "reg_weight": 0.0, "loss": "bce"}
    }
    task_defaults_source = {"ctr": CTR_SOURCE}

    def is_pointwise(self) -> bool:
        return self.params["loss"] == "bce"

    def _model_ref(self) -> Any:
        if self.params["loss"] == "bce":
            from benchbed.baselines.pointwise_lightgcn import PointwiseLightGCN

            return PointwiseLightGCN
        return self.recbole_model

    def embeddings(self) -> dict[str, np.ndarray | None]:
        import torch

        s = self._require()
        with torch.no_grad():
            user_all, item_all = s.model.forward()
        return {"user": _np(user_all)[s.user_map], "item": _np(item_all)[s.item_map], "sequence": None}


class MultiVAE(RecBoleRecommender):
    """Multi-VAE (RecBole); ranks from the user's training items, so ``histories`` are not used.

    Export: the item vector is the decoder's output row plus its bias, the user vector the decoder's
    last hidden layer plus a constant 1, so ``user @ item.T`` reproduces the model's logits exactly.
    """

    name = "multivae"
    recbole_model = "MultiVAE"
    defaults = {
        **COMMON_DEFAULTS,
        "latent_dimension": 128,  # RecBole default
        "hidden": [600],  # RecBole mlp_hidden_size default
        "dropout": 0.5,  # RecBole dropout_prob default
        "anneal_cap": 0.2,  # RecBole default
        "total_anneal_steps": 200000,  # RecBole default
    }
    param_keys = {
        "latent_dimension": "latent_dimension",
        "hidden": "mlp_hidden_size",
        "dropout": "dropout_prob",
        "anneal_cap": "anneal_cap",
        "total_anneal_steps": "total_anneal_steps",
    }

    def embeddings(self) -> dict[str, np.ndarray | None]:
        import torch
        import torch.nn.functional as F

        s = self._require()
        model = s.model
        with torch.no_grad():
            users = torch.as_tensor(s.user_map, device=model.device)
            h = model.encoder(F.normalize(model.get_rating_matrix(users)))
            z = h[:, : int(model.lat_dim / 2)]
            for layer in list(model.decoder)[:-1]:
                z = layer(z)
            last = list(model.decoder)[-1]
        user = np.concatenate([_np(z), np.ones((len(users), 1), np.float32)], axis=1)
        item = np.concatenate([_np(last.weight), _np(last.bias)[:, None]], axis=1)[s.item_map]
        return {"user": user, "item": item, "sequence": None}


class SASRec(RecBoleRecommender):
    """SASRec: CE over all items (RecBole's) or pointwise BCE on labels (CoLLM's, on ctr).

    ``loss_type="BCE"`` trains :class:`~benchbed.baselines.pointwise_sasrec.PointwiseSASRec` (BCE of
    <SASRec(history), e_item> on every labeled row, empty histories included), the default on ``ctr``;
    ``CE``/``BPR`` are RecBole's next-item losses. Scores use the history passed with each request.

    Export: item = the item embedding table; user = sequence = SASRec's output at the last position of
    the user's training sequence (positives only when trained on labels), as CoLLM feeds it to the LLM.
    """

    name = "sasrec"
    recbole_model = "SASRec"
    sequential = True
    min_history = 1  # RecBole's SASRec reads the output at position length-1
    defaults = {
        **COMMON_DEFAULTS,
        "dim": 64,  # CoLLM SASRec d=64 (PROTOCOLS.md); RecBole hidden_size default
        "max_len": 25,  # CoLLM SASRec maxlen 25 (PROTOCOLS.md); RecBole: 50
        "n_layers": 2,  # RecBole default
        "n_heads": 2,  # RecBole default
        "inner_size": 256,  # RecBole default
        "dropout": 0.5,  # RecBole hidden_dropout_prob and attn_dropout_prob default
        "loss_type": "CE",  # RecBole default; ctr: "BCE" (CoLLM)
        "history": "split",  # ctr: "file" (CoLLM, see below)
    }
    param_specs = {
        **RecBoleRecommender.param_specs,
        "loss_type": Param(kind="str", choices=("CE", "BPR", "BCE"), help="BCE = on row labels"),
        "history": HISTORY_SPEC,
    }
    param_keys = {
        "dim": "hidden_size",
        "n_layers": "n_layers",
        "n_heads": "n_heads",
        "inner_size": "inner_size",
        "loss_type": "loss_type",
    }
    # CoLLM baseline_train_sasrec.py: lr 1e-2, wd 1e-4, hidden 64, 2 blocks, 1 head, dropout 0.2, maxlen 25,
    # point-wise feed-forward of width hidden_units (so inner_size 64), BCE on labels; its sequences are the
    # last maxlen=25 of the row's ``his`` (rec_datasets.MoiveOOData_sasrec ``sas_seq``; seq_dataset in
    # baseline_train_sasrec.py): earlier positives in file order (benchbed.baselines.collm_history), not the
    # split's 10-item history column
    task_defaults = {
        "ctr": {
            **CTR_COMMON,
            "lr": 1e-2,
            "dim": 64,
            "max_len": 25,
            "n_layers": 2,
            "n_heads": 1,
            "inner_size": 64,
            "dropout": 0.2,
            "loss_type": "BCE",
            "history": "file",
        }
    }
    task_defaults_source = {"ctr": CTR_SOURCE}

    def is_pointwise(self) -> bool:
        return self.params["loss_type"] == "BCE"

    def history_minimum(self) -> int:
        return 0 if self.is_pointwise() else self.min_history  # CoLLM trains rows without history too

    def _model_ref(self) -> Any:
        if self.is_pointwise():
            from benchbed.baselines.pointwise_sasrec import PointwiseSASRec

            return PointwiseSASRec
        return self.recbole_model

    def recbole_settings(self, ctx: RunContext) -> dict[str, Any]:
        out = super().recbole_settings(ctx)
        out["hidden_dropout_prob"] = out["attn_dropout_prob"] = self.params["dropout"]
        if self.params["loss_type"] == "BPR":
            out["train_neg_sample_args"] = {"distribution": "uniform", "sample_num": 1}
        return out

    def encode(self, histories: list[list[int]]) -> np.ndarray:
        """SASRec's representation of each history (benchbed item ids, oldest first)."""
        import torch

        s = self._require()
        width = int(s.config["MAX_ITEM_LIST_LENGTH"])
        out = []
        with torch.no_grad():
            for lo in range(0, len(histories), SCORE_BATCH):
                seq, lengths = s.seq_tensor(histories[lo : lo + SCORE_BATCH], width)
                dev = s.config["device"]
                out.append(
                    _np(
                        s.model.forward(
                            torch.as_tensor(seq, device=dev), torch.as_tensor(lengths, device=dev)
                        )
                    )
                )
        return np.concatenate(out) if out else np.zeros((0, int(self.params["dim"])), np.float32)

    def embeddings(self) -> dict[str, np.ndarray | None]:
        s = self._require()
        seq = self.encode(self._train_histories(int(s.config["MAX_ITEM_LIST_LENGTH"])))
        return {"user": seq, "item": _np(s.model.item_embedding.weight)[s.item_map], "sequence": seq}


class DIN(RecBoleRecommender):
    """DIN: CoLLM's (``arch="collm"``, the ctr default) or RecBole's (``arch="recbole"``), pointwise.

    ``collm``: :class:`~benchbed.baselines.collm_din.CoLLMDIN`, the authors' ``RecEncoder_DIN`` (user, target
    and a separate history table of ``dim // 3`` each, target attention, MLP ``mlp_hidden`` + 1 with Dice),
    reading CoLLM's file-order history (``history="file"``). ``recbole``: RecBole 1.2.1's DIN (one item table
    for history and target, no user id, MLP with Dice and batch norm); RecBole's own defaults also run as
    ``recbole:DIN``. ``score`` returns the logit either way.

    Export (for CoLLM-DIN): item = the target-item vector; ``collm`` repeats it three times, as the authors'
    ``item_encoder`` does (``torch.cat([target_embeds]*3)``), so it has the width of the user vector. The
    authors feed the LLM the row's ``[item, pooled history, user]``, which depends on the target; a per-user
    vector has to drop the target: ``collm`` user = ``[mean item vector of the user's last max_len training
    positives, mean of their history-table vectors, user vector]``; ``recbole`` user = the mean item vector.
    """

    name = "din"
    recbole_model = "DIN"
    score_kind = "logit"
    sequential = True
    pointwise = True
    defaults = {
        **COMMON_DEFAULTS,
        "arch": "recbole",  # ctr: "collm" (CoLLM's RecEncoder_DIN)
        "dim": 64,  # CoLLM's CF embedding size for its CF models; RecBole DIN default is 10
        "max_len": 10,  # CoLLM DIN history 10 (PROTOCOLS.md)
        "mlp_hidden": [256, 256, 256],  # RecBole default
        "dropout": 0.0,  # RecBole default
        "history": "split",  # ctr: "file" (CoLLM)
    }
    param_specs = {
        **RecBoleRecommender.param_specs,
        "arch": Param(kind="str", choices=("collm", "recbole"), help="collm = CoLLM's RecEncoder_DIN"),
        "history": HISTORY_SPEC,
    }
    param_keys = {"dim": "embedding_size", "mlp_hidden": "mlp_hidden_size", "dropout": "dropout_prob"}
    # CoLLM train_configs/collm_pretrain_din_ood_cc.yaml (rec_config: embedding_size 192, drop 0.2, maxlen 10)
    # and its checkpoint name 1010_ml_DIN_lr0.0001-dp-0.2-wd-0.0001 (lr 1e-4, wd 1e-4); RecEncoder_DIN's
    # hidden_units=[200, 80, 1]; the DIN training script is not released, so Adam, batch 1024, patience 50 and
    # at most 5000 epochs are the other CF scripts' (CTR_COMMON)
    task_defaults = {
        "ctr": {
            **CTR_COMMON,
            "arch": "collm",
            "lr": 1e-4,
            "dim": 192,
            "dropout": 0.2,
            "max_len": 10,
            "mlp_hidden": [200, 80],
            "history": "file",
        }
    }
    task_defaults_source = {"ctr": CTR_SOURCE}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self._collm() and int(self.params["dim"]) < 3:
            raise ConfigError(
                f"method 'din': arch='collm' gives user, item and history tables dim // 3 each; dim must be "
                f">= 3, got {self.params['dim']}"
            )

    def _collm(self) -> bool:
        return self.params["arch"] == "collm"

    def _model_ref(self) -> Any:
        if self._collm():
            from benchbed.baselines.collm_din import CoLLMDIN

            return CoLLMDIN
        return self.recbole_model

    def _predict(self, s: RecBoleSession, inter: Any) -> Any:
        m = s.model
        if self._collm():
            return m.predict(inter)
        return m.forward(inter[m.USER_ID], inter[m.ITEM_SEQ], inter[m.ITEM_SEQ_LEN], inter[m.POS_ITEM_ID])

    def _item_table(self) -> np.ndarray:
        import torch

        s = self._require()
        if self._collm():
            return _np(s.model.item_embedding.weight)[s.item_map]
        dev = s.config["device"]
        with torch.no_grad():
            items = torch.as_tensor(s.item_map, device=dev).view(1, -1)
            sparse, _ = s.model.embedding_layer(torch.zeros(1, dtype=torch.long, device=dev), items)
        return _np(sparse["item"]).reshape(len(s.item_map), -1)

    def embeddings(self) -> dict[str, np.ndarray | None]:
        s = self._require()
        item = self._item_table()
        hist = self._train_histories(int(s.config["MAX_ITEM_LIST_LENGTH"]))
        user = np.zeros((len(hist), item.shape[1]), np.float32)
        for u, h in enumerate(hist):
            if h:
                user[u] = item[h].mean(axis=0)
        if not self._collm():
            return {"user": user, "item": item, "sequence": user}
        history_table = _np(s.model.history_embedding.weight)[s.item_map]
        pooled = np.zeros_like(user)
        for u, h in enumerate(hist):
            if h:
                pooled[u] = history_table[h].mean(axis=0)
        own = _np(s.model.user_embedding.weight)[s.user_map]
        full_user = np.concatenate([user, pooled, own], axis=1)
        return {"user": full_user, "item": np.concatenate([item] * 3, axis=1), "sequence": full_user}


# ------------------------------------------------------------------------------------------------------
# recbole:<Model>
# ------------------------------------------------------------------------------------------------------
def recbole_passthrough(model_name: str) -> type[RecBoleRecommender]:
    """A baseline class for any RecBole general, sequential or context-aware model, by its RecBole name.

    Parameters: the common ones plus the model's own RecBole keys under their RecBole names, with
    RecBole's defaults (``properties/model/<Model>.yaml``).
    """
    from recbole.utils import InputType, ModelType

    model_class = recbole_model_class(model_name)
    kind = getattr(model_class, "type", None)
    if kind not in (ModelType.GENERAL, ModelType.SEQUENTIAL, ModelType.CONTEXT):
        raise ConfigError(
            f"recbole:{model_name} is a {getattr(kind, 'name', kind)} model; only general, sequential and "
            "context-aware RecBole models run on benchbed splits"
        )
    own = model_property_defaults(model_name)
    sequential = kind == ModelType.SEQUENTIAL
    pointwise = getattr(model_class, "input_type", None) == InputType.POINTWISE and not (
        sequential and own.get("loss_type") == "CE"
    )
    if kind == ModelType.CONTEXT:
        pointwise = True
    attrs: dict[str, Any] = {
        "name": f"recbole:{model_name}",
        "recbole_model": model_name,
        "sequential": sequential,
        "pointwise": pointwise,
        "min_history": 1 if sequential and not pointwise else 0,
        # context-aware models' predict() is sigmoid(forward()); other models' scores are left uncalibrated
        "score_kind": "probability" if kind == ModelType.CONTEXT else "score",
        "defaults": {**COMMON_DEFAULTS, **own, **({"max_len": 50} if sequential else {})},
        "param_keys": {k: k for k in own},
        "__doc__": f"RecBole {model_name} ({kind.name.lower()}) trained on benchbed's split.",
    }
    cls: type[RecBoleRecommender] = type(f"RecBole_{model_name}", (RecBoleRecommender,), attrs)
    if sequential and own.get("loss_type") == "BPR":
        cls.recbole_settings = _with_train_negatives(cls.recbole_settings)  # type: ignore[method-assign]
    return cls


def _with_train_negatives(fn: Any) -> Any:
    def settings(self: RecBoleRecommender, ctx: RunContext) -> dict[str, Any]:
        out = fn(self, ctx)
        out.setdefault("train_neg_sample_args", {"distribution": "uniform", "sample_num": 1})
        return out

    return settings
