"""What CoLLM's four CF models share as RecBole models (:mod:`~benchbed.baselines.pointwise_mf`,
:mod:`~benchbed.baselines.pointwise_lightgcn`, :mod:`~benchbed.baselines.pointwise_sasrec`,
:mod:`~benchbed.baselines.collm_din`): RecBole feeds them labeled rows (``InputType.POINTWISE``) and each
learns BCE-with-logits of its logit against the row's label (``LABEL_FIELD``), as CoLLM's baseline scripts
train them. Each model keeps its own logit.
"""

from __future__ import annotations

from benchbed.compat import recbole_shims

recbole_shims.apply()

import torch  # noqa: E402
from recbole.utils import InputType  # noqa: E402
from torch import nn  # noqa: E402


class LabelBCE:
    """Mixin placed before the RecBole model class (``class PointwiseMF(LabelBCE, GeneralRecommender)``):
    the pointwise input type, the label field and the loss. It creates no parameter and draws no random
    number, so the model it is mixed into initialises as it would alone."""

    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):  # type: ignore[no-untyped-def]
        super().__init__(config, dataset)
        self.LABEL = config["LABEL_FIELD"]
        self.bce = nn.BCEWithLogitsLoss()

    def label_loss(self, logits: torch.Tensor, interaction) -> torch.Tensor:  # type: ignore[no-untyped-def]
        """BCE-with-logits of ``logits`` against the rows' labels."""
        return self.bce(logits, interaction[self.LABEL].float())
