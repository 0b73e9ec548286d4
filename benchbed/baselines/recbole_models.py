"""ID baselines trained by RecBole on benchbed's split and scored through benchbed's ``Recommender`` API.

Each class is a thin description: which RecBole model, whether it is pointwise (trains on labels for
``ctr``) or sequential, its hyper-parameters with the source of each default, and how to read its user /
item / sequence embeddings. Training, files and id maps live in :mod:`benchbed.baselines.recbole_adapter`.

The common parameters and the training/scoring machinery: :mod:`benchbed.baselines.recbole_base`.

Task defaults (``task_defaults``, merged under the user's parameters by ``build_method(..., task=...)``): on
``ctr`` the four CF models CoLLM pretrains (``mf``, ``lightgcn``, ``sasrec``, ``din``) train pointwise with
BCE on the row labels, with the settings of CoLLM's baseline scripts (``../shared/PROTOCOLS.md``, CoLLM,
"Settings in the authors' baseline scripts"): Adam weight decay 1e-4, patience 50 and batch 1024 (the final
runs; the grids used 100 and 2048), at most 5000 epochs, and each model's lr / size. RecBole-style defaults
(patience 10, no weight decay) stop far earlier and give a weaker baseline than the paper's.
"""

from __future__ import annotations

import copy
import dataclasses
import keyword
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchbed.api import RunContext
from benchbed.baselines.recbole_adapter import model_property_defaults, recbole_model_class
from benchbed.baselines.recbole_base import (
    CTR_COMMON,
    CTR_SOURCE,
    HISTORY_SPEC,
    SCORE_BATCH,
    ReadsHistory,
    RecBoleParams,
    RecBoleRecommender,
    as_f32,
)
from benchbed.cards import id_baseline
from benchbed.errors import ConfigError
from benchbed.param_sets import ParamSet, param
from benchbed.params import Param


# ------------------------------------------------------------------------------------------------------
# The named baselines
# ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MFBPRParams(RecBoleParams):
    """The common RecBole parameters and BPR's embedding size."""

    dim: int = 64  # RecBole BPR embedding_size default


class MFBPR(RecBoleRecommender):
    """MF with BPR loss (RecBole ``BPR``); a ranking model: on ctr it learns from positive rows only."""

    name = "mf-bpr"
    card = id_baseline("BPR-MF (Rendle et al., UAI 2009), RecBole 1.2.1", {"ctr", "topk"})
    recbole_model = "BPR"
    Params = MFBPRParams
    p: MFBPRParams
    param_keys = {"dim": "embedding_size"}


@dataclass(frozen=True)
class MFParams(RecBoleParams):
    """The common RecBole parameters and the MF embedding size (CoLLM's)."""

    dim: int = 256  # CoLLM MF d=256 (PROTOCOLS.md)


class MFPointwise(RecBoleRecommender):
    """MF trained pointwise with BCE on the labels, as CoLLM pretrains it (:class:`PointwiseMF`)."""

    name = "mf"
    card = id_baseline("MF with BCE, CoLLM's CF model (seed 002)", {"ctr", "topk"}, code="zyang1580/CoLLM")
    pointwise = True
    score_kind = "logit"
    Params = MFParams
    p: MFParams
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


@dataclass(frozen=True)
class LightGCNParams(RecBoleParams):
    """The common RecBole parameters, the graph model's sizes and which loss it trains."""

    dim: int = 64  # RecBole LightGCN default
    n_layers: int = 2  # CoLLM LightGCN 2 layers (PROTOCOLS.md); also RecBole's default
    reg_weight: float = 1e-5  # RecBole default
    # RecBole's LightGCN is pairwise; ctr: "bce" (CoLLM)
    loss: str = param("bpr", Param(kind="str", choices=("bpr", "bce"), help="bpr (RecBole) | bce on labels"))


