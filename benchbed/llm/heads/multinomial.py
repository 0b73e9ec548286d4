"""Multinomial head: a softmax over all items from the last real position's hidden state (CLLM4Rec).

CLLM4Rec's recommendation-oriented fine-tuning [paper §3.4, Eq. 9; code: src/libs/model.py
``CollaborativeGPTwithItemRecommendHead``] takes the hidden state ``h`` at each row's last non-pad position,
scores every item as ``Z^{l,v} h`` with an item head *tied* to the item collaborative token table
(``item_head.weight = item_embeddings.weight``, no bias) and trains with the multinomial log-likelihood of a
multi-hot target, ``-mean_rows(sum_items(log_softmax(scores) * target))``. One forward scores all J items, so
no item can be hallucinated and every item is a candidate. For backbones whose LM head is not tied to the
input embeddings (T5, LLaMA) the paper uses a separate, randomly initialised item matrix [paper App. B.3.1]:
the head then owns it (``MultinomialHead(n_items=..., hidden_size=...)``).

The hidden state comes from the backbone body (``backbone.facts.backbone_body``), never through the
vocabulary LM head; the last real position is read from the text mask, so left and right padding give the
same logits (the authors' ``attention_mask.sum(1) - 1`` assumes right padding).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from benchbed.errors import ConfigError
from benchbed.llm.backbone import facts
from benchbed.llm.heads.pooled import hidden_states, pool, text_mask
from benchbed.llm.injectors.base import ModelInputs
from benchbed.llm.injectors.prompts import Batch

# The authors' init for new user/item tokens: N(0, initializer_range^2) with GPT-2's 0.02 [code: model.py].
INIT_STD = 0.02

ItemSource = torch.Tensor | torch.nn.Embedding | Callable[[], torch.Tensor]


class _Tied:
    """Reads a caller's item table at call time (not registered: the head's parameters stay its own)."""

    def __init__(self, source: ItemSource) -> None:
        self.source = source

    def __call__(self) -> torch.Tensor:
        if isinstance(self.source, torch.nn.Embedding):
            return self.source.weight
        if isinstance(self.source, torch.Tensor):
            return self.source
        return self.source()


def multi_hot(items: Sequence[Sequence[int]], n_items: int, device: Any = "cpu") -> torch.Tensor:
    """(B, n_items) float32 target with 1 at each row's items."""
    target = torch.zeros((len(items), n_items), dtype=torch.float32, device=device)
    rows = [r for r, its in enumerate(items) for _ in its]
    cols = [int(i) for its in items for i in its]
    if cols:
        target[torch.tensor(rows, device=device), torch.tensor(cols, device=device)] = 1.0
    return target


def multinomial_nll(logits: torch.Tensor, target: torch.Tensor, *, normalize: bool = False) -> torch.Tensor:
    """``-mean_b sum_j log_softmax(logits)_bj * target_bj`` exactly as the CLLM4Rec code (``neg_ll``).

    ``normalize=True`` divides each row by its number of targets first (a per-row mean, so users with long
    histories do not dominate); the code does not, hence off by default."""
    ll = (torch.log_softmax(logits.float(), dim=-1) * target.to(torch.float32)).sum(dim=-1)
    if normalize:
        ll = ll / target.to(torch.float32).sum(dim=-1).clamp(min=1.0)
    return -ll.mean()


