"""SASRec trained pointwise with BCE on the labels of (user, item, history, label) rows, as CoLLM trains it.

RecBole 1.2.1's ``SASRec`` trains next-item prediction only (``loss_type`` CE over all items, or BPR on a
sampled negative). CoLLM (``baseline_train_sasrec.py``) instead scores each labeled row as <SASRec(history),
e_item> and trains BCE-with-logits on the row's label, the history being the user's earlier positives (zero
padded, so rows with an empty history are trained too). This subclass keeps RecBole's transformer, data
loading and trainer and changes the loss; an empty history reads the output at the first (padding) position,
which is what CoLLM's zero-padded sequences give.
"""

from __future__ import annotations

from benchbed.compat import recbole_shims

recbole_shims.apply()

import torch  # noqa: E402
from recbole.model.sequential_recommender.sasrec import SASRec  # noqa: E402

from benchbed.baselines.pointwise_bce import LabelBCE  # noqa: E402

LOSS = "BCE"  # what ``loss_type`` says for this model (RecBole's own SASRec accepts only CE and BPR)


class PointwiseSASRec(LabelBCE, SASRec):
    """SASRec with BCE on labels; ``predict`` returns logits <seq_output, e_item>."""

    def __init__(self, config, dataset):  # type: ignore[no-untyped-def]
        asked = config["loss_type"]
        config["loss_type"] = "CE"  # RecBole's constructor rejects other names; the loss is replaced below
        try:
            super().__init__(config, dataset)
        finally:
            config["loss_type"] = asked
        self.loss_type = LOSS
        self.loss_fct = self.bce  # RecBole's name for the loss (its CE, replaced)

    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        return super().forward(item_seq, item_seq_len.clamp(min=1))  # empty history: the padding position

    def calculate_loss(self, interaction):  # type: ignore[no-untyped-def]
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        logits = (seq_output * self.item_embedding(interaction[self.ITEM_ID])).sum(dim=-1)
        return self.label_loss(logits, interaction)