class LightGCN(RecBoleRecommender):
    """LightGCN: BPR (RecBole's) or pointwise BCE on labels (CoLLM's, on ctr); exports propagated embeddings.

    ``loss="bce"`` trains :class:`~benchbed.baselines.pointwise_lightgcn.PointwiseLightGCN` (graph of the
    positive rows, BCE on every labeled row), the default on ``ctr``; ``loss="bpr"`` RecBole's own model.
    """

    name = "lightgcn"
    card = id_baseline(
        "LightGCN (He et al., SIGIR 2020), RecBole 1.2.1; CoLLM's BCE form on ctr",
        {"ctr", "topk"},
        variants=["loss=bpr", "loss=bce"],
    )
    recbole_model = "LightGCN"
    Params = LightGCNParams
    p: LightGCNParams
    param_keys = {"dim": "embedding_size", "n_layers": "n_layers", "reg_weight": "reg_weight"}
    # CoLLM baseline_train_lightgcn_ood.py final run: lr 1e-2, wd 1e-4, d 64, 2 GCN layers, BCE on labels;
    # no embedding L2 term besides Adam's weight decay (so reg_weight 0)
    task_defaults = {
        "ctr": {**CTR_COMMON, "lr": 1e-2, "dim": 64, "n_layers": 2, "reg_weight": 0.0, "loss": "bce"}
    }
    task_defaults_source = {"ctr": CTR_SOURCE}

    def is_pointwise(self) -> bool:
        return self.p.loss == "bce"

    def _model_ref(self) -> Any:
        if self.p.loss == "bce":
            from benchbed.baselines.pointwise_lightgcn import PointwiseLightGCN

            return PointwiseLightGCN
        return self.recbole_model

    def embeddings(self) -> dict[str, np.ndarray | None]:
        import torch

        s = self._require()
        with torch.no_grad():
            user_all, item_all = s.model.forward()
        return {"user": as_f32(user_all)[s.user_map], "item": as_f32(item_all)[s.item_map], "sequence": None}


@dataclass(frozen=True)
class MultiVAEParams(RecBoleParams):
    """The common RecBole parameters and Mult-VAE's (RecBole's defaults)."""

    latent_dimension: int = 128  # RecBole default
    hidden: list[int] = param([600])  # RecBole mlp_hidden_size default
    dropout: float = 0.5  # RecBole dropout_prob default
    anneal_cap: float = 0.2  # RecBole default
    total_anneal_steps: int = 200000  # RecBole default


class MultiVAE(RecBoleRecommender):
    """Multi-VAE (RecBole); ranks from the user's training items, so ``histories`` are not used.

    Export: the item vector is the decoder's output row plus its bias, the user vector the decoder's
    last hidden layer plus a constant 1, so ``user @ item.T`` reproduces the model's logits exactly.
    """

    name = "multivae"
    card = id_baseline("Mult-VAE (Liang et al., WWW 2018), RecBole 1.2.1", {"ctr", "topk"})
    recbole_model = "MultiVAE"
    Params = MultiVAEParams
    p: MultiVAEParams
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
        user = np.concatenate([as_f32(z), np.ones((len(users), 1), np.float32)], axis=1)
        item = np.concatenate([as_f32(last.weight), as_f32(last.bias)[:, None]], axis=1)[s.item_map]
        return {"user": user, "item": item, "sequence": None}


@dataclass(frozen=True)
class SASRecParams(RecBoleParams, ReadsHistory):
    """The common RecBole parameters, the transformer's sizes, its loss and which history it reads."""

    dim: int = 64  # CoLLM SASRec d=64 (PROTOCOLS.md); RecBole hidden_size default
    max_len: int = 25  # CoLLM SASRec maxlen 25 (PROTOCOLS.md); RecBole: 50
    n_layers: int = 2  # RecBole default
    n_heads: int = 2  # RecBole default
    inner_size: int = 256  # RecBole default
    dropout: float = 0.5  # RecBole hidden_dropout_prob and attn_dropout_prob default
    # RecBole default; ctr: "BCE" (CoLLM)
    loss_type: str = param("CE", Param(kind="str", choices=("CE", "BPR", "BCE"), help="BCE = on row labels"))
    history: str = param("split", HISTORY_SPEC)  # ctr: "file" (CoLLM, see below)


