"""DIN (Zhou et al., KDD 2018) as CoLLM pretrains it, trained by RecBole on benchbed's split.

The model: CoLLM's ``RecEncoder_DIN`` (:mod:`benchbed.baselines.collm_din`), or RecBole's own DIN with
``arch: recbole``; the common parameters and the RecBole plumbing: :mod:`benchbed.baselines.recbole_base`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from benchbed.baselines.recbole_adapter import RecBoleSession
from benchbed.baselines.recbole_base import (
    CTR_COMMON,
    CTR_SOURCE,
    HISTORY_SPEC,
    ReadsHistory,
    RecBoleParams,
    RecBoleRecommender,
    as_f32,
)
from benchbed.cards import id_baseline
from benchbed.errors import ConfigError
from benchbed.param_sets import param
from benchbed.params import Param


@dataclass(frozen=True)
class DINParams(RecBoleParams, ReadsHistory):
    """The common RecBole parameters, the architecture and its sizes, and which history DIN reads."""

    # ctr: "collm" (CoLLM's RecEncoder_DIN)
    arch: str = param(
        "recbole", Param(kind="str", choices=("collm", "recbole"), help="collm = CoLLM's RecEncoder_DIN")
    )
    dim: int = 64  # CoLLM's CF embedding size for its CF models; RecBole DIN default is 10
    max_len: int = 10  # CoLLM DIN history 10 (PROTOCOLS.md)
    mlp_hidden: list[int] = param([256, 256, 256])  # RecBole default
    dropout: float = 0.0  # RecBole default
    history: str = param("split", HISTORY_SPEC)  # ctr: "file" (CoLLM)


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
    card = id_baseline(
        "DIN (Zhou et al., KDD 2018): CoLLM's DIN, or RecBole's (arch=recbole)",
        {"ctr", "topk"},
        variants=["arch=recbole"],
    )
    recbole_model = "DIN"
    score_kind = "logit"
    sequential = True
    pointwise = True
    Params = DINParams
    p: DINParams
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
        if self._collm() and self.p.dim < 3:
            raise ConfigError(
                f"method 'din': arch='collm' gives user, item and history tables dim // 3 each; dim must be "
                f">= 3, got {self.p.dim}"
            )

    def _collm(self) -> bool:
        return self.p.arch == "collm"

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
            return as_f32(s.model.item_embedding.weight)[s.item_map]
        dev = s.config["device"]
        with torch.no_grad():
            items = torch.as_tensor(s.item_map, device=dev).view(1, -1)
            sparse, _ = s.model.embedding_layer(torch.zeros(1, dtype=torch.long, device=dev), items)
        return as_f32(sparse["item"]).reshape(len(s.item_map), -1)

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
        history_table = as_f32(s.model.history_embedding.weight)[s.item_map]
        pooled = np.zeros_like(user)
        for u, h in enumerate(hist):
            if h:
                pooled[u] = history_table[h].mean(axis=0)
        own = as_f32(s.model.user_embedding.weight)[s.user_map]
        full_user = np.concatenate([user, pooled, own], axis=1)
        return {"user": full_user, "item": np.concatenate([item] * 3, axis=1), "sequence": full_user}
