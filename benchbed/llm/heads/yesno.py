"""The Yes/No head: scoring at the answer position, as the CoLLM code does it.

score = the logit of the first token of "Yes" at the last prompt position (mode ``yes``), trained with
BCE-with-logits on the label; ``yes-no`` = logit(Yes) - logit(No), i.e. the logit of P(Yes) renormalised over
{Yes, No} (TALLRec's scoring, used by zero-shot ICL). Only the last position goes through the LM head
(``logits_to_keep=1``): with a 30k-150k vocabulary that head is most of the cost otherwise.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from benchbed.errors import ConfigError
from benchbed.llm.inject import Batch
from benchbed.llm.injectors.base import ModelInputs

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


def answer_logits(
    model, inputs_embeds: torch.Tensor, batch: Batch, token_ids: Sequence[int], past_key_values=None
) -> torch.Tensor:
    """Logits of ``token_ids`` at the last position, (B, len(token_ids)), in float32."""
    out = model(
        inputs_embeds=inputs_embeds,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        past_key_values=past_key_values,
        use_cache=past_key_values is not None,
        logits_to_keep=1,
    )
    return out.logits[:, -1, list(token_ids)].float()


class YesNoHead:
    """CTR head: the answer tokens' logits at each row's last real position -> one score per row.

    Left padding (the default) keeps only the last column through the LM head (``logits_to_keep=1``); with
    right padding the distinct last positions of the batch go through it and each row takes its own."""

    def __init__(self, token_ids: Sequence[int], mode: str = "yes") -> None:
        if mode not in SCORE_MODES:
            raise ConfigError(f"score mode {mode!r}: expected one of {', '.join(SCORE_MODES)}")
        self.token_ids = list(token_ids)
        self.mode = mode

    def logits(self, model, inputs: ModelInputs, batch: Batch) -> torch.Tensor:
        """(B, len(token_ids)) float32 logits at each row's last real token, through the model's own head.

        (``benchbed.llm.batching.answer_logits_batch`` multiplies only the answer rows of the head: faster,
        but with LoRA it rounds differently, by ~1e-6 in AUC; the opt-in ``score_batching`` modes use it.)"""
        if batch.side == "left":
            out = model(**inputs.kwargs(), logits_to_keep=1)
            return out.logits[:, -1, self.token_ids].float()
        last = batch.last_pos
        keep, which = torch.unique(last, return_inverse=True)
        out = model(**inputs.kwargs(), logits_to_keep=keep)
        rows = torch.arange(len(batch), device=last.device)
        return out.logits[rows, which][:, self.token_ids].float()

    def scores(self, model, inputs: ModelInputs, batch: Batch) -> torch.Tensor:
        return to_score(self.logits(model, inputs, batch), self.mode)


def to_score(logits: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "yes":
        return logits[:, 0]
    if mode == "yes-no":
        return logits[:, 0] - logits[:, 1]
    raise ConfigError(f"score mode {mode!r}: expected one of {', '.join(SCORE_MODES)}")


def bce_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(scores, labels.to(scores.dtype))


@torch.no_grad()
def score_with_prefix_cache(
    model,
    embed_ids: Callable[[torch.Tensor], torch.Tensor],
    prefix_ids: np.ndarray,
    suffix_ids: Sequence[np.ndarray],
    token_ids: Sequence[int],
    *,
    batch_size: int = 64,
    mode: str = "yes",
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Score many continuations of one shared prefix (a user's prompt up to the candidate) computing the
    prefix's key/values once and reusing them for every candidate batch.

    Suffixes are left-padded after the prefix; the padding is masked and position ids continue from the
    prefix, so each score equals scoring prefix+suffix alone.
    """
    from transformers import DynamicCache

    prefix = torch.as_tensor(prefix_ids, dtype=torch.long, device=device)[None]
    n0 = prefix.shape[1]
    cache = DynamicCache()
    model(
        inputs_embeds=embed_ids(prefix),
        attention_mask=torch.ones_like(prefix),
        use_cache=True,
        past_key_values=cache,
        logits_to_keep=1,
    )
    scores = np.empty(len(suffix_ids), dtype=np.float64)
    for start in range(0, len(suffix_ids), batch_size):
        chunk = suffix_ids[start : start + batch_size]
        width = max(len(s) for s in chunk)
        ids = torch.zeros((len(chunk), width), dtype=torch.long, device=device)
        smask = torch.zeros((len(chunk), width), dtype=torch.long, device=device)
        for b, s in enumerate(chunk):
            ids[b, width - len(s) :] = torch.as_tensor(s, dtype=torch.long)
            smask[b, width - len(s) :] = 1
        mask = torch.cat([torch.ones((len(chunk), n0), dtype=torch.long, device=device), smask], dim=1)
        pos = (n0 + torch.cumsum(smask, dim=1) - 1).clamp(min=n0)
        batch_cache = copy.deepcopy(cache)
        batch_cache.batch_repeat_interleave(len(chunk))
        batch = Batch(
            rows=np.arange(len(chunk)),
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            slot_pos=torch.empty((len(chunk), 0), dtype=torch.long),
        )
        logits = answer_logits(model, embed_ids(ids), batch, token_ids, past_key_values=batch_cache)
        scores[start : start + len(chunk)] = to_score(logits, mode).cpu().numpy()
    return scores
