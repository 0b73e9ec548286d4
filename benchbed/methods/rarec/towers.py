"""RA-Rec's two towers over one frozen language model: hard prompts, soft prompts per variant, pooled output.

- Hard prompts [RA-Rec §3.1.1]: user = the paper's instruction followed by the history titles (most recent
  kept when the prompt is cut to ``max_tokens``, rarec.md §3i.8); item = ``"Title: <title>"`` (rarec.md §3i.8:
  the paper does not show the item prompt).
- Soft prompts: ``SidePrompt`` builds one side's (user or item) per ``variant``:

  | variant | what enters the LM | RA-Rec |
  |---|---|---|
  | ``full`` | per layer ``[c^l_1, c^l_2, W^l x + b^l]`` into K/V | Eqs. 3-11 |
  | ``no_id`` | per layer 3 learned vectors (same length) | Table 4 "w/o IDRepresentation" (prefix tuning) |
  | ``no_reparam`` | per layer ``[c^l_1, c^l_2, W x + b]``, one ``W, b`` for all | "w/o Reparameterization" |
  | ``no_context`` | per layer ``W^l x + b^l`` only | "w/o ConInstruction" |
  | ``inputs`` | input tokens ``[c_1, c_2, W x + b]`` after the leading special token | "RA-Rec_Inputs" |
  | ``project_inputs`` | input tokens ``[c_1, c_2, softmax((W x + b) E^T / sqrt(H)) E]`` | "ProjectInputs" |
  | ``zero_shot`` | nothing: the frozen encoder as it is (no training) | the plain LM tower |

  ("RA-Rec_Inputs" follows Kosmos-2, "RA-Rec_ProjectInputs" Macaw-LLM, as §4.3.1 cites them; E = the
  frozen token-embedding matrix.)
  Layer prefixes go through the kit's ``LayerPrefix`` (the frozen K/V projections of each layer);
  ``PrefixEncoder`` holds ``c^l`` and ``W^l, b^l`` with RA-Rec's truncated-normal init.
- Output: ``PooledHead`` (mean pooling for encoders, last token for decoders), dot-product score [Eq. 12].
- Alignment targets [Eqs. 14-15]: the text-only pass's mean-pooled hidden state entering each layer
  (``hidden_states[l-1]`` for layer l: the kind of vector ``d^l`` is concatenated with, Eqs. 10-11). The
  input-token variants align their ID token, which is written into the token-embedding lookup, with the
  mean of the text's token embeddings (``token_states``): the same space, where ``hidden_states[0]`` would be
  BERT's embedding output after position embeddings and LayerNorm, a space the soft token never lives in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from benchbed.llm.backbone.facts import backbone_body
from benchbed.llm.heads.pooled import PooledHead, pool
from benchbed.llm.injectors.base import ModelInputs, plain_inputs
from benchbed.llm.injectors.prefix import LayerPrefix, PrefixEncoder
from benchbed.llm.injectors.prompts import Batch, EncodedPrompts, collate, special_prefix

# RA-Rec §3.1.1, Figure 2: the hard prompt of the sequential task (the titles follow, comma-separated)
USER_PROMPT = (
    "Your task is to recommend the next product user may be interested based on their purchase history:"
)
ITEM_PROMPT = "Title:"
LAYER_VARIANTS = ("full", "no_id", "no_reparam", "no_context")
INPUT_VARIANTS = ("inputs", "project_inputs")
VARIANTS = (*LAYER_VARIANTS, *INPUT_VARIANTS, "zero_shot")
ID_VARIANTS = ("full", "no_reparam", "no_context", *INPUT_VARIANTS)  # the variants that read ID vectors


def special_suffix(tokenizer: Any) -> list[int]:
    """The ids a tokenizer puts after text ([SEP] for BERT; none for GPT-2/Llama)."""
    with_special = tokenizer("x", add_special_tokens=True)["input_ids"]
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    lead = len(special_prefix(tokenizer))
    tail = list(with_special[lead + len(plain) :])
    return tail if with_special[lead : lead + len(plain)] == plain else []


class Prompts:
    """Token ids of the hard prompts, built from per-title ids tokenized once (word-piece tokenization splits
    at spaces and punctuation, so joined pieces equal the tokenized joined string)."""

    def __init__(
        self, tokenizer: Any, titles: Sequence[str], max_tokens: int, user_prompt: str = USER_PROMPT
    ) -> None:
        self.tok = tokenizer
        self.max_tokens = int(max_tokens)
        tk = lambda texts: tokenizer(list(texts), add_special_tokens=False)["input_ids"]  # noqa: E731
        self.titles = [np.asarray(ids, dtype=np.int64) for ids in tk(titles)] if len(titles) else []
        self.lead = np.asarray(special_prefix(tokenizer), dtype=np.int64)
        self.tail = np.asarray(special_suffix(tokenizer), dtype=np.int64)
        self.instruction = np.asarray(tk([user_prompt])[0], dtype=np.int64)
        self.item_head = np.asarray(tk([ITEM_PROMPT])[0], dtype=np.int64)
        self.comma = np.asarray(tk([","])[0], dtype=np.int64)

    def _wrap(self, body: list[np.ndarray], soft: int) -> np.ndarray:
        pad = np.full(soft, self.tok.pad_token_id, dtype=np.int64)
        return np.concatenate([self.lead, pad, *body, self.tail])

    def user(self, history: Sequence[int] | np.ndarray, soft: int = 0) -> np.ndarray:
        """Instruction + the most recent titles that fit ``max_tokens`` (``soft`` placeholder positions
        after the leading special tokens, for input-token variants)."""
        room = self.max_tokens - len(self.lead) - len(self.tail) - soft - len(self.instruction)
        pieces: list[np.ndarray] = []
        for item in reversed(list(history)):
            ids = self.titles[int(item)]
            need = len(ids) + (len(self.comma) if pieces else 0)
            if need > room:
                if not pieces and room > 0:  # the most recent title alone is too long: keep its start
                    pieces.append(ids[:room])
                break
            if pieces:
                pieces.append(self.comma)
            pieces.append(ids)
            room -= need
        return self._wrap([self.instruction, *reversed(pieces)], soft)

    def text_only(self, row: np.ndarray, soft: int) -> np.ndarray:
        """``row`` without its ``soft`` placeholder positions: the text the alignment target encodes (a text
        pass over the [PAD] placeholders would pool and attend to tokens that are no text)."""
        lead = len(self.lead)
        return np.concatenate([row[:lead], row[lead + soft :]]) if soft else row

    def item(self, item: int, soft: int = 0) -> np.ndarray:
        room = self.max_tokens - len(self.lead) - len(self.tail) - soft - len(self.item_head)
        return self._wrap([self.item_head, self.titles[int(item)][: max(room, 0)]], soft)


def batch_of(rows: list[np.ndarray], pad_id: int, device: str) -> Batch:
    """Right-padded batch (column 0 is the leading special token of every row, where soft tokens follow)."""
    enc = EncodedPrompts(ids=rows, slot_names=(), slot_pos=np.zeros((len(rows), 0), dtype=np.int64))
    return collate(enc, np.arange(len(rows)), pad_id, device=device, side="right")


def _init(*shape: int, std: float = 0.02) -> nn.Parameter:
    # RA-Rec §4.1.4: "All parameters in RA-Rec are initiated using truncated normal in [-0.02, 0.02]"
    return nn.Parameter(nn.init.trunc_normal_(torch.empty(*shape), std=std, a=-0.02, b=0.02))


class SidePrompt(nn.Module):
    vocab: torch.Tensor  # project_inputs: the frozen input-embedding matrix (a buffer)

    """One side's soft prompt (see the module table). ``forward(ids, batch_size)`` returns
    ``(soft, aligned)``: the layer prefix (B, P, L, H) or input tokens (B, P, H), and the vectors aligned in
    the InfoNCE loss, (B, L', H), or None when the variant has no ID vector."""

    def __init__(
        self, variant: str, n_layers: int, hidden: int, id_dim: int, embeddings: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        self.variant, self.n_layers, self.hidden = variant, n_layers, hidden
        self.ctx_enc: PrefixEncoder | None = None
        self.id_enc: PrefixEncoder | None = None
        if variant == "full":
            self.id_enc = PrefixEncoder(n_layers, hidden, n_context=2, id_dim=id_dim)
        elif variant == "no_id":
            self.ctx_enc = PrefixEncoder(n_layers, hidden, n_context=3)  # same prefix length as full
        elif variant == "no_reparam":
            self.ctx_enc = PrefixEncoder(n_layers, hidden, n_context=2)
            self.id_enc = PrefixEncoder(1, hidden, n_context=0, id_dim=id_dim)  # one map for all layers
        elif variant == "no_context":
            self.id_enc = PrefixEncoder(n_layers, hidden, n_context=0, id_dim=id_dim)
        elif variant in INPUT_VARIANTS:
            self.id_enc = PrefixEncoder(1, hidden, n_context=2, id_dim=id_dim)
            if variant == "project_inputs":
                assert embeddings is not None
                self.register_buffer("vocab", embeddings.detach(), persistent=False)
        elif variant != "zero_shot":
            raise ValueError(f"SidePrompt: unknown variant {variant!r}")

    @property
    def length(self) -> int:
        return {"no_context": 1, "zero_shot": 0}.get(self.variant, 3)

    @property
    def layered(self) -> bool:
        return self.variant in LAYER_VARIANTS

    def forward(
        self, ids: torch.Tensor | None, batch_size: int
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        v = self.variant
        if v == "zero_shot":
            return None, None
        if v == "no_id":
            assert self.ctx_enc is not None
            return self.ctx_enc(batch_size=batch_size).expand(batch_size, -1, -1, -1), None
        assert self.id_enc is not None and ids is not None
        if v in ("full", "no_context"):
            prefix = self.id_enc(ids)  # (B, P, L, H), the ID token last
            return prefix, prefix[:, -1]
        if v == "no_reparam":
            assert self.ctx_enc is not None
            p = self.id_enc(ids).expand(-1, -1, self.n_layers, -1)  # the same vector in every layer
            ctx = self.ctx_enc(batch_size=batch_size).expand(batch_size, -1, -1, -1)
            return torch.cat([ctx, p], dim=1), p[:, -1]
        tokens = self.id_enc(ids)[:, :, 0]  # (B, 3, H): [c_1, c_2, W x + b]
        if v == "project_inputs":
            q = tokens[:, -1]
            attn = torch.softmax(q @ self.vocab.T / math.sqrt(self.hidden), dim=-1)
            tokens = torch.cat([tokens[:, :-1], (attn @ self.vocab).unsqueeze(1)], dim=1)
        return tokens, tokens[:, -1:]


class Towers:
    """Runs one side's tower: ``encode(prompt, rows, ids) -> (representation (B, H), aligned (B, L', H))``."""

    def __init__(self, model: Any, pad_id: int, device: str, pooling: str, lead: int) -> None:
        self.model, self.pad_id, self.device, self.lead = model, pad_id, device, lead
        self.head = PooledHead(pooling)
        self.injector = LayerPrefix()

    def inputs(self, side: SidePrompt, batch: Batch, ids: torch.Tensor | None) -> tuple[ModelInputs, Any]:
        soft, aligned = side(ids, len(batch))
        if soft is None:
            return plain_inputs(self.model, batch), aligned
        if side.layered:
            return self.injector.inputs(self.model, batch, prefix=soft), aligned
        embeds = self.model.get_input_embeddings()(batch.input_ids)
        p = soft.shape[1]
        embeds = torch.cat([embeds[:, : self.lead], soft.to(embeds.dtype), embeds[:, self.lead + p :]], dim=1)
        return ModelInputs(embeds, batch.attention_mask, batch.position_ids), aligned

    def encode(
        self, side: SidePrompt, rows: list[np.ndarray], ids: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch = batch_of(rows, self.pad_id, self.device)
        inputs, aligned = self.inputs(side, batch, ids)
        return self.head(self.model, inputs, batch), aligned

    @torch.no_grad()
    def token_states(self, rows: list[np.ndarray]) -> torch.Tensor:
        """(B, 1, H) mean of the rows' token embeddings (the lookup the input-token variants write their
        soft tokens into): their InfoNCE target."""
        batch = batch_of(rows, self.pad_id, self.device)
        embeds = self.model.get_input_embeddings()(batch.input_ids)
        return pool(embeds, batch.attention_mask).unsqueeze(1)

    @torch.no_grad()
    def text_states(self, rows: list[np.ndarray], n_layers: int) -> torch.Tensor:
        """(B, L', H) mean-pooled hidden states of the text-only pass entering layers 1..L' (the InfoNCE
        targets h~^l of the layer-prefix variants)."""
        batch = batch_of(rows, self.pad_id, self.device)
        inputs = plain_inputs(self.model, batch)
        body = backbone_body(self.model)
        out = body(**inputs.kwargs(), output_hidden_states=True)
        states = out.hidden_states
        return torch.stack([pool(states[layer], batch.attention_mask) for layer in range(n_layers)], dim=1)


def info_nce(a: torch.Tensor, b: torch.Tensor, keys: torch.Tensor, tau: float) -> torch.Tensor:
    """In-batch InfoNCE per layer [RA-Rec Eqs. 14-15], cosine similarity over temperature ``tau``, averaged
    over the N rows and L layers. The denominator runs over the other rows' text states (standard InfoNCE,
    rarec.md §3b: the printed diagonal-only sum would be degenerate); rows of the same entity (``keys``)
    are not each other's negatives."""
    n = a.shape[0]
    if n < 2:
        return a.sum() * 0.0
    a = nn.functional.normalize(a.float(), dim=-1)
    b = nn.functional.normalize(b.float(), dim=-1)
    logits = torch.einsum("nlh,mlh->lnm", a, b) / tau  # (L, N, N)
    same = (keys.unsqueeze(0) == keys.unsqueeze(1)) & ~torch.eye(n, dtype=torch.bool, device=keys.device)
    logits = logits.masked_fill(same.unsqueeze(0), -1e9)
    target = torch.arange(n, device=a.device).expand(logits.shape[0], n)
    return nn.functional.cross_entropy(logits.reshape(-1, n), target.reshape(-1))


@dataclass
class TowerParts:
    """What a fitted RA-Rec builds on its backbone: the hard prompts, the two towers over the frozen LM and
    their soft prompts (``sides``: the alignment module, the only part that trains)."""

    prompts: Prompts
    towers: Towers
    sides: nn.ModuleDict
