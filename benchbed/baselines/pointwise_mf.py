"""Matrix factorization trained pointwise with BCE on labels, as CoLLM pretrains its MF, as a RecBole model.

RecBole 1.2.1 has no plain pointwise MF (BPR is pairwise; NeuMF adds an MLP), so this is the smallest
``GeneralRecommender`` that RecBole's data loaders, trainer and early stopping can drive: score = <u, i>,
loss = BCE-with-logits on the row's label (CTR data) or on a sampled negative (implicit data).
"""

from __future__ import annotations

from benchbed.compat import recbole_shims

recbole_shims.apply()

import torch  # noqa: E402
from recbole.model.abstract_recommender import GeneralRecommender  # noqa: E402
from recbole.model.init import xavier_normal_initialization  # noqa: E402
from torch import nn  # noqa: E402

from benchbed.baselines.pointwise_bce import LabelBCE  # noqa: E402


class PointwiseMF(LabelBCE, GeneralRecommender):
    """Dot-product MF, BCE on labels; ``predict`` returns logits (AUC only needs the order)."""

    def __init__(self, config, dataset):  # type: ignore[no-untyped-def]
        super().__init__(config, dataset)
        self.embedding_size = config["embedding_size"]
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_size)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size)
        self.apply(xavier_normal_initialization)

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        return (self.user_embedding(user) * self.item_embedding(item)).sum(dim=-1)

    def calculate_loss(self, interaction):  # type: ignore[no-untyped-def]
        logits = self.forward(interaction[self.USER_ID], interaction[self.ITEM_ID])
        return self.label_loss(logits, interaction)

    def predict(self, interaction):  # type: ignore[no-untyped-def]
        return self.forward(interaction[self.USER_ID], interaction[self.ITEM_ID])

    def full_sort_predict(self, interaction):  # type: ignore[no-untyped-def]
        user_e = self.user_embedding(interaction[self.USER_ID])
        return (user_e @ self.item_embedding.weight.T).view(-1)