class MultinomialHead(torch.nn.Module):
    """``head(model, inputs, batch) -> (B, n_items)`` float32 logits ``h_last @ W.T (+ b)``.

    Tied: ``MultinomialHead(item_table)`` with an ``nn.Embedding``, a tensor or a zero-argument callable
    returning the current (n_items, H) matrix (e.g. the item rows of an extended vocabulary); the head owns
    no copy, so training the table trains the head. Untied: ``MultinomialHead(n_items=J, hidden_size=H)``
    owns a N(0, 0.02^2) matrix. ``bias=True`` adds a learned per-item bias (the code has none).
    """

    def __init__(
        self,
        item_matrix: ItemSource | None = None,
        *,
        n_items: int | None = None,
        hidden_size: int | None = None,
        bias: bool = False,
        init_std: float = INIT_STD,
    ) -> None:
        super().__init__()
        self._tied: _Tied | None = None
        self.own: torch.nn.Parameter | None = None
        self.hidden_size = hidden_size
        if item_matrix is None:
            if n_items is None or hidden_size is None:
                raise ConfigError(
                    "multinomial head: give the item matrix to tie to, or n_items and hidden_size for an "
                    "owned one"
                )
            self.own = torch.nn.Parameter(torch.randn(n_items, hidden_size) * init_std)
        else:
            self._tied = _Tied(item_matrix)
            if n_items is None:
                n_items = int(self._tied().shape[0])
        self.n_items = int(n_items)
        self.bias = torch.nn.Parameter(torch.zeros(self.n_items)) if bias else None
        self._context = "multinomial head"
        self._check_matrix(self.matrix(), hidden_size)

    # --- the item matrix ------------------------------------------------------------------------------------
    @property
    def tied(self) -> bool:
        return self._tied is not None

    def matrix(self) -> torch.Tensor:
        """The current (n_items, H) item matrix."""
        if self._tied is not None:
            return self._tied()
        assert self.own is not None
        return self.own

    def _check_matrix(self, weight: torch.Tensor, hidden: int | None, where: str = "") -> None:
        if (
            weight.dim() != 2
            or weight.shape[0] != self.n_items
            or (hidden is not None and weight.shape[1] != hidden)
        ):
            want = f"({self.n_items}, {hidden if hidden is not None else 'H'})"
            raise ConfigError(
                f"{self._context}: item matrix of shape {tuple(weight.shape)}{where}; expected {want} "
                f"(one row per item, as wide as the backbone's hidden size)"
            )

    def check(self, model: Any, method: str, backbone: str) -> None:
        """One-line ``ConfigError`` when the item matrix is not as wide as the backbone's hidden states."""
        target = facts.unwrap_peft(model)
        hidden = int(target.get_input_embeddings().weight.shape[1])
        family = facts.family(target)
        self._context = f"method {method!r}: the multinomial head"
        self._check_matrix(
            self.matrix(), hidden, f" does not fit backbone {backbone!r} ({family}, hidden {hidden})"
        )

    # --- forward --------------------------------------------------------------------------------------------
    def last_hidden(self, model: Any, inputs: ModelInputs) -> torch.Tensor:
        """(B, H) hidden state at each row's last real text position."""
        return pool(hidden_states(model, inputs), text_mask(inputs), "last")

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, H) -> (B, n_items) float32."""
        weight = self.matrix()
        if hidden.shape[-1] != weight.shape[1]:
            self._check_matrix(
                weight, hidden.shape[-1], f" against hidden states of width {hidden.shape[-1]}"
            )
        out = hidden.to(weight.dtype) @ weight.T
        if self.bias is not None:
            out = out + self.bias.to(out.dtype)
        return out.float()

    def forward(self, model: Any, inputs: ModelInputs, batch: Batch | None = None) -> torch.Tensor:
        return self.logits(self.last_hidden(model, inputs))

    @staticmethod
    def loss(logits: torch.Tensor, target: torch.Tensor, *, normalize: bool = False) -> torch.Tensor:
        """Multinomial NLL of a multi-hot target (see ``multinomial_nll``)."""
        return multinomial_nll(logits, target, normalize=normalize)

    @torch.no_grad()
    def scores_all(
        self,
        model: Any,
        inputs: ModelInputs,
        batch: Batch | None = None,
        exclude: Sequence[Sequence[int]] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Full-ranking scores (B, n_items) with ``exclude`` (per-row item lists, e.g. the user's training
        items, or a (B, n_items) bool mask) set to -inf, as CLLM4Rec's prediction does [paper §3.5]."""
        scores = self.forward(model, inputs, batch)
        if exclude is None:
            return scores
        if isinstance(exclude, torch.Tensor):
            mask = exclude.to(device=scores.device, dtype=torch.bool)
        else:
            if len(exclude) != scores.shape[0]:
                raise ConfigError(
                    f"{self._context}: {len(exclude)} exclusion lists for {scores.shape[0]} rows; "
                    f"expected one per row"
                )
            mask = multi_hot(exclude, self.n_items, scores.device).bool()
        return scores.masked_fill(mask, -float("inf"))
