"""The ILM encoder: a BLIP-2 Q-Former over one item's input embedding (ILM §3.2, Eq. 1; BLIP-2 §3.1).

N learnable queries and a text tower share every self-attention layer; only the queries cross-attend to the
item's memory. The memory is the input embedding ``e`` mapped by one linear layer to ``memory_tokens`` vectors
of the encoder width (protocols/ilm.md §1i.10: "a 1-token memory", inferred; the paper does not say). Layers
are BERT-style post-LN blocks, as BLIP-2 (which initialises them from BERT-base); the queries have their own
feed-forward block (BLIP-2's ``intermediate_query``).

One module, three attention patterns (BLIP-2 Fig. 2, what "following BLIP-2" implies, protocols/ilm.md §1b):
- ``queries(e)`` / ``text_cls(ids)``: unimodal (queries and text never see each other) for the contrastive
  losses: run separately, which is the same thing with shared layers;
- ``match_logit(e, ids)``: bidirectional, the text tower's CLS output -> one logit (item-text matching);
- ``generation_loss(e, ids)``: multimodal causal: text sees every query and earlier text, queries never
  see text (item-grounded text generation, LM head tied to the token embeddings).

The paper's encoder has 8 layers / 168M parameters (T7/T8); width and heads are not stated, so they are
parameters here (tiny on CPU).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from benchbed.errors import ConfigError
from benchbed.methods.ilm.params import ILMParams


@dataclass(frozen=True)
class EncoderConfig:
    d_in: int  # input embedding width (behavioural, semantic or both concatenated)
    vocab_size: int  # text tokenizer vocabulary; two specials ([ENC] for CLS, [DEC] for ITG) are added
    n_queries: int = 4  # ILM §5.5: best around 4-8 (protocols/ilm.md §1i.1: default 4)
    width: int = 64
    layers: int = 2
    heads: int = 4
    memory_tokens: int = 1
    max_text_len: int = 64
    dropout: float = 0.1  # BERT/BLIP-2 hidden dropout

    @classmethod
    def from_params(cls, p: ILMParams, d_in: int, vocab_size: int) -> EncoderConfig:
        """The encoder an ILM run with parameters ``p`` builds (``ILMParts``; ``benchbed plan`` prices it)."""
        return cls(
            d_in=d_in,
            vocab_size=vocab_size,
            n_queries=p.n_queries,
            width=p.encoder_width,
            layers=p.encoder_layers,
            heads=p.encoder_heads,
            memory_tokens=p.memory_tokens,
            max_text_len=p.max_text_len,
            dropout=float(p.encoder_dropout),
        )

    def __post_init__(self) -> None:
        if self.n_queries < 1:
            raise ConfigError(f"ILM encoder: n_queries must be >= 1, got {self.n_queries}")
        if self.width % self.heads:
            raise ConfigError(
                f"ILM encoder: encoder_width {self.width} must be divisible by encoder_heads {self.heads}"
            )

    def as_dict(self) -> dict[str, int | float]:
        return asdict(self)


class Attention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(width, width)
        self.v = nn.Linear(width, width)
        self.o = nn.Linear(width, width)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, kv: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
        """``allowed`` (B, Lq, Lk) bool: which keys each query position may attend to (None = all)."""
        b, lq, w = x.shape
        lk = kv.shape[1]
        h = self.heads

        def split(t: torch.Tensor, n: int) -> torch.Tensor:
            return t.view(b, n, h, w // h).transpose(1, 2)

        mask = None if allowed is None else allowed[:, None]
        out = F.scaled_dot_product_attention(
            split(self.q(x), lq),
            split(self.k(kv), lk),
            split(self.v(kv), lk),
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.o(out.transpose(1, 2).reshape(b, lq, w))


def feed_forward(width: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width), nn.Dropout(dropout)
    )


class QFormerLayer(nn.Module):
    """Shared self-attention; cross-attention and feed-forward of the queries apart from the text's."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = Attention(width, heads, dropout)
        self.ln_self = nn.LayerNorm(width, eps=1e-12)
        self.cross_attn = Attention(width, heads, dropout)
        self.ln_cross = nn.LayerNorm(width, eps=1e-12)
        self.ffn_query = feed_forward(width, dropout)
        self.ln_query = nn.LayerNorm(width, eps=1e-12)
        self.ffn_text = feed_forward(width, dropout)
        self.ln_text = nn.LayerNorm(width, eps=1e-12)
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, n_q: int, allowed: torch.Tensor | None, memory: torch.Tensor | None
    ) -> torch.Tensor:
        x = self.ln_self(x + self.drop(self.self_attn(x, x, allowed)))
        q, t = x[:, :n_q], x[:, n_q:]
        if n_q:
            if memory is not None:
                q = self.ln_cross(q + self.drop(self.cross_attn(q, memory, None)))
            q = self.ln_query(q + self.ffn_query(q))
        if t.shape[1]:
            t = self.ln_text(t + self.ffn_text(t))
        return torch.cat([q, t], dim=1)


