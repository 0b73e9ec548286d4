"""The Yes/No head: scoring at the answer position, as the CoLLM code does it.

score = the logit of the first token of "Yes" at the last prompt position (mode ``yes``), trained with
BCE-with-logits on the label; ``yes-no`` = logit(Yes) - logit(No), i.e. the logit of P(Yes) renormalised over
{Yes, No} (TALLRec's scoring, used by zero-shot ICL). Only the last position goes through the LM head
(``logits_to_keep=1``): with a 30k-150k vocabulary that head is most of the cost otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from benchbed.errors import ConfigError
from benchbed.llm.injectors.base import ModelInputs
from benchbed.llm.injectors.prompts import Batch

SCORE_MODES = ("yes", "yes-no")


def answer_token_ids(
    tokenizer, positive: str = "Yes", negative: str = "No", *, backbone: str = ""
) -> tuple[int, int]:
    """First token of each answer word; a one-line error when the vocabulary cannot express them."""
    unk = getattr(tokenizer, "unk_token_id", None)
    ids = []
    for word in (positive, negative):
        toks = tokenizer(word, add_special_tokens=False)["input_ids"]
        if not toks or (unk is not None and toks[0] == unk):
            raise ConfigError(
                f"backbone {backbone or 'tokenizer'} has no token for the answer {word!r} (it encodes to "
                f"{tokenizer.convert_ids_to_tokens(toks[:1]) or 'nothing'}); use --backbone tiny or a "
                f"causal LM whose vocabulary has it"
            )
        ids.append(int(toks[0]))
    if ids[0] == ids[1]:
        raise ConfigError(
            f"backbone {backbone or 'tokenizer'}: {positive!r} and {negative!r} start with the same token"
        )
    return ids[0], ids[1]


def check_score_mode(mode: str) -> str:
    """``mode`` when it is one of ``SCORE_MODES``; a one-line error otherwise."""
    if mode not in SCORE_MODES:
        raise ConfigError(f"score mode {mode!r}: expected one of {', '.join(SCORE_MODES)}")
    return mode


def answer_logits_full_head(
    model, inputs: ModelInputs, token_ids: Sequence[int], last_pos: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, len(token_ids)) float32 logits of the answer tokens through the model's own LM head.

    ``last_pos`` None: at the last column (left padding; only it goes through the head, ``logits_to_keep=1``).
    Else each row's own column (right padding): the batch's distinct answer columns go through the head and
    each row takes its own."""
    ids = list(token_ids)
    if last_pos is None:
        return model(**inputs.kwargs(), logits_to_keep=1).logits[:, -1, ids].float()
    keep, which = torch.unique(last_pos, return_inverse=True)
    out = model(**inputs.kwargs(), logits_to_keep=keep)
    rows = torch.arange(len(last_pos), device=last_pos.device)
    return out.logits[rows, which][:, ids].float()


def answer_logits(
    model, inputs_embeds: torch.Tensor, batch: Batch, token_ids: Sequence[int], past_key_values=None
) -> torch.Tensor:
    """Logits of ``token_ids`` at the last position, (B, len(token_ids)), in float32 (left padding)."""
    inputs = ModelInputs(inputs_embeds, batch.attention_mask, batch.position_ids, past_key_values)
    return answer_logits_full_head(model, inputs, token_ids)


class YesNoHead:
    """CTR head: the answer tokens' logits at each row's last real position -> one score per row.

    Left padding (the default) keeps only the last column through the LM head (``logits_to_keep=1``); with
    right padding the distinct last positions of the batch go through it and each row takes its own."""

    def __init__(self, token_ids: Sequence[int], mode: str = "yes") -> None:
        self.token_ids = list(token_ids)
        self.mode = check_score_mode(mode)

    def logits(self, model, inputs: ModelInputs, batch: Batch) -> torch.Tensor:
        """(B, len(token_ids)) float32 logits at each row's last real token, through the model's own head.

        (``benchbed.llm.yesno.fast_scoring.answer_logits_batch`` multiplies only the answer rows of the head:
        faster, but with LoRA it rounds differently, by ~1e-6 in AUC; the opt-in ``score_batching`` modes
        use it.)"""
        last = None if batch.side == "left" else batch.last_pos
        return answer_logits_full_head(model, inputs, self.token_ids, last)

    def scores(self, model, inputs: ModelInputs, batch: Batch) -> torch.Tensor:
        return to_score(self.logits(model, inputs, batch), self.mode)


def to_score(logits: torch.Tensor, mode: str) -> torch.Tensor:
    """One score per row from the (Yes, No) logits: logit(Yes), or logit(Yes) - logit(No)."""
    if check_score_mode(mode) == "yes":
        return logits[:, 0]
    return logits[:, 0] - logits[:, 1]


def bce_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(scores, labels.to(scores.dtype))
