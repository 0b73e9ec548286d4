"""Beam search over a causal LM that can only spell valid item ids (the OpenP5 decoding rule).

Why a hand-written beam loop instead of ``generate(prefix_allowed_tokens_fn=...)``: prompts carry projected
vectors spliced into ``inputs_embeds``, finished beams must keep competing with live ones on their exact
sequence log-probability, and we want to count how often the constraint overrode the model's own choice.

The ids' trie (``ItemTrie``, ``build_item_trie``) lives in ``benchbed.llm.heads.item_trie`` and is
re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from benchbed import parallel
from benchbed.compat.hf_cache import cache_kwarg, output_cache
from benchbed.errors import ConfigError
from benchbed.llm.heads.item_trie import ItemTrie, build_item_trie

__all__ = ["BeamOutput", "ConstrainedHead", "ItemTrie", "beam_search", "build_item_trie"]


@dataclass
class BeamOutput:
    """Per prompt: ``items`` (n, beams) best first, -1 where no valid id; ``scores`` the sequence log-probs;
    ``constrained`` (n, beams) True where the constraint overrode the model's top token somewhere on the path;
    ``stats`` counts (summable over batches) and shares for the run record."""

    items: np.ndarray
    scores: np.ndarray
    constrained: np.ndarray
    stats: dict[str, float]


def _user_topk(
    users: np.ndarray, values: torch.Tensor, n_users: int, k: int
) -> tuple[np.ndarray, torch.Tensor]:
    """Per user (``users`` sorted), the positions (into ``values``) and values of its k best entries.

    Users with fewer than k entries get position -1 and value -inf in the remaining slots."""
    device = values.device
    counts = np.bincount(users, minlength=n_users)
    width = max(int(counts.max(initial=0)), k)
    slot = np.arange(len(users)) - np.repeat(np.cumsum(counts) - counts, counts)
    dense = torch.full((n_users, width), -float("inf"), device=device)
    pos = torch.full((n_users, width), -1, dtype=torch.long, device=device)
    u_t = torch.from_numpy(users).to(device)
    s_t = torch.from_numpy(slot).to(device)
    dense[u_t, s_t] = values
    pos[u_t, s_t] = torch.arange(len(users), device=device)
    best, at = dense.topk(k, dim=-1)
    chosen = pos.gather(1, at).cpu().numpy()
    return np.where(torch.isfinite(best).cpu().numpy(), chosen, -1), best


@dataclass
class _Beams:
    """The live search, flattened as prompt * width + beam; width is 1 before the first expansion, then b.

    ``nodes``: each beam's trie node (-1 off the trie); ``overridden``: the constraint overrode the model's
    top token somewhere on the beam's path; ``scores`` (n, width): the sequence log-probabilities."""

    nodes: np.ndarray
    finished: np.ndarray
    overridden: np.ndarray
    scores: torch.Tensor
    width: int = 1
    decisions: int = 0  # tokens chosen, summed over beams (forced prefix tokens included)
    overrides: int = 0  # of those, where the constraint overrode the model's top token
    steps: int = 0  # decoder forward passes after the prompt's


@dataclass
class _Candidates:
    """Every continuation scored in one step: source beam (flat row), token, trie child, log-prob; and per
    beam whether the constraint overrode the model's top token."""

    rows: np.ndarray
    toks: np.ndarray
    child: np.ndarray
    logp: torch.Tensor
    step_over: np.ndarray


