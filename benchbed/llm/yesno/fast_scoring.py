"""Faster Yes/No scoring, same scores: token-budget batches and a two-row answer head (here), shared-prefix
reuse (``benchbed.llm.yesno.prefix_reuse``).

Where the time goes (``benchmarks/perf_llm_scoring.py``, tiny preset, 2 CPU cores; figures in its report):
- The LM head. ``logits_to_keep=1`` still multiplies the last hidden state by the whole output embedding
  (30,522 x 64 for ``tiny``: 2M multiply-adds per row, as much as ~15 prompt tokens through both layers),
  and scoring reads two of its rows (Yes, No). ``answer_logits_fast`` runs the backbone's decoder and takes
  the dot products with those two rows only; a row of a matmul does not depend on the others, so the
  logits are the same (bit-identical in our fp32 CPU checks), and so are the gradients in training.
- Padding. CTR prompts are 51-152 tokens (ml-100k, 10 history titles): random-order batches of 64 are ~21%
  padding, so length bucketing can save at most ~1.26x of the token work, less of the wall time (per-row
  and per-forward costs do not shrink with padding), and on a loaded machine with two intra-op threads
  the per-op wait for a descheduled thread swamps it. ``token_budget_batches`` sizes batches by padded
  tokens instead of rows: short rows are not scored in needlessly small batches, long ones not in
  oversized ones (on CPU, batches past a few thousand tokens fall out of cache and get slower).
- The shared prefix. The rows of one user's candidates (top-K over sampled items; CTR test rows of one
  user with the same history) share the prompt up to the target title, ~90 of ~110 tokens.
  ``prefix_reuse.plan_prefixes`` finds each group's common prefix; ``prefix_reuse.score_yesno_planned``
  encodes many groups' prefixes per forward and scores the suffixes of several groups per batch over the
  prefixes' key/values, read as one gather (or an ``expand`` view for one group), where the pre-kit scorer
  (kept as the reference in ``benchmarks/perf_llm_scoring.py``) deep-copied and repeated the cache for every
  batch of one user and ran the full LM head.

Every function here and in ``prefix_reuse`` gives the scores of the full, unpadded prompt through the
model's own forward and head (to float rounding, ~1e-7 in fp32: batch composition changes summation order),
which ``tests/test_llm_batching.py`` checks on the tiny Llama, a tiny GPT-2 and a LoRA-wrapped model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchbed.llm.backbone import facts
from benchbed.llm.injectors.base import ModelInputs
from benchbed.llm.injectors.prompts import Batch, EncodedPrompts, collate, splice
from benchbed.llm.yesno.head import answer_logits_full_head, to_score

# Padded tokens per forward. 2048 = ~19 CTR prompts of ~110 tokens. On the tiny preset (2 CPU cores, shared)
# 2048-4096 scored fastest, 1.3-1.5x the rows/s of the fixed 64-row batches (~7,000 tokens) the scorer used:
# bigger batches fall out of the CPU caches, smaller ones pay the per-forward overhead more often. A GPU wants
# a larger budget (not measured here).
DEFAULT_MAX_TOKENS = 2048
# Key/value positions (rows x (prefix + suffix width)) per suffix batch of prefix reuse; 8192 = ~55 candidates
# of ~20 tokens over a ~130-token prefix (4096-16384 measured within noise of each other).
DEFAULT_MAX_KV_TOKENS = 8192
# Families whose base model's last hidden state is exactly what the LM head multiplies (no logit scaling or
# soft-capping after the decoder), so two rows of the head give the full head's logits.
# Each is checked against the full head in tests/test_llm_batching.py; other families take the full head.
FAST_HEAD_FAMILIES = frozenset({"llama", "gpt2", "mistral", "qwen2"})
_LOGIT_POSTPROCESS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")

# vectors for a batch: {slot column: (B, H)} or None (text-only): what a scorer's ``vector_fn`` returns
VectorFn = Callable[[Batch], "dict[int, torch.Tensor] | None"]


@dataclass(frozen=True)
class YesNoCall:
    """What a Yes/No scoring pass reads besides the model, the prompts and the batching budgets: one bundle
    that ``score_yesno_rows`` and ``prefix_reuse.score_yesno_planned`` (and its prefix and suffix steps) take
    and hand on, so each entry point lists it once."""

    token_ids: Sequence[int]  # the answer tokens whose logits make the score (Yes, No)
    pad_id: int
    vector_fn: VectorFn | None = None  # slot vectors per batch; None: text-only prompts
    mode: str = "yes"  # ``yesno.head.to_score``'s mode
    device: str | torch.device = "cpu"


# --- batches by token budget ----------------------------------------------------------------------------
def token_budget_batches(
    lengths: np.ndarray, max_tokens: int = DEFAULT_MAX_TOKENS, *, max_rows: int | None = None
) -> list[np.ndarray]:
    """Rows sorted by length, cut so that each batch's padded size (rows x longest row) fits ``max_tokens``.

    A row longer than the budget is a batch of its own. Deterministic (stable sort), for scoring; training
    keeps ``injectors.prompts.bucket_batches`` (a fixed row count keeps the optimiser's batch size fixed).
    """
    n = len(lengths)
    if n == 0:
        return []
    if max_tokens < 1:
        raise ValueError(f"max_tokens={max_tokens}: expected a positive token budget")
    order = np.argsort(lengths, kind="stable")
    sorted_len = np.asarray(lengths)[order]
    batches: list[np.ndarray] = []
    start = 0
    cap = max_rows or n
    while start < n:
        end = start + 1
        # ascending lengths: the row being added is the batch's longest
        while end < n and end - start < cap and (end - start + 1) * int(sorted_len[end]) <= max_tokens:
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


# --- the two-row answer head ----------------------------------------------------------------------------
def fast_head_supported(model: Any) -> bool:
    """True when ``answer_logits_fast`` can skip the full LM head for ``model`` (a peft wrapper included)."""
    if facts.family(model) not in FAST_HEAD_FAMILIES:
        return False
    config = model.config
    if any(getattr(config, name, None) not in (None, 1, 1.0) for name in _LOGIT_POSTPROCESS):
        return False
    out = model.get_output_embeddings()
    return type(out) is torch.nn.Linear  # a LoRA-wrapped or custom head goes through the model's own forward


def answer_logits_fast(
    model: Any, inputs: ModelInputs, token_ids: Sequence[int], *, last_pos: torch.Tensor | None = None
) -> torch.Tensor:
    """Logits of ``token_ids`` at each row's answer position, (B, len(token_ids)) float32: what
    ``yesno.head.YesNoHead.logits`` returns, without multiplying by the rest of the vocabulary.

    ``last_pos`` (B,): each row's answer column (right padding); default the last column (left padding).
    Where ``fast_head_supported`` is False the model's own head runs (``yesno.head.answer_logits_full_head``).
    """
    if not fast_head_supported(model):
        return answer_logits_full_head(model, inputs, token_ids, last_pos)
    ids = list(token_ids)
    hidden = model.get_decoder()(**inputs.kwargs()).last_hidden_state
    h = hidden[:, -1] if last_pos is None else hidden[torch.arange(len(last_pos)), last_pos]
    head = model.get_output_embeddings()
    bias = None if head.bias is None else head.bias[ids]
    return F.linear(h, head.weight[ids], bias).float()


def answer_logits_batch(
    model: Any, inputs: ModelInputs, batch: Batch, token_ids: Sequence[int]
) -> torch.Tensor:
    """``answer_logits_fast`` at ``batch``'s answer positions, either padding side."""
    last = None if batch.side == "left" else batch.last_pos
    return answer_logits_fast(model, inputs, token_ids, last_pos=last)


def _yesno_scores(logits: torch.Tensor, mode: str) -> np.ndarray:
    return to_score(logits, mode).double().cpu().numpy()


def _embed(model: Any, batch: Batch, vector_fn: VectorFn | None) -> torch.Tensor:
    """The backbone's embeddings with ``vector_fn``'s slot vectors spliced in (as ``SlotVectors.inputs``)."""
    embeds = model.get_input_embeddings()(batch.input_ids)
    vec = vector_fn(batch) if vector_fn is not None else None
    return embeds if vec is None else splice(embeds, batch.slot_pos, vec)


def _inputs(model: Any, batch: Batch, vector_fn: VectorFn | None) -> ModelInputs:
    return ModelInputs(
        inputs_embeds=_embed(model, batch, vector_fn),
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
    )


@torch.no_grad()
def score_yesno_rows(
    model: Any,
    enc: EncodedPrompts,
    call: YesNoCall,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """``YesNoScorer.score`` with token-budget batches and the two-row head: Yes/No scores of ``rows``
    (default all) in that order."""
    idx = np.arange(len(enc)) if rows is None else np.asarray(rows, dtype=np.int64)
    out = np.empty(len(idx), dtype=np.float64)
    for part in token_budget_batches(enc.lengths[idx], max_tokens):
        batch = collate(enc, idx[part], call.pad_id, call.device)
        logits = answer_logits_batch(model, _inputs(model, batch, call.vector_fn), batch, call.token_ids)
        out[part] = _yesno_scores(logits, call.mode)
    return out
