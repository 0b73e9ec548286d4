"""LightGCN trained pointwise with BCE on the labels of (user, item, label) rows, as CoLLM pretrains it.

RecBole 1.2.1's ``LightGCN`` is pairwise only (BPR on a sampled negative), and its graph holds every training
row. CoLLM's LightGCN (``baseline_train_lightgcn_ood.py``, ``rec_gnndataset.getSparseGraph_mode_a2``) differs
in both: the graph is built from the *positive* training rows only (label > 0, symmetric D^-1/2 A D^-1/2, no
self loops) and the loss is BCE-with-logits of <u, i> on every labeled row, negatives included. RecBole has no
option for either, so this subclass keeps RecBole's propagation, export and trainer and changes the two.
On implicit data (every row a positive, one sampled negative per row) the same loss applies to the sampled
negatives' label 0.
"""

from __future__ import annotations

from benchbed.compat import recbole_shims

recbole_shims.apply()

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from recbole.model.general_recommender.lightgcn import LightGCN  # noqa: E402

from benchbed.baselines.pointwise_bce import LabelBCE  # noqa: E402


class PointwiseLightGCN(LabelBCE, LightGCN):
    """LightGCN on the positive-row graph, BCE on labels; ``predict`` returns logits."""

    def __init__(self, config, dataset):  # type: ignore[no-untyped-def]
        super().__init__(config, dataset)
        inter = dataset.inter_feat
        if self.LABEL in inter.interaction:  # labeled rows: the graph links positives only (CoLLM)
            keep = (inter[self.LABEL].numpy() > 0).nonzero()[0]
            users, items = inter[self.USER_ID].numpy()[keep], inter[self.ITEM_ID].numpy()[keep]
            self.interaction_matrix = sp.coo_matrix(
                (np.ones(len(users), dtype=np.float32), (users, items)), shape=(self.n_users, self.n_items)
            )
            self.norm_adj_matrix = self.get_norm_adj_mat().to(self.device)

    def calculate_loss(self, interaction):  # type: ignore[no-untyped-def]
        if self.restore_user_e is not None or self.restore_item_e is not None:
            self.restore_user_e, self.restore_item_e = None, None  # stale after a step (RecBole's rule)
        user, item = interaction[self.USER_ID], interaction[self.ITEM_ID]
        user_all, item_all = self.forward()
        logits = (user_all[user] * item_all[item]).sum(dim=-1)
        loss = self.label_loss(logits, interaction)
        if self.reg_weight:  # RecBole's ego-embedding L2 term; CoLLM uses Adam weight decay instead (0 here)
            ego = (self.user_embedding(user), self.item_embedding(item))
            reg = self.reg_loss(*ego, require_pow=self.require_pow)
            loss = loss + self.reg_weight * reg
        return loss
