"""Layer prefixes: per-layer prefix hidden states that enter every attention layer through its own K/V.

RA-Rec (seed 004, Eqs. 8-11) and prefix tuning (Li & Liang 2021) give layer ``l`` extra key/value positions
``K = W_k^l [d^l; h^l]``, ``V = W_v^l [d^l; h^l]`` while the queries come from the text only. ``LayerPrefix``
projects the caller's prefix hidden states ``d^l`` with the layer's *own* (frozen, possibly LoRA-wrapped)
projections and hands them to the backbone as a pre-filled ``DynamicCache``: every family the kit covers
concatenates a cache in front of its text keys/values inside the attention, and the mask gets P leading
columns. What transformers 5.24 does, read in its source and pinned by the tests:

- Llama (``LlamaAttention``): ``cache.update`` after RoPE, before ``repeat_kv``; so prefix keys are stored
  with ``num_key_value_heads`` heads (grouped-query) and rotated at prefix positions 0..P-1 here.
- GPT-2 (``GPT2Attention``): the key/value thirds of ``c_attn``; ``cache.update`` before attention.
- BERT in encoder mode: ``BertModel`` forces ``use_cache=False`` but still hands the cache to every
  ``BertSelfAttention``, which calls ``cache.update`` too, and ``create_bidirectional_mask`` takes the key
  length from the 2D mask when no cache is passed to it (the "prefix tuning" special case in
  ``masking_utils._preprocess_mask_arguments``). So the encoder path needs no hooks; the returned cache is
  just not handed back (``use_cache`` is off for encoders).
- ``GradientCheckpointingLayer`` drops ``cache`` when training with checkpointing on, which would silently
  remove the prefix: ``inputs`` refuses that combination.
- The models' forwards call the argument ``cache`` and accept ``past_key_values`` with a deprecation warning
  (removal announced for 5.40); ``ModelInputs.kwargs`` decides which name is sent.

A ``DynamicCache`` grows by the text keys/values during the forward, so one ``ModelInputs`` serves one
forward call; call ``inputs`` again for another (it is cheap: P tokens per layer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from benchbed.errors import ConfigError
from benchbed.llm.backbone import facts
from benchbed.llm.backbone.facts import backbone_body
from benchbed.llm.injectors.base import Injector, ModelInputs
from benchbed.llm.injectors.prompts import Batch
from benchbed.sharding import call_whole as whole

FAMILIES = frozenset({"llama", "gpt2", "bert"})
# Decoders with a relative position encoding (RoPE): the text shifts by P so that every prefix key sits before
# every query, as a real preceding token would; a constant shift leaves text-to-text attention unchanged.
ROTARY_FAMILIES = frozenset({"llama"})

PrefixInput = torch.Tensor | Sequence[torch.Tensor]


def _split_heads(x: torch.Tensor, head_dim: int) -> torch.Tensor:
    """(B, P, n*hd) -> (B, n, P, hd): the layout every family's cache stores."""
    b, p, _ = x.shape
    return x.view(b, p, -1, head_dim).transpose(1, 2)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def _llama_kv(
    core: Any, prefix: list[torch.Tensor], pre_norm: bool
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    b, p, _ = prefix[0].shape
    positions = torch.arange(p, device=prefix[0].device).unsqueeze(0).expand(b, -1)
    # One rotary table for all layers, as LlamaModel.forward computes it (cos/sin of shape (B, P, hd)).
    cos, sin = core.rotary_emb(prefix[0], position_ids=positions)
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    out = []
    for layer, d in zip(core.layers, prefix, strict=True):
        attn = layer.self_attn
        x = whole(layer.input_layernorm, d) if pre_norm else d
        k = _split_heads(whole(attn.k_proj, x), attn.head_dim)
        v = _split_heads(whole(attn.v_proj, x), attn.head_dim)
        out.append((k * cos + _rotate_half(k) * sin, v))
    return out


def _gpt2_kv(
    core: Any, prefix: list[torch.Tensor], pre_norm: bool
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for block, d in zip(core.h, prefix, strict=True):
        attn = block.attn
        x = whole(block.ln_1, d) if pre_norm else d
        _, k, v = whole(attn.c_attn, x).split(attn.split_size, dim=2)
        out.append((_split_heads(k, attn.head_dim), _split_heads(v, attn.head_dim)))
    return out


def _bert_kv(
    core: Any, prefix: list[torch.Tensor], pre_norm: bool
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    # Post-LN: the self-attention reads the layer input as it is: no norm to apply (pre_norm is unused).
    out = []
    for layer, d in zip(core.encoder.layer, prefix, strict=True):
        sa = layer.attention.self
        out.append(
            (
                _split_heads(whole(sa.key, d), sa.attention_head_size),
                _split_heads(whole(sa.value, d), sa.attention_head_size),
            )
        )
    return out


_KV_BUILDERS = {"llama": _llama_kv, "gpt2": _gpt2_kv, "bert": _bert_kv}


def n_layers(model: Any) -> int:
    return int(model.config.num_hidden_layers)


def prefix_layers(prefix: PrefixInput, model: Any, batch_size: int) -> list[torch.Tensor]:
    """Validate and normalise ``prefix`` to L tensors (B, P, H); a batch dimension of 1 is broadcast.

    Accepts (B, P, L, H) or a list of L tensors (B, P, H); a wrong shape raises a ``ValueError`` naming the
    expected shape.
    """
    n_l, hidden = n_layers(model), int(model.config.hidden_size)
    expected = (
        f"expected (B={batch_size} or 1, P, L={n_l}, H={hidden}) or a list of {n_l} tensors (B, P, {hidden})"
    )
    if isinstance(prefix, torch.Tensor):
        if prefix.dim() != 4 or prefix.shape[2] != n_l:
            raise ValueError(f"layer prefix of shape {tuple(prefix.shape)}: {expected}")
        layers = list(prefix.unbind(dim=2))
    else:
        layers = list(prefix)
        if len(layers) != n_l:
            raise ValueError(f"layer prefix with {len(layers)} layers: {expected}")
    shape = layers[0].shape
    for t in layers:
        if t.dim() != 3 or t.shape != shape or t.shape[0] not in (1, batch_size) or t.shape[2] != hidden:
            raise ValueError(f"layer prefix with per-layer shape {tuple(t.shape)}: {expected}")
    if shape[1] == 0:
        raise ValueError(f"layer prefix of length 0: {expected}")
    return [t.expand(batch_size, -1, -1) for t in layers]


def prefix_kv(
    model: Any, prefix: list[torch.Tensor], *, pre_norm: bool = True
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer, the prefix keys/values (B, heads, P, head_dim) through that layer's own K/V projections."""
    family = facts.family(model)
    if family not in _KV_BUILDERS:
        raise ConfigError(
            f"the layer-prefix injector does not support model_type {family!r}; "
            f"expected one of {sorted(FAMILIES)}"
        )
    return _KV_BUILDERS[family](backbone_body(model), prefix, pre_norm)


def _checkpointing(model: Any) -> bool:
    return bool(model.training) and any(
        getattr(m, "gradient_checkpointing", False) for m in backbone_body(model).modules()
    )


class LayerPrefix(Injector):
    """Kind (c): per-layer prefix hidden states into every layer's keys/values (RA-Rec; prefix tuning).

    ``inputs(model, batch, prefix=..., prefix_mask=None, inputs_embeds=None)``:

    - ``prefix``: (B, P, L, H) or L tensors (B, P, H), the hidden states ``d^l`` (B may be 1 for shared
      learned vectors). Gradients flow to them; the backbone is only read.
    - ``prefix_mask``: (B, P), 0 hides a prefix position from that row (a fully hidden prefix gives the
      plain model's output).
    - ``inputs_embeds``: text embeddings to use instead of the model's own lookup (e.g. with slots spliced).

    ``pre_norm`` (default on): in pre-LN blocks (Llama ``input_layernorm``, GPT-2 ``ln_1``) the prefix goes
    through the layer's norm before ``k_proj``/``v_proj``, because ``d^l`` is a hidden state of layer ``l``,
    the same kind of vector as the text's ``h^l`` it is concatenated with in RA-Rec Eqs. 10-11, and those
    projections only ever see normed states. BERT is post-LN: its attention reads ``h^l`` as it is.

    Positions: Llama (RoPE) rotates the prefix keys at 0..P-1 and shifts the text by P (relative encoding: the
    prefix then precedes every query, and text-to-text attention is unchanged). GPT-2 and BERT add learned
    absolute position embeddings at the input only; the prefix bypasses them, and the text keeps positions
    0..T-1 (position ids are passed explicitly, because both models would otherwise start at the cache length:
    shifting would move the text to positions it was never seen at, and a hidden prefix would change the
    output; peft's prefix tuning does shift GPT-2 by leaving position ids unset).
    """

    kind: ClassVar[str] = "layer-prefix"
    families: ClassVar[frozenset[str]] = FAMILIES

    def __init__(self, *, pre_norm: bool = True) -> None:
        super().__init__()
        self.pre_norm = pre_norm

    def inputs(  # type: ignore[override]
        self,
        model: Any,
        batch: Batch,
        *,
        prefix: PrefixInput,
        prefix_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **signal: Any,
    ) -> ModelInputs:
        if signal:
            raise TypeError(f"LayerPrefix.inputs got unexpected signal {sorted(signal)}")
        family = facts.family(model)
        if family not in self.families:
            raise ConfigError(
                f"the {self.kind} injector does not support model_type {family!r}; expected one of "
                f"{sorted(self.families)}"
            )
        if _checkpointing(model):
            raise ConfigError(
                f"the {self.kind} injector passes its prefix as a KV cache, which transformers drops under "
                "gradient checkpointing; disable gradient checkpointing for this backbone"
            )
        b = len(batch)
        layers = prefix_layers(prefix, model, b)
        p = layers[0].shape[1]
        mask = batch.attention_mask
        if prefix_mask is None:
            pmask = torch.ones(b, p, dtype=mask.dtype, device=mask.device)
        else:
            if tuple(prefix_mask.shape) != (b, p):
                raise ValueError(f"prefix_mask of shape {tuple(prefix_mask.shape)}: expected (B={b}, P={p})")
            pmask = prefix_mask.to(device=mask.device, dtype=mask.dtype)
        embeds = model.get_input_embeddings()(batch.input_ids) if inputs_embeds is None else inputs_embeds
        dtype = embeds.dtype  # bf16 backbones: the cast keeps the graph, so fp32 producers still train
        kv = prefix_kv(
            model, [t.to(device=embeds.device, dtype=dtype) for t in layers], pre_norm=self.pre_norm
        )
        from transformers import DynamicCache

        cache = DynamicCache(ddp_cache_data=kv, config=model.config)
        shift = p if family in ROTARY_FAMILIES else 0
        return ModelInputs(
            inputs_embeds=embeds,
            attention_mask=torch.cat([pmask, mask], dim=1),
            position_ids=batch.position_ids + shift,
            past_key_values=cache,
            text_offset=p,
        )


class PrefixEncoder(nn.Module):
    """Per-layer prefix hidden states from learned context vectors and an optional ID vector.

    ``d^l = [c^l || W^l x + b^l]`` per layer ``l``: ``n_context`` learned vectors ``c^l`` (prefix tuning,
    Li & Liang 2021; RA-Rec's contextual instruction, Eqs. 5-6), then ``id_tokens`` tokens from a
    layer-specific affine map of the ID vector ``x`` (RA-Rec's reparameterisation, Eqs. 3-4).
    ``id_dim=0`` gives plain prefix tuning (RA-Rec's "w/o IDRepresentation" ablation).

    Init: truncated normal, std ``init_std`` cut at ``±init_bound`` (RA-Rec §4.1.4: "truncated normal in
    [-0.02, 0.02]"). Output: (B, P, L, H) with P = ``n_context + id_tokens`` (``id_tokens`` counts only
    when ``id_dim > 0``); the injector's ``prefix`` argument takes it as it is.
    """

    def __init__(
        self,
        n_layers: int,
        hidden: int,
        *,
        n_context: int = 2,
        id_dim: int = 0,
        id_tokens: int = 1,
        init_std: float = 0.02,
        init_bound: float = 0.02,
    ) -> None:
        super().__init__()
        if n_context < 0 or id_dim < 0 or id_tokens < 1:
            raise ValueError(f"PrefixEncoder: n_context={n_context}, id_dim={id_dim}, id_tokens={id_tokens}")
        if n_context == 0 and id_dim == 0:
            raise ValueError("PrefixEncoder needs n_context > 0 or id_dim > 0 (an empty prefix)")
        self.n_layers, self.hidden, self.n_context, self.id_dim = n_layers, hidden, n_context, id_dim
        self.id_tokens = id_tokens if id_dim > 0 else 0

        def init(*shape: int) -> nn.Parameter:
            return nn.Parameter(
                nn.init.trunc_normal_(torch.empty(*shape), std=init_std, a=-init_bound, b=init_bound)
            )

        self.context = init(n_layers, n_context, hidden) if n_context else None
        self.weight = init(n_layers, self.id_tokens * hidden, id_dim) if id_dim else None
        self.bias = init(n_layers, self.id_tokens * hidden) if id_dim else None

    @property
    def length(self) -> int:
        return self.n_context + self.id_tokens

    def forward(self, ids: torch.Tensor | None = None, batch_size: int | None = None) -> torch.Tensor:
        """``ids`` (B, id_dim) when ``id_dim > 0``; else ``batch_size`` (default 1, broadcast later)."""
        parts: list[torch.Tensor] = []
        if self.id_dim:
            if ids is None or ids.dim() != 2 or ids.shape[1] != self.id_dim:
                got = None if ids is None else tuple(ids.shape)
                raise ValueError(f"PrefixEncoder: ID vectors of shape {got}, expected (B, {self.id_dim})")
            b = ids.shape[0]
            assert self.weight is not None and self.bias is not None
            p = torch.einsum("lod,bd->blo", self.weight, ids.to(self.weight.dtype)) + self.bias
            parts.append(p.view(b, self.n_layers, self.id_tokens, self.hidden).transpose(1, 2))
        else:
            if ids is not None:
                raise ValueError("PrefixEncoder was built with id_dim=0 but got ID vectors")
            b = batch_size or 1
        if self.context is not None:
            ctx = self.context.transpose(0, 1).unsqueeze(0).expand(b, -1, -1, -1)
            parts.insert(0, ctx)
        return torch.cat(parts, dim=1)