class SASRec(RecBoleRecommender):
    """SASRec: CE over all items (RecBole's) or pointwise BCE on labels (CoLLM's, on ctr).

    ``loss_type="BCE"`` trains :class:`~benchbed.baselines.pointwise_sasrec.PointwiseSASRec` (BCE of
    <SASRec(history), e_item> on every labeled row, empty histories included), the default on ``ctr``;
    ``CE``/``BPR`` are RecBole's next-item losses. Scores use the history passed with each request.

    Export: item = the item embedding table; user = sequence = SASRec's output at the last position of
    the user's training sequence (positives only when trained on labels), as CoLLM feeds it to the LLM.
    """

    name = "sasrec"
    card = id_baseline(
        "SASRec (Kang and McAuley, ICDM 2018), RecBole 1.2.1; CoLLM's CF model", {"ctr", "topk"}
    )
    recbole_model = "SASRec"
    sequential = True
    min_history = 1  # RecBole's SASRec reads the output at position length-1
    Params = SASRecParams
    p: SASRecParams
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
        return self.p.loss_type == "BCE"

    def history_minimum(self) -> int:
        return 0 if self.is_pointwise() else self.min_history  # CoLLM trains rows without history too

    def _model_ref(self) -> Any:
        if self.is_pointwise():
            from benchbed.baselines.pointwise_sasrec import PointwiseSASRec

            return PointwiseSASRec
        return self.recbole_model

    def recbole_settings(self, ctx: RunContext) -> dict[str, Any]:
        out = super().recbole_settings(ctx)
        out["hidden_dropout_prob"] = out["attn_dropout_prob"] = self.p.dropout
        if self.p.loss_type == "BPR":
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
                    as_f32(
                        s.model.forward(
                            torch.as_tensor(seq, device=dev), torch.as_tensor(lengths, device=dev)
                        )
                    )
                )
        return np.concatenate(out) if out else np.zeros((0, self.p.dim), np.float32)

    def embeddings(self) -> dict[str, np.ndarray | None]:
        s = self._require()
        seq = self.encode(self._train_histories(int(s.config["MAX_ITEM_LIST_LENGTH"])))
        return {"user": seq, "item": as_f32(s.model.item_embedding.weight)[s.item_map], "sequence": seq}


# ------------------------------------------------------------------------------------------------------
# recbole:<Model>
# ------------------------------------------------------------------------------------------------------
def recbole_passthrough(model_name: str) -> type[RecBoleRecommender]:
    """A baseline class for any RecBole general, sequential or context-aware model, by its RecBole name.

    Parameters: the common ones plus the model's own RecBole keys under their RecBole names, with
    RecBole's defaults (``properties/model/<Model>.yaml``): :func:`passthrough_params`.
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
        "Params": passthrough_params(model_name, own, sequential),
        "param_keys": {k: k for k in own},
        "__doc__": f"RecBole {model_name} ({kind.name.lower()}) trained on benchbed's split.",
    }
    cls: type[RecBoleRecommender] = type(f"RecBole_{model_name}", (RecBoleRecommender,), attrs)
    if sequential and own.get("loss_type") == "BPR":
        cls.recbole_settings = _with_train_negatives(cls.recbole_settings)  # type: ignore[method-assign]
    return cls


def passthrough_params(model_name: str, own: dict[str, Any], sequential: bool) -> type[ParamSet]:
    """The parameters of ``recbole:<Model>``, a dataclass made when the class is: the common ones (typed,
    read by the base class), the model's own RecBole keys with RecBole's defaults (typed ``Any``: benchbed
    passes them on and reads none), then ``max_len`` for a sequential model.

    A dataclass and not a plain ``defaults`` dict, so ``self.p`` is a :class:`RecBoleParams` (and a
    :class:`ReadsHistory` for a sequential model) like every other RecBole baseline's. A RecBole key that is
    not a Python name (DiffRec's ``time-aware``) cannot be a field: it stays a parameter (in ``defaults``,
    so in ``self.params`` and passed on to RecBole) without an attribute on the view.
    """
    values = {**own, **({"max_len": 50} if sequential else {})}
    declared = {**RecBoleParams.default_values(), **values}  # the order and values of the old defaults dict

    def default_values(cls: type[ParamSet]) -> dict[str, Any]:
        return copy.deepcopy(declared)

    made: type[ParamSet] = dataclasses.make_dataclass(
        f"RecBole_{model_name}Params",
        [(k, Any, param(v)) for k, v in values.items() if k.isidentifier() and not keyword.iskeyword(k)],
        bases=(RecBoleParams, ReadsHistory) if sequential else (RecBoleParams,),
        namespace={"default_values": classmethod(default_values)},
        frozen=True,
    )
    return made


def _with_train_negatives(fn: Any) -> Any:
    def settings(self: RecBoleRecommender, ctx: RunContext) -> dict[str, Any]:
        out = fn(self, ctx)
        out.setdefault("train_neg_sample_args", {"distribution": "uniform", "sample_num": 1})
        return out

    return settings
