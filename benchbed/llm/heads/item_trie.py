"""The item trie of constrained decoding: every item id's token sequence, closed by the end token, in one
prefix trie stored flat (CSR), so masks and transitions are vectorised numpy operations.

Every item string is tokenized on its own and closed with the end token, so an id that is a prefix of
another ("item_12" vs "item_123") is still a distinct path: "12" is only complete once the end token is
emitted after it. Beam search over it: ``benchbed.llm.heads.constrained``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchbed.errors import DataError
from benchbed.llm.backbone import facts


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
    ``end_token`` (default: the backbone facts' end token of the tokenizer)."""
    end = facts.end_token(tokenizer, who="constrained decoding") if end_token is None else end_token
    items = list(texts)
    encoded = tokenizer([texts[i] for i in items], add_special_tokens=False)["input_ids"]
    vocab = vocab_size if vocab_size is not None else len(tokenizer)
    return ItemTrie.build(dict(zip(items, encoded, strict=True)), end_token=end, vocab_size=vocab)