def _bert_init(module: nn.Module) -> None:
    """BERT's initialisation (normal, std 0.02; zero biases): BLIP-2 starts its Q-Former from BERT."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class ILMEncoder(nn.Module):
    """Q-Former item encoder: ``queries(e) -> (B, N, W)``, ``text_cls``, ``match_logit``, ITG loss."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.enc_id = cfg.vocab_size  # [ENC]: the text tower's CLS (ITC, ITM)
        self.dec_id = cfg.vocab_size + 1  # [DEC]: starts item-grounded generation (BLIP-2)
        self.query_tokens = nn.Parameter(torch.randn(1, cfg.n_queries, w) * 0.02)  # BERT init range
        self.memory = nn.Linear(cfg.d_in, cfg.memory_tokens * w)
        self.token_emb = nn.Embedding(cfg.vocab_size + 2, w)
        self.pos_emb = nn.Embedding(cfg.max_text_len + 1, w)
        self.ln_emb = nn.LayerNorm(w, eps=1e-12)
        self.ln_query_in = nn.LayerNorm(w, eps=1e-12)
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(QFormerLayer(w, cfg.heads, cfg.dropout) for _ in range(cfg.layers))
        self.itc_text = nn.Linear(w, w)  # BLIP-2's text_proj / vision_proj before the cosine
        self.itc_query = nn.Linear(w, w)
        self.itm_head = nn.Linear(w, 1)
        self.lm_bias = nn.Parameter(torch.zeros(cfg.vocab_size + 2))
        self.log_temp = nn.Parameter(torch.tensor(0.07).log())  # CLIP/BLIP-2 initial temperature 0.07
        self.apply(_bert_init)

    @property
    def n_queries(self) -> int:
        return self.cfg.n_queries

    def temperature(self) -> torch.Tensor:
        """The learnable temperature, clamped to [0.001, 0.5] as BLIP-2 does."""
        return self.log_temp.exp().clamp(0.001, 0.5)

    # --- inputs ---------------------------------------------------------------------------------------
    def _memory(self, e: torch.Tensor) -> torch.Tensor:
        b = e.shape[0]
        return self.memory(e.to(self.memory.weight.dtype)).view(b, self.cfg.memory_tokens, self.cfg.width)

    def _text(self, ids: torch.Tensor, first: int) -> torch.Tensor:
        """Embeddings of ``[first] + ids`` (ids (B, L), right padded), cut to ``max_text_len``."""
        ids = ids[:, : self.cfg.max_text_len]
        lead = torch.full((ids.shape[0], 1), first, dtype=ids.dtype, device=ids.device)
        full = torch.cat([lead, ids], dim=1)
        pos = torch.arange(full.shape[1], device=ids.device)
        return self.drop(self.ln_emb(self.token_emb(full) + self.pos_emb(pos)[None]))

    def _queries_in(self, b: int) -> torch.Tensor:
        return self.drop(self.ln_query_in(self.query_tokens.expand(b, -1, -1)))

    def _run(
        self, x: torch.Tensor, n_q: int, allowed: torch.Tensor | None, memory: torch.Tensor | None
    ) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, n_q, allowed, memory)
        return x

    # --- the three patterns ---------------------------------------------------------------------------
    def queries(self, e: torch.Tensor) -> torch.Tensor:
        """(B, d_in) input embeddings -> (B, N, W) query outputs (Eq. 1): what stage 2 projects."""
        return self._run(self._queries_in(e.shape[0]), self.n_queries, None, self._memory(e))

    def query_features(self, e: torch.Tensor) -> torch.Tensor:
        """(B, N, W) L2-normalised query outputs for the contrastive losses."""
        return F.normalize(self.itc_query(self.queries(e)), dim=-1)

    def text_cls(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, W) L2-normalised text representation: the text tower's CLS output (unimodal)."""
        x = self._text(ids, self.enc_id)
        keys = self._key_mask(mask)
        allowed = keys[:, None, :].expand(-1, x.shape[1], -1)
        out = self._run(x, 0, allowed, None)
        return F.normalize(self.itc_text(out[:, 0]), dim=-1)

    def match_logit(self, e: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B,) item-text matching logits: queries and text attend to each other (bidirectional)."""
        b = e.shape[0]
        text = self._text(ids, self.enc_id)
        x = torch.cat([self._queries_in(b), text], dim=1)
        keys = torch.cat([mask.new_ones(b, self.n_queries, dtype=torch.bool), self._key_mask(mask)], dim=1)
        allowed = keys[:, None, :].expand(-1, x.shape[1], -1)
        out = self._run(x, self.n_queries, allowed, self._memory(e))
        return self.itm_head(out[:, self.n_queries]).squeeze(-1)

    def generation_loss(self, e: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean next-token loss of the text given the item (queries as a prefix, multimodal causal mask)."""
        b, n = e.shape[0], self.n_queries
        ids = ids[:, : self.cfg.max_text_len]
        mask = mask[:, : self.cfg.max_text_len]
        text = self._text(ids, self.dec_id)
        x = torch.cat([self._queries_in(b), text], dim=1)
        total, lt = x.shape[1], text.shape[1]
        allowed = torch.zeros(total, total, dtype=torch.bool, device=x.device)
        allowed[:n, :n] = True  # queries see queries only
        allowed[n:, :n] = True  # text sees every query ...
        allowed[n:, n:] = torch.ones(lt, lt, dtype=torch.bool, device=x.device).tril()  # ... and earlier text
        allowed = allowed[None].expand(b, -1, -1)
        out = self._run(x, n, allowed, self._memory(e))
        states = out[:, n:-1]  # [DEC] t1 .. t_{L-1} predict t1 .. tL
        logits = states @ self.token_emb.weight.T + self.lm_bias
        labels = ids.masked_fill(~mask.bool(), -100)
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100
        )

    def _key_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """(B, 1 + L) keys: the lead token always, then the real text tokens."""
        mask = mask[:, : self.cfg.max_text_len].bool()
        return torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)
