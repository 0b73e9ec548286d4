"""Shared-prefix reuse for Yes/No scoring: rows whose prompts share a prefix (one user's candidates; CTR test
rows of one user with the same history) encode it once and score only their suffixes over its key/values.

``plan_prefixes`` finds each group's common prefix; ``score_yesno_planned`` encodes many groups' prefixes per
forward and scores the suffixes of several groups per batch over the prefixes' key/values, read as one
gather (or an ``expand`` view for one group). The scores equal the full prompt's to float rounding
(``tests/test_llm_batching.py``); where the time goes: ``benchbed.llm.yesno.fast_scoring``'s module doc.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from benchbed.compat.hf_cache import cache_kwarg
from benchbed.llm.backbone import facts
from benchbed.llm.injectors.base import ModelInputs
from benchbed.llm.injectors.prompts import EncodedPrompts, collate
from benchbed.llm.yesno.fast_scoring import (
    DEFAULT_MAX_KV_TOKENS,
    DEFAULT_MAX_TOKENS,
    YesNoCall,
    _embed,
    _yesno_scores,
    answer_logits_fast,
    fast_head_supported,
    score_yesno_rows,
    token_budget_batches,
)

# Families checked to give the full-prompt scores from a prefix cache plus explicit position ids (rotary or
# learned absolute positions); Mistral's sliding-window layers are left out.
PREFIX_FAMILIES = frozenset({"llama", "gpt2", "qwen2"})


@dataclass
class PrefixPlan:
    """Rows grouped by a shared prompt prefix.

    Row ``r`` with ``group[r] = g >= 0`` is the first ``prefix_len[g]`` tokens of
    ``enc.ids[representative[g]]`` followed by its own suffix; ``group[r] = -1``: the row is scored whole
    (alone in its key, or a prefix too short to pay).
    """

    group: np.ndarray  # (n_rows,) int64
    prefix_len: np.ndarray  # (n_groups,) int64
    representative: np.ndarray  # (n_groups,) int64 row indices

    @property
    def n_groups(self) -> int:
        return len(self.prefix_len)

    def shared_tokens(self, lengths: np.ndarray) -> float:
        """Share of all prompt tokens that prefix reuse does not recompute."""
        counts = np.bincount(self.group[self.group >= 0], minlength=self.n_groups)
        saved = int(((counts - 1) * self.prefix_len).sum())
        return saved / max(int(lengths.sum()), 1)


def _common_prefix(a: np.ndarray, b: np.ndarray, limit: int) -> int:
    m = min(limit, len(b))
    diff = np.flatnonzero(a[:m] != b[:m])
    return int(diff[0]) if len(diff) else m


def plan_prefixes(
    enc: EncodedPrompts,
    keys: Sequence[Hashable],
    *,
    shared_slots: Sequence[str] = (),
    min_group: int = 2,
    min_prefix: int = 8,
) -> PrefixPlan:
    """Group rows by ``keys`` (e.g. (user, history, template)) and find each group's common token prefix.

    Equal token ids do not make equal inputs where a slot vector differs, so the prefix stops before the first
    slot not named in ``shared_slots`` (slots whose vector depends on the key only, e.g. ``user_emb`` when the
    key holds the user). Every row keeps at least its last token in the suffix (the answer position).
    """
    if len(keys) != len(enc):
        raise ValueError(f"{len(keys)} keys for {len(enc)} encoded rows")
    unknown = set(shared_slots) - set(enc.slot_names)
    if unknown:
        raise ValueError(f"shared slots {sorted(unknown)} are not among the prompt slots {enc.slot_names}")
    members: dict[Hashable, list[int]] = {}
    for r, key in enumerate(keys):
        members.setdefault(key, []).append(r)
    private = [j for j, name in enumerate(enc.slot_names) if name not in set(shared_slots)]
    group = np.full(len(enc), -1, dtype=np.int64)
    prefix_len: list[int] = []
    reps: list[int] = []
    for rows in members.values():
        if len(rows) < min_group:
            continue
        first = enc.ids[rows[0]]
        p = min(len(enc.ids[r]) for r in rows) - 1
        for r in rows[1:]:
            p = _common_prefix(first, enc.ids[r], p)
        if private:
            slots = enc.slot_pos[np.asarray(rows)][:, private]
            present = slots[slots >= 0]
            if len(present):
                p = min(p, int(present.min()))
        if p < min_prefix:
            continue
        group[rows] = len(prefix_len)
        prefix_len.append(p)
        reps.append(rows[0])
    return PrefixPlan(
        group=group,
        prefix_len=np.asarray(prefix_len, dtype=np.int64),
        representative=np.asarray(reps, dtype=np.int64),
    )


def prefix_supported(model: Any) -> bool:
    """Prefix reuse needs a decoder family whose attention takes a prefix cache and explicit positions."""
    return facts.family(model) in PREFIX_FAMILIES


def _layer_kv(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if hasattr(cache, "layers"):  # transformers >= 4.56
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))  # pragma: no cover - older transformers


def _prefix_cache(kv: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> Any:
    """A DynamicCache holding ``kv`` as its past, whose layers concatenate the new keys/values onto the
    past once per forward (``kv`` may be ``expand`` views: they are read, never copied into the cache)."""
    from transformers import DynamicCache

    cache = DynamicCache()
    if not hasattr(cache, "layers"):  # pragma: no cover - older transformers: copy in through update()
        for i, (k, v) in enumerate(kv):
            cache.update(k.contiguous(), v.contiguous(), i)
        return cache
    from transformers.cache_utils import DynamicLayer

    layers: list[Any] = []
    for k, v in kv:
        layer = DynamicLayer()
        layer.lazy_initialization(k, v)
        layer.keys, layer.values = k, v
        layers.append(layer)
    cache.layers = layers
    return cache


@dataclass
class _PrefixChunk:
    groups: np.ndarray  # global group ids, prefix-length order
    kv: list[tuple[torch.Tensor, torch.Tensor]]  # per layer (G, heads, W, head_dim), prefixes right-aligned
    mask: torch.Tensor  # (G, W) long


def _encode_prefixes(
    model: Any,
    enc: EncodedPrompts,
    plan: PrefixPlan,
    groups: np.ndarray,
    call: YesNoCall,
) -> _PrefixChunk:
    reps = plan.representative[groups]
    plen = plan.prefix_len[groups]
    slots = enc.slot_pos[reps]
    pref = EncodedPrompts(
        ids=[enc.ids[r][:p] for r, p in zip(reps, plen, strict=True)],
        slot_names=enc.slot_names,
        slot_pos=np.where(slots < plen[:, None], slots, -1),
    )
    batch = collate(pref, np.arange(len(groups)), call.pad_id, call.device)
    batch = dataclasses.replace(batch, rows=reps)  # vector_fn looks rows up by their index in the Rows
    from transformers import DynamicCache

    cache = DynamicCache()
    fast = fast_head_supported(model)
    decoder = model.get_decoder() if fast else model
    decoder(
        inputs_embeds=_embed(model, batch, call.vector_fn),
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        use_cache=True,
        **{cache_kwarg(): cache},
        **({} if fast else {"logits_to_keep": 1}),
    )
    return _PrefixChunk(groups=groups, kv=_layer_kv(cache), mask=batch.attention_mask)


def _score_yesno_suffixes(
    model: Any,
    enc: EncodedPrompts,
    plan: PrefixPlan,
    chunk: _PrefixChunk,
    rows: np.ndarray,
    call: YesNoCall,
) -> np.ndarray:
    """Yes/No scores of ``rows`` (all in ``chunk``'s groups) continuing from the chunk's prefix key/values."""
    local = np.empty(int(chunk.groups.max()) + 1, dtype=np.int64)
    local[chunk.groups] = np.arange(len(chunk.groups))
    g = local[plan.group[rows]]  # row -> position in the chunk
    plen = plan.prefix_len[plan.group[rows]]
    slots = enc.slot_pos[rows]
    suf = EncodedPrompts(
        ids=[enc.ids[r][p:] for r, p in zip(rows, plen, strict=True)],
        slot_names=enc.slot_names,
        slot_pos=np.where(slots >= plen[:, None], slots - plen[:, None], -1),
    )
    batch = collate(suf, np.arange(len(rows)), call.pad_id, call.device)
    batch = dataclasses.replace(batch, rows=rows)
    width = int(plen.max())  # prefixes are right-aligned in the chunk: the last `width` columns hold them all
    if (g == g[0]).all():  # one group: expand views, no copy until the forward concatenates
        sel = slice(int(g[0]), int(g[0]) + 1)
        kv = [
            (
                k[sel, :, -width:].expand(len(rows), -1, -1, -1),
                v[sel, :, -width:].expand(len(rows), -1, -1, -1),
            )
            for k, v in chunk.kv
        ]
        pmask = chunk.mask[sel, -width:].expand(len(rows), -1)
    else:
        gi = torch.as_tensor(g, device=chunk.mask.device)
        kv = [
            (k[:, :, -width:].index_select(0, gi), v[:, :, -width:].index_select(0, gi)) for k, v in chunk.kv
        ]
        pmask = chunk.mask[:, -width:].index_select(0, gi)
    mask = torch.cat([pmask, batch.attention_mask], dim=1)
    offset = torch.as_tensor(plen, device=batch.position_ids.device)[:, None]
    inputs = ModelInputs(
        inputs_embeds=_embed(model, batch, call.vector_fn),
        attention_mask=mask,
        position_ids=batch.position_ids + offset,
        past_key_values=_prefix_cache(kv),
    )
    logits = answer_logits_fast(model, inputs, call.token_ids)
    return _yesno_scores(logits, call.mode)


@torch.no_grad()
def score_yesno_planned(
    model: Any,
    enc: EncodedPrompts,
    plan: PrefixPlan,
    call: YesNoCall,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    max_prefix_tokens: int = DEFAULT_MAX_TOKENS,
    max_kv_tokens: int = DEFAULT_MAX_KV_TOKENS,
) -> np.ndarray:
    """Yes/No scores of every row of ``enc`` in row order, encoding each planned prefix once.

    Groups are taken in prefix-length order, as many per prefix forward as fit ``max_prefix_tokens`` padded
    tokens (which also bounds the key/values held at once); their suffixes are then scored in batches of
    at most ``max_kv_tokens`` attended positions (rows x (longest prefix + longest suffix)). Rows outside any
    group go through ``score_yesno_rows``. A model outside ``PREFIX_FAMILIES`` is scored whole (same scores).
    """
    out = np.empty(len(enc), dtype=np.float64)
    grouped = plan.group >= 0
    if not prefix_supported(model):
        grouped[:] = False
    plain = np.flatnonzero(~grouped)
    if len(plain):
        out[plain] = score_yesno_rows(model, enc, call, max_tokens=max_tokens, rows=plain)
    if not grouped.any():
        return out
    rows_by_group = np.argsort(plan.group, kind="stable")[np.count_nonzero(~grouped) :]
    bounds = np.searchsorted(plan.group[rows_by_group], np.arange(plan.n_groups + 1))
    for chunk_groups in token_budget_batches(plan.prefix_len, max_prefix_tokens):
        chunk = _encode_prefixes(model, enc, plan, chunk_groups, call)
        rows = np.concatenate([rows_by_group[bounds[g] : bounds[g + 1]] for g in chunk_groups])
        rows, suffix_len, plen = _suffix_order(enc, plan, rows)
        for part in _kv_budget_batches(suffix_len, plen, max_kv_tokens):
            out[rows[part]] = _score_yesno_suffixes(model, enc, plan, chunk, rows[part], call)
    return out


def _suffix_order(
    enc: EncodedPrompts, plan: PrefixPlan, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``rows`` in (suffix length, group) order, with their suffix and prefix lengths: least suffix padding.
    Group-major order (batches of one group read its key/values as expand views, no gather) measured slower:
    more suffix padding, more forwards."""
    plen = plan.prefix_len[plan.group[rows]]
    suffix_len = enc.lengths[rows] - plen
    perm = np.lexsort((plan.group[rows], suffix_len))
    return rows[perm], suffix_len[perm], plen[perm]


@torch.no_grad()
def score_yesno_candidates(
    model: Any,
    prefix_ids: np.ndarray,
    suffix_ids: Sequence[np.ndarray],
    token_ids: Sequence[int],
    *,
    pad_id: int = 0,
    mode: str = "yes",
    max_kv_tokens: int = DEFAULT_MAX_KV_TOKENS,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """The Yes/No scores of prefix + each suffix (one user's candidates), the prefix encoded once. For many
    users at once, build one ``EncodedPrompts`` and use ``plan_prefixes`` + ``score_yesno_planned`` (prefixes
    of several users share forwards)."""
    if any(len(s) == 0 for s in suffix_ids):
        raise ValueError("every candidate needs at least one suffix token (the answer position)")
    if not len(suffix_ids):
        return np.empty(0, dtype=np.float64)
    prefix = np.asarray(prefix_ids, dtype=np.int64)
    enc = EncodedPrompts(
        ids=[np.concatenate([prefix, np.asarray(s, dtype=np.int64)]) for s in suffix_ids],
        slot_names=(),
        slot_pos=np.zeros((len(suffix_ids), 0), dtype=np.int64),
    )
    n = len(enc)
    plan = PrefixPlan(
        group=np.zeros(n, dtype=np.int64) if len(prefix) else np.full(n, -1, dtype=np.int64),
        prefix_len=np.asarray([len(prefix)] if len(prefix) else [], dtype=np.int64),
        representative=np.asarray([0] if len(prefix) else [], dtype=np.int64),
    )
    call = YesNoCall(token_ids, pad_id=pad_id, mode=mode, device=device)
    return score_yesno_planned(model, enc, plan, call, max_kv_tokens=max_kv_tokens)


def _kv_budget_batches(q_len: np.ndarray, p_len: np.ndarray, budget: int) -> list[np.ndarray]:
    """Consecutive runs of rows whose rows x (longest prefix + longest suffix) fits ``budget``: the key/value
    positions a suffix batch attends, which is what its memory traffic scales with."""
    out: list[np.ndarray] = []
    n, start = len(q_len), 0
    while start < n:
        end, q, p = start + 1, int(q_len[start]), int(p_len[start])
        while end < n:
            q2, p2 = max(q, int(q_len[end])), max(p, int(p_len[end]))
            if (end - start + 1) * (q2 + p2) > budget:
                break
            end, q, p = end + 1, q2, p2
        out.append(np.arange(start, end))
        start = end
    return out