@torch.no_grad()
def beam_search(
    model: Any,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    trie: ItemTrie,
    *,
    num_beams: int = 10,
    constrained: bool = True,
) -> BeamOutput:
    """Beam search from left-padded prompt embeddings; ranks ids by their exact sequence log-probability.

    Constrained, each beam only considers the trie's continuations of its node (gathered sparsely: no dense
    vocabulary mask), normalised by the full softmax. A finished beam (end token emitted) keeps competing with
    its final score. Tokens shared by all ids (``ItemTrie.forced_prefix``) are fed with the prompt.
    With ``constrained=False`` the same loop runs without the trie (perf comparison; how often the model
    would leave the id space); beams that do not spell a valid id give item -1.
    """
    if num_beams < 1:
        raise ConfigError(f"beam search: num_beams must be >= 1, got {num_beams}")
    device = inputs_embeds.device
    n, b = inputs_embeds.shape[0], num_beams
    prefix, start_node = trie.forced_prefix() if constrained else ([], 0)
    out, mask, position = _prompt_forward(model, inputs_embeds, attention_mask, prefix)
    all_logits = out.logits.float()
    vocab = all_logits.shape[-1]
    if trie.vocab_size > vocab:
        raise ConfigError(f"beam search: trie vocabulary {trie.vocab_size} exceeds the model's {vocab}")
    beams = _forced_prefix_beams(all_logits, prefix, np.full(n, start_node, dtype=np.int64))
    logits = all_logits[:, -1]
    cache = output_cache(out)
    last_pos = position[:, -1]
    end = int(trie.end_token)

    def keep_in_step() -> None:  # FSDP: a throw-away forward while another rank still decodes
        model(input_ids=torch.full((1, 1), end, dtype=torch.long, device=device), use_cache=False)

    for _ in range(trie.depth + 1):
        cand = _candidates(trie, beams, logits, constrained, b, vocab)
        src, next_tok = _select(beams, cand, n, b, end, constrained)
        if parallel.finished_everywhere(bool(beams.finished.all()), keep_in_step):
            break
        src_t = torch.from_numpy(src).to(device)
        cache.reorder_cache(src_t)  # also expands the prompt cache from n rows to n * b on the first step
        mask = torch.cat([mask[src_t], torch.ones((len(src), 1), dtype=mask.dtype, device=device)], dim=1)
        last_pos = last_pos[src_t] + 1
        out = model(
            input_ids=torch.from_numpy(next_tok).to(device).reshape(-1, 1),
            attention_mask=mask,
            position_ids=last_pos.reshape(-1, 1),
            **{cache_kwarg(): cache},
            use_cache=True,
        )
        cache = output_cache(out)
        logits = out.logits[:, -1, :].float()
        beams.steps += 1
    else:  # ran out of depth: under FSDP, ranks that finished earlier are waiting for this one
        parallel.finished_everywhere(True, keep_in_step)
    return _beam_output(trie, beams, n, b)


def _prompt_forward(
    model: Any, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, prefix: list[int]
) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """The prompts with the forced ``prefix`` tokens appended, through the model once (cache kept): its
    output (logits of the prefix positions and the next token), the attention mask and the position ids."""
    device = inputs_embeds.device
    n = inputs_embeds.shape[0]
    mask = attention_mask.to(device=device, dtype=torch.long)
    if prefix:
        pre = torch.tensor(prefix, dtype=torch.long, device=device)
        pre_emb = model.get_input_embeddings()(pre).to(inputs_embeds.dtype)
        inputs_embeds = torch.cat([inputs_embeds, pre_emb.unsqueeze(0).expand(n, -1, -1)], dim=1)
        mask = torch.cat([mask, torch.ones((n, len(prefix)), dtype=mask.dtype, device=device)], dim=1)
    position = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(
        inputs_embeds=inputs_embeds,
        attention_mask=mask,
        position_ids=position,
        use_cache=True,
        logits_to_keep=len(prefix) + 1,
    )
    return out, mask, position


def _forced_prefix_beams(all_logits: torch.Tensor, prefix: list[int], nodes: np.ndarray) -> _Beams:
    """One beam per prompt at ``nodes``: the forced tokens' log-prob is part of every beam's score; count
    whether the model agreed with each."""
    n = all_logits.shape[0]
    base = torch.zeros(n, device=all_logits.device)
    user_over = np.zeros(n, dtype=bool)
    decisions = overrides = 0
    for j, tok in enumerate(prefix):
        lp = torch.log_softmax(all_logits[:, j], dim=-1)
        base += lp[:, tok]
        miss = (lp.argmax(dim=-1) != tok).cpu().numpy()
        user_over |= miss
        decisions += n
        overrides += int(miss.sum())
    return _Beams(
        nodes=nodes,
        finished=np.zeros(n, dtype=bool),
        overridden=user_over.copy(),
        scores=base.reshape(n, 1),
        decisions=decisions,
        overrides=overrides,
    )


def _candidates(
    trie: ItemTrie, beams: _Beams, logits: torch.Tensor, constrained: bool, b: int, vocab: int
) -> _Candidates:
    """The live beams' continuations (the trie's, or each beam's ``b`` best tokens without the trie), then
    the finished beams carried over unchanged (one pseudo-candidate feeding the end token, log-prob 0)."""
    device = logits.device
    nodes, end = beams.nodes, int(trie.end_token)
    flat_scores = beams.scores.reshape(-1)
    finite = torch.isfinite(flat_scores).cpu().numpy()
    live = ~beams.finished & finite
    live_idx = np.flatnonzero(live)
    live_t = torch.from_numpy(live_idx).to(device)
    live_logits = logits[live_t]
    lse = torch.logsumexp(live_logits, dim=-1)
    top = live_logits.argmax(dim=-1).cpu().numpy()
    if constrained:
        sub, toks, child = trie.expand(nodes[live_idx])
        rows = live_idx[sub]
        hit = np.zeros(len(live_idx), dtype=bool)
        hit[sub[toks == top[sub]]] = True
        step_over = np.zeros(len(nodes), dtype=bool)
        step_over[live_idx[~hit]] = True
        sub_t = torch.from_numpy(sub).to(device)
        cand_lp = live_logits[sub_t, torch.from_numpy(toks).to(device)] - lse[sub_t]
    else:
        k_each = min(b, vocab)
        lp_top, tok_top = (live_logits - lse[:, None]).topk(k_each, dim=-1)
        rows = np.repeat(live_idx, k_each)
        toks = tok_top.reshape(-1).cpu().numpy()
        cand_lp = lp_top.reshape(-1)
        child = trie.step(nodes[rows], toks)
        step_over = np.zeros(len(nodes), dtype=bool)
    beams.decisions += len(live_idx)
    beams.overrides += int(step_over.sum())
    keep = np.flatnonzero(beams.finished & finite)
    return _Candidates(
        rows=np.concatenate([rows, keep]),
        toks=np.concatenate([toks, np.full(len(keep), end, dtype=np.int64)]),
        child=np.concatenate([child, nodes[keep]]),
        logp=torch.cat([cand_lp, torch.zeros(len(keep), device=device)]),
        step_over=step_over,
    )


