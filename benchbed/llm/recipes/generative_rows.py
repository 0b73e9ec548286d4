"""The generative recipe's encoded prompt rows and its training batches (answers at the end, left padded)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from benchbed.llm.injectors.prompts import Batch, EncodedPrompts


@dataclass
class TrainBatch:
    """A left-padded batch of prompt+answer rows; ``labels`` (B, A) hold the answer tokens at the end."""

    batch: Batch
    labels: torch.Tensor
    users: torch.Tensor
    hist: torch.Tensor  # (B, L) history item ids, -1 padded

    def __len__(self) -> int:
        return len(self.batch)

    @property
    def n_tokens(self) -> int:
        return self.batch.n_tokens


@dataclass
class EncodedRows:
    enc: EncodedPrompts
    answer_len: np.ndarray  # 0 for prompts without answers (decoding)
    users: np.ndarray
    hist: np.ndarray
