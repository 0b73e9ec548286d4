"""The Yes/No head for encoder backbones: the answer read at a masked position, as a masked LM would fill it.

A decoder reads "Yes"/"No" from the next-token logits after ``#Answer:`` (``yesno.head``). An encoder has no
next token, so the prompt ends with ``#Answer: [MASK] [SEP]`` and the answer is read at the ``[MASK]``
position, as BERT-class recommenders score a cloze prompt (RecBench, NeurIPS'25, treats such encoders as
LLM recommenders for CTR).

How the head is built (all-MiniLM-L6-v2 is a sentence-transformers checkpoint and ships no MLM head: no
``cls.predictions`` transform or bias): the logit of an answer token is the dot product of the last
layer's hidden state at ``[MASK]`` with that token's row of the model's own input word embeddings, the decoder
of BERT's MLM head tied to the word embeddings with its transform left out (the last layer's output is
already layer-normalised) and its bias zero. The head adds no parameter, so nothing in it is initialised at
random and nothing outside LoRA (and CoLLM's mapping) is trained; a run states the head as ``HEAD_INFO``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from benchbed.errors import ConfigError
from benchbed.llm.injectors.base import ModelInputs
from benchbed.llm.injectors.prompts import Batch, EncodedPrompts
from benchbed.llm.yesno.head import check_score_mode, to_score

HEAD_NAME = "masked-tied"
HEAD_INFO: dict[str, Any] = {
    "name": HEAD_NAME,
    "position": "[MASK] after the answer cue (prompt + [MASK] [SEP])",
    "decoder": "tied to the input word embeddings (frozen), no transform, bias 0",
    "init": "no new parameters (the checkpoint ships no MLM head)",
}


def mask_suffix(tokenizer: Any, backbone: str = "") -> list[int]:
    """The ids appended to every encoder prompt: ``[MASK]`` then ``[SEP]`` (when the tokenizer has one)."""
    mask = getattr(tokenizer, "mask_token_id", None)
    if mask is None:
        raise ConfigError(
            f"backbone {backbone or 'tokenizer'} is an encoder without a mask token; the Yes/No CTR methods "
            f"read the answer at a [MASK] position: use a masked-LM encoder (BERT, MiniLM, RoBERTa)"
        )
    sep = getattr(tokenizer, "sep_token_id", None)
    return [int(mask)] + ([int(sep)] if sep is not None else [])


def append_mask(enc: EncodedPrompts, suffix: Sequence[int]) -> EncodedPrompts:
    """``enc`` with ``suffix`` appended to every row (in place; slot positions are unchanged)."""
    tail = np.asarray(list(suffix), dtype=np.int64)
    enc.ids = [np.concatenate([ids, tail]) for ids in enc.ids]
    return enc


class MaskedYesNoHead:
    """CTR head for encoders: the answer tokens' tied-embedding logits at each row's ``[MASK]`` position.

    ``offset`` = how many tokens follow ``[MASK]`` (1 for ``[SEP]``). Same interface as ``YesNoHead``."""

    def __init__(self, token_ids: Sequence[int], mode: str = "yes", offset: int = 1) -> None:
        self.token_ids = list(token_ids)
        self.mode = check_score_mode(mode)
        self.offset = int(offset)

    def logits(self, model: Any, inputs: ModelInputs, batch: Batch) -> torch.Tensor:
        kwargs = inputs.kwargs()
        kwargs.pop("use_cache", None)  # encoders keep no cache
        hidden = model(**kwargs).last_hidden_state  # (B, L, H)
        pos = batch.last_pos - self.offset
        h = hidden[torch.arange(len(batch), device=hidden.device), pos]
        words = model.get_input_embeddings().weight[self.token_ids]  # (A, H), tied and frozen
        return (h @ words.T).float()

    def scores(self, model: Any, inputs: ModelInputs, batch: Batch) -> torch.Tensor:
        return to_score(self.logits(model, inputs, batch), self.mode)
