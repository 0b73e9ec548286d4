"""Beam search over a causal LM that can only spell valid item ids (the OpenP5 decoding rule).

Why a hand-written beam loop instead of ``generate(prefix_allowed_tokens_fn=...)``: prompts carry projected
vectors spliced into ``inputs_embeds``, finished beams must keep competing with live ones on their exact
sequence log-probability, and we want to count how often the constraint overrode the model's own choice.

Every item string is tokenized on its own and closed with the end token, so an id that is a prefix of
another ("item_12" vs "item_123") is still a distinct path: "12" is only complete once the end token is
emitted after it. The trie is stored flat (CSR) so masks and transitions are vectorised numpy operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from benchbed import parallel
from benchbed.compat.hf_cache import cache_kwarg, output_cache
from benchbed.errors import ConfigError, DataError


@dataclass
class ItemTrie:
    """A prefix trie over token sequences, one per item, each ending with ``end_token``.

    Node 0 is the root. Children of node ``n`` are ``child_token[ptr[n]:ptr[n+1]]`` (sorted) leading to
    ``child_node[...]``. ``leaf_item[n]`` is the item whose sequence ends at node ``n`` (else -1).
    """

    ptr: np.ndarray
    child_token: np.ndarray
    child_node: np.ndarray
    leaf_item: np.ndarray
    end_token: int
    vocab_size: int
    depth: int
    sequences: dict[int, tuple[int, ...]] = field(default_factory=dict)
    _edge_key: np.ndarray | None = field(default=None, repr=False)

    @property
    def edge_key(self) -> np.ndarray:
        """parent * vocab + token per edge: sorted, so a transition is one ``searchsorted``."""
        if self._edge_key is None:
            parent = np.repeat(np.arange(self.n_nodes, dtype=np.int64), np.diff(self.ptr))
            self._edge_key = parent * self.vocab_size + self.child_token
        return self._edge_key

    @property
    def n_nodes(self) -> int:
        return len(self.leaf_item)

    @property
    def n_items(self) -> int:
        return int((self.leaf_item >= 0).sum())

    @classmethod
    def build(
        cls, sequences: dict[int, Sequence[int]], end_token: int, vocab_size: int | None = None
    ) -> ItemTrie:
        """Build from ``{item: token ids}`` (without the end token, which is appended here)."""
        if not sequences:
            raise DataError("item trie: no item sequences given")
        # lexicographic sort of the closed sequences gives a CSR layout in one pass
        closed = {int(i): (*map(int, s), int(end_token)) for i, s in sequences.items()}
        for item, seq in closed.items():
            if len(seq) == 1:
                raise DataError(f"item trie: item {item} has an empty token sequence")
            if end_token in seq[:-1]:
                raise DataError(f"item trie: item {item}'s tokens contain the end token {end_token}")
        order = sorted(closed, key=lambda i: closed[i])
        edges: list[tuple[int, int, int]] = []  # (parent, token, child)
        leaf: list[int] = [-1]
        path_nodes: list[int] = [0]  # node ids along the previous sequence (index = depth)
        prev: tuple[int, ...] = ()
        for item in order:
            seq = closed[item]
            if seq == prev:
                raise DataError(f"item trie: items {leaf[path_nodes[-1]]} and {item} tokenize identically")
            common = 0
            while common < min(len(seq), len(prev)) and seq[common] == prev[common]:
                common += 1
            del path_nodes[common + 1 :]
            for depth in range(common, len(seq)):
                node = len(leaf)
                leaf.append(-1)
                edges.append((path_nodes[depth], seq[depth], node))
                path_nodes.append(node)
            leaf[path_nodes[-1]] = item
            prev = seq
        arr = np.asarray(edges, dtype=np.int64).reshape(-1, 3)
        # edges were created in lexicographic DFS order; regroup by parent keeping token order
        arr = arr[np.lexsort((arr[:, 1], arr[:, 0]))]
        counts = np.bincount(arr[:, 0], minlength=len(leaf))
        ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        max_tok = int(arr[:, 1].max())
        vocab = int(vocab_size) if vocab_size is not None else max_tok + 1
        if max_tok >= vocab:
            raise DataError(f"item trie: token id {max_tok} is outside the vocabulary of size {vocab}")
        return cls(
            ptr=ptr,
            child_token=arr[:, 1].copy(),
            child_node=arr[:, 2].copy(),
            leaf_item=np.asarray(leaf, dtype=np.int64),
            end_token=int(end_token),
            vocab_size=vocab,
            depth=max(len(s) for s in closed.values()),
            sequences={i: s for i, s in closed.items()},
        )

    # --- queries --------------------------------------------------------------------------------------
    def allowed(self, node: int) -> np.ndarray:
        return self.child_token[self.ptr[node] : self.ptr[node + 1]]

    def step(self, nodes: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Child of each ``nodes[i]`` by ``tokens[i]``; -1 where that edge does not exist (or node is -1)."""
        nodes = np.asarray(nodes, dtype=np.int64)
        tokens = np.asarray(tokens, dtype=np.int64)
        query = nodes * self.vocab_size + tokens
        pos = np.searchsorted(self.edge_key, query)
        pos_safe = np.minimum(pos, len(self.edge_key) - 1)
        found = (nodes >= 0) & (tokens >= 0) & (pos < len(self.edge_key)) & (self.edge_key[pos_safe] == query)
        return np.where(found, self.child_node[pos_safe], -1)

    def walk(self, tokens: Sequence[int]) -> int:
        """Item spelled by ``tokens`` (end token included), or -1 when it is not a complete valid id."""
        node = 0
        for tok in tokens:
            node = int(self.step(np.array([node]), np.array([tok]))[0])
            if node < 0:
                return -1
        return int(self.leaf_item[node])

    def expand(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every allowed continuation of every node, flattened: (row into ``nodes``, token, child node).

        Rows come out in increasing order; nodes of -1 (off-trie) or leaves contribute nothing.
        """
        nodes = np.asarray(nodes, dtype=np.int64)
        safe = np.where(nodes >= 0, nodes, 0)
        counts = np.where(nodes >= 0, self.ptr[safe + 1] - self.ptr[safe], 0)
        total = int(counts.sum())
        rows = np.repeat(np.arange(len(nodes)), counts)
        starts = np.repeat(self.ptr[safe], counts)
        edges = starts + np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        return rows, self.child_token[edges], self.child_node[edges]

    def allowed_mask(self, nodes: np.ndarray, vocab_size: int | None = None) -> np.ndarray:
        """(len(nodes), vocab) bool: True where the token continues a valid id from that node."""
        rows, tokens, _ = self.expand(nodes)
        mask = np.zeros((len(nodes), vocab_size or self.vocab_size), dtype=bool)
        mask[rows, tokens] = True
        return mask

    def forced_prefix(self) -> tuple[list[int], int]:
        """Tokens every item starts with (e.g. the dataset name of "ml-100k 1234") and the node after them.

        Beam search feeds them with the prompt in one forward pass instead of decoding them one by one."""
        node, tokens = 0, []
        while self.ptr[node + 1] - self.ptr[node] == 1 and self.leaf_item[node] < 0:
            tok = int(self.child_token[self.ptr[node]])
            if tok == self.end_token:
                break
            tokens.append(tok)
            node = int(self.child_node[self.ptr[node]])
        return tokens, node


def build_item_trie(
    tokenizer: Any, texts: dict[int, str], *, end_token: int | None = None, vocab_size: int | None = None
) -> ItemTrie:
    """Tokenize each item's answer text on its own (no special tokens) and build the trie, closed by
    ``end_token`` (default: the tokenizer's eos)."""
    end = tokenizer.eos_token_id if end_token is None else end_token
    if end is None:
        raise ConfigError("constrained decoding: the tokenizer has no eos token to close item ids")
    items = list(texts)
    encoded = tokenizer([texts[i] for i in items], add_special_tokens=False)["input_ids"]
    vocab = vocab_size if vocab_size is not None else len(tokenizer)
    return ItemTrie.build(dict(zip(items, encoded, strict=True)), end_token=end, vocab_size=vocab)


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
    mask = attention_mask.to(device=device, dtype=torch.long)
    prefix, start_node = trie.forced_prefix() if constrained else ([], 0)
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
    all_logits = out.logits.float()
    vocab = all_logits.shape[-1]
    if trie.vocab_size > vocab:
        raise ConfigError(f"beam search: trie vocabulary {trie.vocab_size} exceeds the model's {vocab}")
    # forced tokens: their log-prob is part of every beam's score; count whether the model agreed
    base = torch.zeros(n, device=device)
    user_over = np.zeros(n, dtype=bool)
    decisions = overrides = 0
    for j, tok in enumerate(prefix):
        lp = torch.log_softmax(all_logits[:, j], dim=-1)
        base += lp[:, tok]
        miss = (lp.argmax(dim=-1) != tok).cpu().numpy()
        user_over |= miss
        decisions += n
        overrides += int(miss.sum())
    logits = all_logits[:, -1]
    cache = output_cache(out)
    last_pos = position[:, -1]

    # beam state, flattened as user * width + beam; width is 1 before the first expansion, then b
    width = 1
    nodes = np.full(n, start_node, dtype=np.int64)
    finished = np.zeros(n, dtype=bool)
    overridden = user_over.copy()
    scores = base.reshape(n, 1)
    end = int(trie.end_token)
    steps = 0  # decoder forward passes after the prompt's

    def keep_in_step() -> None:  # FSDP: a throw-away forward while another rank still decodes
        model(input_ids=torch.full((1, 1), end, dtype=torch.long, device=device), use_cache=False)

    for _ in range(trie.depth + 1):
        flat_scores = scores.reshape(-1)
        finite = torch.isfinite(flat_scores).cpu().numpy()
        live = ~finished & finite
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
        decisions += len(live_idx)
        overrides += int(step_over.sum())
        # finished beams carry over unchanged (one pseudo-candidate feeding the end token, log-prob 0)
        keep = np.flatnonzero(finished & finite)
        rows = np.concatenate([rows, keep])
        toks = np.concatenate([toks, np.full(len(keep), end, dtype=np.int64)])
        child = np.concatenate([child, nodes[keep]])
        cand_lp = torch.cat([cand_lp, torch.zeros(len(keep), device=device)])
        order = np.argsort(rows, kind="stable")
        rows, toks, child = rows[order], toks[order], child[order]
        cand_lp = cand_lp[torch.from_numpy(order).to(device)]
        total = flat_scores[torch.from_numpy(rows).to(device)] + cand_lp
        pick, best = _user_topk(rows // width, total, n, b)
        pick_flat = pick.reshape(-1)
        valid = pick_flat >= 0
        safe = np.where(valid, pick_flat, 0)
        src = np.where(valid, rows[safe], np.repeat(np.arange(n) * width, b))
        next_tok = np.where(valid, toks[safe], end)
        was_finished = finished[src] & valid
        new_nodes = np.where(valid, child[safe], -1)
        if not constrained:
            new_nodes = np.where(was_finished, nodes[src], new_nodes)
        finished = np.where(valid, was_finished | (next_tok == end), True)
        overridden = np.where(valid, (overridden | step_over)[src], False)
        nodes = new_nodes
        scores = best
        width = b
        if parallel.finished_everywhere(bool(finished.all()), keep_in_step):
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
        steps += 1
    else:  # ran out of depth: under FSDP, ranks that finished earlier are waiting for this one
        parallel.finished_everywhere(True, keep_in_step)
    if width == 1:  # nothing was decoded (no item fits): report empty beams
        scores = torch.full((n, b), -float("inf"), device=device)
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
    stats = {
        "beams": float(n * b),
        "valid_beams": float(valid_n),
        "constrained_beams": float(flags.sum()),
        "decisions": float(decisions),
        "overrides": float(overrides),
        "decode_steps": float(steps),
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
