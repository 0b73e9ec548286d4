"""Memory per GPU of a training step and of a scoring batch, per precision and strategy.

Training (per process): weights + LoRA/injected parameters + their gradients + AdamW's two states +
activations saved for the backward at the micro-batch + the logits of the kept positions. Under ``ddp`` every
process holds the whole backbone; under ``fsdp`` (benchbed.sharding) the blocks' weights, and a fine-tuned
block's gradients and optimizer states, are split over the processes, while the activations of a process's
micro-batch stay whole. Scoring adds no gradients: weights + the KV cache of the batch (``use_cache``) + one
block's working set + the kept logits.

Activations saved per token and block were counted on one tiny Llama block (SwiGLU MLP) and one tiny GPT-2
block with :class:`benchbed.plan.measure.LiveTensorPeak` (10 h + 3.5 I and 14.75 h + 4 I values, I the MLP
width), in the training dtype. The backward's working set adds a quarter of a block. The peak is the larger
of the backward's (activations + logits + gradients) and the optimizer step's (2 x gradients + states).

Worked example (bf16, checked by hand in tests/test_plan.py): Vicuna-7B (6,738,415,616 parameters, h 4096,
I 11008, 32 blocks, vocab 32000), TALLRec's LoRA r=8 on q_proj,v_proj (4,194,304 parameters, kept in fp32 by
peft), one process, micro-batch 8 rows x 256 tokens:
- weights 6,738,415,616 x 2 B = 13.48 GB; LoRA 4,194,304 x 4 B = 0.017 GB
- gradients 4,194,304 x 4 B = 0.017 GB; AdamW states 2 x 4,194,304 x 4 B = 0.034 GB
- activations 2,048 tokens x (10 x 4096 + 3.5 x 11008) x 2 B x (32 + 0.25) blocks = 10.50 GB
- logits 8 x 1 x 32000 x (2 + 4 + 4) B = 0.003 GB
- peak = 13.48 + 0.017 + max(10.50 + 0.003 + 0.017, 2 x 0.017 + 0.034) = 24.01 GB: fits an A100 80GB
  (as CoLLM's and TALLRec's single-GPU runs did)
"""

from __future__ import annotations

from dataclasses import dataclass

from benchbed.plan.flops import Arch

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
ADAM_STATES = 2
BACKWARD_BLOCKS = 0.25  # the backward's working set, in blocks' worth of saved activations (measured)


@dataclass
class Memory:
    weights: float
    trainable: float  # LoRA / injected parameters themselves
    gradients: float
    optimizer: float
    activations: float
    kv_cache: float
    logits: float

    @property
    def total(self) -> float:
        """The peak: the backward holds the activations, the logits and the growing gradients; the
        optimizer step holds the gradients, the states and about one more gradient's worth of temporaries."""
        during_backward = self.activations + self.logits + self.gradients
        during_step = 2 * self.gradients + self.optimizer
        return self.weights + self.trainable + self.kv_cache + max(during_backward, during_step)

    def as_dict(self) -> dict[str, float]:
        return {**{k: float(v) for k, v in vars(self).items()}, "total": float(self.total)}


def gated(arch: Arch) -> bool:
    return sum(1 for lin in arch.linears if lin.role == "mlp_in") > 1


def activation_elems_per_token(arch: Arch) -> float:
    """Elements saved for the backward per token and block (see the module docstring)."""
    if gated(arch):
        return 10.0 * arch.hidden + 3.5 * arch.intermediate
    return 14.75 * arch.hidden + 4.0 * arch.intermediate


def train_memory(
    arch: Arch,
    *,
    dtype: str,
    rows: int,
    length: int,
    kept: int,
    trainable_in_backbone: int,
    trainable_outside: int,
    full: bool,
    strategy: str = "ddp",
    processes: int = 1,
) -> Memory:
    """Bytes per process of one training micro-batch of ``rows`` x ``length`` tokens."""
    b = DTYPE_BYTES[dtype]
    shards = processes if strategy == "fsdp" else 1
    weights = arch.parameters * b / shards
    if full:  # the backbone itself trains, in its dtype
        trainable = float(trainable_outside * 4)
        tuned = arch.parameters * b / shards + trainable_outside * 4
    else:  # adapters (peft keeps them in fp32) and injected modules (fp32)
        trainable = (trainable_in_backbone + trainable_outside) * 4.0
        tuned = trainable
    acts = rows * length * activation_elems_per_token(arch) * b * (arch.layers + BACKWARD_BLOCKS)
    # the logits in the dtype, their fp32 copy (none in fp32) and its gradient
    logits = rows * kept * arch.vocab * (b + 4.0 + (4.0 if b != 4 else 0.0))
    return Memory(
        weights=weights,
        trainable=trainable,
        gradients=tuned,
        optimizer=ADAM_STATES * tuned,
        activations=acts,
        kv_cache=0.0,
        logits=logits,
    )


def score_memory(
    arch: Arch, *, dtype: str, rows: int, length: int, strategy: str = "ddp", processes: int = 1
) -> Memory:
    """Bytes per process of one scoring batch (no gradients; the KV cache of every block is kept)."""
    b = DTYPE_BYTES[dtype]
    shards = processes if strategy == "fsdp" else 1
    tokens = rows * length
    kv = 2.0 * arch.kv_width * arch.layers * tokens * b
    working = tokens * (4.0 * arch.hidden + 2.0 * arch.intermediate) * b
    return Memory(
        weights=arch.parameters * b / shards,
        trainable=0.0,
        gradients=0.0,
        optimizer=0.0,
        activations=working,
        kv_cache=kv,
        logits=rows * arch.vocab * 4.0 * 2,
    )
