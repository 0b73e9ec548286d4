"""Matmul FLOPs of a decoder batch, forward and training backward, from the architecture alone.

Counted as ``torch.utils.flop_counter.FlopCounterMode`` counts them (2 x m x n x k per matmul; norms,
softmax and element-wise ops are not counted): the projections of every block, the two attention matmuls
(QK^T and PV, full square as eager attention and the SDPA kernels compute them), the LM head on the kept
positions only (``logits_to_keep``: 1 for Yes/No scoring), LoRA's two small matmuls, and the injected
modules' MLPs. The backward counts what autograd runs: a weight gradient only for trainable weights, an input
gradient only where something upstream requires grad (so with text-only LoRA the first block's frozen
Q/K/V projections get none). Tested against ``FlopCounterMode`` on tiny runs (tests/test_plan.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

ATTN_IN = ("q_proj", "k_proj", "v_proj", "c_attn", "query_key_value", "qkv_proj", "query", "key", "value")
ATTN_OUT = ("o_proj", "out_proj", "dense")
MLP_IN = ("gate_proj", "up_proj", "c_fc", "fc1", "fc_in", "dense_h_to_4h")


@dataclass(frozen=True)
class Linear:
    name: str  # leaf name (q_proj, c_attn, ...)
    role: str  # attn_in | attn_out | mlp_in | mlp_out
    n_in: int
    n_out: int


@dataclass(frozen=True)
class Arch:
    """The shapes a FLOP and memory estimate needs, read from a (meta-device) model."""

    layers: int
    hidden: int
    vocab: int
    q_width: int  # heads x head_dim
    kv_width: int
    intermediate: int
    linears: tuple[Linear, ...]  # one block's
    parameters: int
    tied: bool

    @property
    def block_macs(self) -> int:
        return sum(lin.n_in * lin.n_out for lin in self.linears)


def _blocks(model: nn.Module, n_layers: int) -> nn.ModuleList:
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers:
            return module
    raise ValueError(f"{type(model).__name__}: no list of {n_layers} blocks")


def _shape(module: Any) -> tuple[int, int] | None:
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D":  # GPT-2: weight is (in, out)
        w = module.weight
        return int(w.shape[0]), int(w.shape[1])
    return None


def arch_of(model: Any) -> Arch:
    cfg = model.config
    layers = int(cfg.num_hidden_layers)
    hidden = int(cfg.hidden_size)
    heads = int(cfg.num_attention_heads)
    head_dim = int(getattr(cfg, "head_dim", None) or hidden // heads)
    kv_heads = int(getattr(cfg, "num_key_value_heads", None) or heads)
    linears = []
    for name, module in _blocks(model, layers)[0].named_modules():
        shape = _shape(module)
        if shape is None or "lora_" in name:  # a peft-wrapped model: its adapters are not block weights
            continue
        name = name.removesuffix(".base_layer")
        leaf = name.rsplit(".", 1)[-1]
        in_attn = "attn" in name or "attention" in name
        if leaf in ATTN_IN:
            role = "attn_in"
        elif in_attn and (leaf in ATTN_OUT or leaf == "c_proj"):
            role = "attn_out"
        elif leaf in MLP_IN or name.endswith("intermediate.dense"):  # BERT's MLP input
            role = "mlp_in"
        else:
            role = "mlp_out"
        linears.append(Linear(leaf, role, *shape))
    inter = max((lin.n_out for lin in linears if lin.role == "mlp_in"), default=4 * hidden)
    # an encoder (BertModel) has no LM head: its vocabulary is the input embeddings'
    out_emb = model.get_output_embeddings()
    if out_emb is None:
        out_emb = model.get_input_embeddings()
    return Arch(
        layers=layers,
        hidden=hidden,
        vocab=int(out_emb.weight.shape[0]),
        q_width=heads * head_dim,
        kv_width=kv_heads * head_dim,
        intermediate=inter,
        linears=tuple(linears),
        parameters=int(sum(p.numel() for p in model.parameters())),
        tied=bool(getattr(cfg, "tie_word_embeddings", False)),
    )


@dataclass(frozen=True)
class Trainable:
    """What a stage trains: ``full`` backbone, ``lora`` (the adapters) or ``none``. Adapters on ``targets``
    (rank ``r``) are in the forward whenever ``targets`` is set, trained or frozen (CoLLM's step 2);
    ``inputs_grad``: the prompt's inputs carry gradients (injected vectors from a trained module)."""

    mode: str = "none"
    targets: tuple[str, ...] = ()
    r: int = 0
    inputs_grad: bool = False

    def lora_on(self, lin: Linear) -> bool:
        return lin.name in self.targets


@dataclass(frozen=True)
class BatchShape:
    rows: int
    length: int  # padded tokens per row
    kept: int = 1  # positions through the LM head per row


def forward_flops(arch: Arch, shape: BatchShape, train: Trainable | None = None) -> float:
    tokens = shape.rows * shape.length
    lin = 2.0 * tokens * arch.block_macs * arch.layers
    attn = 4.0 * shape.rows * shape.length**2 * arch.q_width * arch.layers
    head = 2.0 * shape.rows * shape.kept * arch.hidden * arch.vocab
    lora = 0.0
    if train is not None:
        lora = sum(2.0 * tokens * train.r * (x.n_in + x.n_out) for x in arch.linears if train.lora_on(x))
        lora *= arch.layers
    return lin + attn + head + lora


def backward_flops(arch: Arch, shape: BatchShape, train: Trainable) -> float:
    """Autograd's matmuls for one training batch (see the module docstring for what needs a gradient)."""
    tokens = shape.rows * shape.length
    full = train.mode == "full"
    sq = 2.0 * shape.rows * shape.length**2 * arch.q_width  # one attention matmul's backward product
    stream = train.inputs_grad or full  # does the residual stream entering the block carry a gradient
    total = 0.0
    for _ in range(arch.layers):
        flags: dict[str, bool] = {}
        for x in arch.linears:
            x_grad = stream if x.role in ("attn_in", "mlp_in") else True  # refined below for outputs
            if x.role == "attn_out":
                x_grad = flags.get("attn", stream)
            if x.role == "mlp_out":
                x_grad = flags.get("mlp", stream)
            macs = tokens * x.n_in * x.n_out
            total += 2.0 * macs * (int(x_grad) + int(full))
            lora = train.lora_on(x) and train.mode == "lora"
            if train.lora_on(x):  # A: in -> r, B: r -> out
                total += 2.0 * tokens * train.r * (x.n_in + x.n_out) * int(lora)  # weight grads
                total += 2.0 * tokens * train.r * x.n_out * int(lora or x_grad)  # B's input grad
                total += 2.0 * tokens * train.r * x.n_in * int(x_grad)  # A's input grad
            out_grad = x_grad or full or lora
            if x.role == "attn_in":
                flags["attn"] = flags.get("attn", False) or out_grad
                flags.setdefault("qkv", False)
                _mark_qkv(flags, x.name, out_grad)
            elif x.role == "attn_out":
                stream = stream or out_grad
            elif x.role == "mlp_in":
                flags["mlp"] = flags.get("mlp", False) or out_grad
            else:
                stream = stream or out_grad
        q, k, v = (flags.get(n, flags.get("c_attn_all", False)) for n in ("q", "k", "v"))
        # S = Q K^T: dQ, dK; O = P V: dP (whenever Q or K needs it), dV
        total += sq * (int(q) + int(k) + int(q or k) + int(v))
    head_grad = stream  # the LM head's input gradient, when anything before it trains
    total += 2.0 * shape.rows * shape.kept * arch.hidden * arch.vocab * (int(head_grad) + int(full))
    return total


def _mark_qkv(flags: dict[str, bool], name: str, on: bool) -> None:
    key = {"q_proj": "q", "k_proj": "k", "v_proj": "v"}.get(name)
    if key is None:  # a fused projection: all three
        flags["c_attn_all"] = flags.get("c_attn_all", False) or on
    else:
        flags[key] = flags.get(key, False) or on


def mlp_flops(sizes: list[int], vectors: int, train: bool) -> float:
    """An injected MLP (``sizes`` = [in, ..., out]) applied to ``vectors`` rows; with ``train`` its backward
    (weight grads everywhere, input grads for all but the first layer: its input is a frozen table)."""
    macs = [a * b for a, b in zip(sizes, sizes[1:], strict=False)]
    fwd = 2.0 * vectors * sum(macs)
    if not train:
        return fwd
    return fwd + 2.0 * vectors * (sum(macs) + sum(macs[1:]))


def train_step_flops(arch: Arch, shape: BatchShape, train: Trainable, extra: float = 0.0) -> float:
    return forward_flops(arch, shape, train) + backward_flops(arch, shape, train) + extra