def _select(
    beams: _Beams, cand: _Candidates, n: int, b: int, end: int, constrained: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Keep each prompt's ``b`` best candidates as its new beams (in place); their source beams and tokens."""
    device = cand.logp.device
    order = np.argsort(cand.rows, kind="stable")
    rows, toks, child = cand.rows[order], cand.toks[order], cand.child[order]
    cand_lp = cand.logp[torch.from_numpy(order).to(device)]
    total = beams.scores.reshape(-1)[torch.from_numpy(rows).to(device)] + cand_lp
    pick, best = _user_topk(rows // beams.width, total, n, b)
    pick_flat = pick.reshape(-1)
    valid = pick_flat >= 0
    safe = np.where(valid, pick_flat, 0)
    src = np.where(valid, rows[safe], np.repeat(np.arange(n) * beams.width, b))
    next_tok = np.where(valid, toks[safe], end)
    was_finished = beams.finished[src] & valid
    new_nodes = np.where(valid, child[safe], -1)
    if not constrained:
        new_nodes = np.where(was_finished, beams.nodes[src], new_nodes)
    beams.finished = np.where(valid, was_finished | (next_tok == end), True)
    beams.overridden = np.where(valid, (beams.overridden | cand.step_over)[src], False)
    beams.nodes = new_nodes
    beams.scores = best
    beams.width = b
    return src, next_tok


def _beam_output(trie: ItemTrie, beams: _Beams, n: int, b: int) -> BeamOutput:
    """Each prompt's beams as items, best first (-1 where a beam spells no valid id), and the counts."""
    scores, nodes, finished, overridden = beams.scores, beams.nodes, beams.finished, beams.overridden
    if beams.width == 1:  # nothing was decoded (no item fits): report empty beams
        scores = torch.full((n, b), -float("inf"), device=scores.device)
        nodes, finished = np.full(n * b, -1), np.zeros(n * b, dtype=bool)
        overridden = np.zeros(n * b, dtype=bool)
    score_np = scores.cpu().numpy().astype(np.float64).reshape(-1)
    ok = finished & (nodes >= 0) & np.isfinite(score_np)
    items = np.where(ok, trie.leaf_item[np.where(nodes >= 0, nodes, 0)], -1).reshape(n, b)
    score_2d = np.where(items.reshape(-1) >= 0, score_np, -np.inf).reshape(n, b)
    order = np.argsort(-score_2d, axis=1, kind="stable")  # best first once invalid beams are blanked
    items = np.take_along_axis(items, order, axis=1)
    score_2d = np.take_along_axis(score_2d, order, axis=1)
    flags = np.take_along_axis(overridden.reshape(n, b), order, axis=1) & (items >= 0)
    valid_n = int((items >= 0).sum())
    decisions, overrides = beams.decisions, beams.overrides
    stats = {
        "beams": float(n * b),
        "valid_beams": float(valid_n),
        "constrained_beams": float(flags.sum()),
        "decisions": float(decisions),
        "overrides": float(overrides),
        "decode_steps": float(beams.steps),
        "constrained_beam_share": float(flags.sum() / valid_n) if valid_n else 0.0,
        "constrained_step_share": float(overrides / decisions) if decisions else 0.0,
    }
    return BeamOutput(items=items, scores=score_2d, constrained=flags, stats=stats)


class ConstrainedHead:
    """Generative-retrieval head: constrained beam search over the item trie from an injector's inputs
    (left-padded prompts; the search derives positions from the attention mask)."""

    def __init__(self, trie: ItemTrie) -> None:
        self.trie = trie

    def rank(self, model: Any, inputs: Any, *, num_beams: int = 10, constrained: bool = True) -> BeamOutput:
        if inputs.past_key_values is not None:
            raise ConfigError("constrained generation: layer-prefix inputs are not supported by beam search")
        return beam_search(
            model,
            inputs.inputs_embeds,
            inputs.attention_mask,
            self.trie,
            num_beams=num_beams,
            constrained=constrained,
        )
