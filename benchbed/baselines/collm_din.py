"""DIN as CoLLM's authors built it (``RecEncoder_DIN``), as a RecBole sequential model.

Every choice follows a line of the authors' code (github.com/zyang1580/CoLLM, ``minigpt4/models/
rec_base_models.py`` unless named otherwise):

* three 64-dim tables: user id, target item id, and a *separate* table for the history items
  (``RecEncoder_DIN.__init__``: ``emb_dim = args.embedding_size//3``; ``embed_layers`` for uid and iid,
  ``sequence_embed_layers`` for ``his``), ``embedding_size: 192`` in ``train_configs/
  collm_pretrain_din_ood_cc.yaml``. RecBole's DIN instead shares one item table and has no user id.
* target attention (``LocalActivationUnit``): input ``[q, h, q - h, q * h]`` per history position, then
  Linear(4d, 64) -> Dice -> Linear(64, 16) -> Linear(16, 1) (``AttentionSequencePoolingLayer``:
  ``hidden_unit=[64, 16]``; ``FullyConnectedLayer`` puts no activation after its last Linear; no dropout);
  the raw score, no softmax; padding positions (item id 0) get score 0 (``masked_fill(mask, 0)``) and the
  pooled history is the score-weighted sum (``torch.matmul(attention_score, user_behavior)``).
* the scorer reads ``[item, pooled history, user]`` (``torch.cat([item_emb, browse_atten, user_emb])``)
  through ``FullyConnectedLayer(hidden_unit=[200, 80, 1], activation='dice', dropout=args.drop, dice_dim=2)``:
  Linear(3d, 200) -> Dice -> Dropout -> Linear(200, 80) -> Dice -> Dropout -> Linear(80, 1); ``drop: 0.2`` in
  the yaml. The authors end with a sigmoid (``sigmoid = True``); here the logit is returned and the loss is
  BCE-with-logits, the same objective computed stably (RecBole's DIN does the same).
* Dice (``Dice``): ``alpha * (1 - p) * x + p * x`` with ``p = sigmoid(BatchNorm(x))``, BatchNorm eps 1e-8 and
  ``alpha`` initialised to 0 (in the attention unit the BatchNorm runs over batch and positions, padding
  included, as ``dim=3`` does).
* Xavier-normal init of every Linear weight and Embedding table, zero biases (``_init_weights``).
* history = the last 10 of the user's earlier positives in file order (``sas_seq[:, -10:]`` in
  ``minigpt4rec_v2.encode_recdata_v2``; :mod:`benchbed.baselines.collm_history`).

Training (optimizer, lr, weight decay, batch, epochs, patience) is set by the ``din`` baseline's ctr defaults
(``benchbed.baselines.recbole_din.DIN``) and run by RecBole's trainer.
"""

from __future__ import annotations

from benchbed.compat import recbole_shims

recbole_shims.apply()

import torch  # noqa: E402
from recbole.model.abstract_recommender import SequentialRecommender  # noqa: E402
from torch import nn  # noqa: E402

from benchbed.baselines.pointwise_bce import LabelBCE  # noqa: E402

ATTENTION_HIDDEN = (64, 16)  # AttentionSequencePoolingLayer: LocalActivationUnit(hidden_unit=[64, 16])
DICE_EPS = 1e-8  # Dice: BatchNorm1d(emb_size, eps=epsilon), epsilon=1e-8


class Dice(nn.Module):
    """DIN's data-adaptive activation; ``alpha`` starts at 0 (the authors' ``torch.zeros``)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(width, eps=DICE_EPS)
        self.alpha = nn.Parameter(torch.zeros(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:  # (B, T, C): normalise each channel over batch and positions
            p = torch.sigmoid(self.bn(x.transpose(1, 2))).transpose(1, 2)
        else:
            p = torch.sigmoid(self.bn(x))
        return self.alpha * (1 - p) * x + p * x


def dice_mlp(width_in: int, hidden: list[int], dropout: float | None) -> nn.Sequential:
    """The authors' ``FullyConnectedLayer`` with Dice: Linear, then (Dice, Dropout, Linear) per width."""
    layers: list[nn.Module] = [nn.Linear(width_in, hidden[0])]
    for a, b in zip(hidden[:-1], hidden[1:], strict=True):
        layers.append(Dice(a))
        if dropout is not None:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers)


class TargetAttention(nn.Module):
    """Unnormalised target attention; padding scores 0; returns the score-weighted sum of the history."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.unit = dice_mlp(4 * dim, list(ATTENTION_HIDDEN), None)
        self.out = nn.Linear(ATTENTION_HIDDEN[-1], 1)

    def scores(self, query: torch.Tensor, history: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        q = query.unsqueeze(1).expand_as(history)
        x = torch.cat([q, history, q - history, q * history], dim=-1)
        return self.out(self.unit(x)).squeeze(-1).masked_fill(pad, 0.0)  # (B, T)

    def forward(self, query: torch.Tensor, history: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        return torch.bmm(self.scores(query, history, pad).unsqueeze(1), history).squeeze(1)


class CoLLMDIN(LabelBCE, SequentialRecommender):
    """CoLLM's ``RecEncoder_DIN``; ``predict`` returns the logit, the loss is BCE-with-logits on the label."""

    def __init__(self, config, dataset):  # type: ignore[no-untyped-def]
        super().__init__(config, dataset)
        self.dim = int(config["embedding_size"]) // 3  # 192 // 3 = 64 per feature
        hidden = [int(h) for h in config["mlp_hidden_size"]] + [1]  # [200, 80] + [1]
        self.user_embedding = nn.Embedding(dataset.num(self.USER_ID), self.dim)
        self.item_embedding = nn.Embedding(self.n_items, self.dim)
        self.history_embedding = nn.Embedding(self.n_items, self.dim)  # no padding_idx: masked by score
        self.attention = TargetAttention(self.dim)
        self.scorer = dice_mlp(3 * self.dim, hidden, float(config["dropout_prob"]))
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.xavier_normal_(m.weight)

    def features(self, user: torch.Tensor, item: torch.Tensor, seq: torch.Tensor) -> torch.Tensor:
        """``[item, pooled history, user]`` (the authors' ``all_encode``, what CoLLM feeds its LLM)."""
        target = self.item_embedding(item)
        pooled = self.attention(target, self.history_embedding(seq), seq == 0)
        return torch.cat([target, pooled, self.user_embedding(user)], dim=-1)

    def forward(self, user: torch.Tensor, item: torch.Tensor, seq: torch.Tensor) -> torch.Tensor:
        return self.scorer(self.features(user, item, seq)).squeeze(-1)

    def _logits(self, interaction):  # type: ignore[no-untyped-def]
        return self.forward(interaction[self.USER_ID], interaction[self.ITEM_ID], interaction[self.ITEM_SEQ])

    def calculate_loss(self, interaction):  # type: ignore[no-untyped-def]
        return self.label_loss(self._logits(interaction), interaction)

    def predict(self, interaction):  # type: ignore[no-untyped-def]
        return self._logits(interaction)
