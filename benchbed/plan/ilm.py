"""The stages of ``ilm`` on the generative task (OpenP5, ILM §4.4) from the method's own examples and modules.

The generative path (``ilm_generative.ILMGenerative``) is a ``GenerativeLM`` with N query tokens per slot,
so the examples, prompts and answers are read as for ``p5-random`` / ``embedproj``
(:mod:`benchbed.plan.generative`: ``_training_examples`` and ``encode_rows`` with ``slot_width`` = N):

- ``generative-text``: p5-random's text stage, first, on a randomly initialised backbone (App. B).
- ``ilm-stage1``: the Q-Former pretraining (ITC/ITM/ITG on item texts, user-item pairs) runs without the LLM.
  It is **not priced**: its three losses mix text towers, hard-negative draws and a generation head, which
  this planner does not model yet. Stage 2's notes say so; its FLOPs are left out of the totals.
- ``ilm-stage2``: the LLM (full, or LoRA, or frozen with ``freeze_llm``) + Q-Former + projector on the slot
  prompts. Every row runs the Q-Former on the user and every history slot (1 + history_len entities, padded
  slots included, as ``slot_vectors`` does) and projects N query outputs into the LLM: forward and backward
  FLOPs from :func:`qformer_flops` (checked against ``FlopCounterMode`` in tests/test_plan.py).
- test: constrained beam search, as the other generative methods (D's ``_eval_stages``).

The item-to-text path (``ilm_item2text.ILMItem2Text``, task ``item2text``) is planned the same way: the
title warm start (random backbones), stage 2 with the Q-Former at both item slots of every row, and the
task's decoding (:func:`benchbed.plan.item2text.decode_stages`).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.llm.lora import LoraSpec
from benchbed.plan.counts import lora_count
from benchbed.plan.flops import Arch, Trainable
from benchbed.plan.generative import _bind, _encode, _eval_stages, _text_stage
from benchbed.plan.stages import StagePlan

if TYPE_CHECKING:
    from benchbed.methods.ilm.params import ILMGenerativeParams, ILMItem2TextParams, ILMParams


def qformer_flops(
    *, entities: int, d_in: int, width: int, layers: int, queries: int, memory: int, hidden: int, train: bool
) -> float:
    """``ILMParts._tokens`` on ``entities`` input rows: the memory linear, per layer the queries' self-
    attention (4 projections, N x N), cross-attention (Q/O on N queries, K/V on the memory tokens, N x M),
    the query feed-forward (W -> 4W -> W), then the projector (W -> LLM hidden) per query. With ``train``
    everything trains (weight gradients) and every input but the frozen input table's carries a gradient,
    so the backward is twice the forward less the memory linear's input gradient."""
    b, n, m, w = entities, queries, memory, width
    mem = 2.0 * b * d_in * m * w
    per_layer = (
        4 * 2.0 * b * n * w * w  # self-attention q, k, v, o
        + 4.0 * b * n * n * w  # its QK^T and PV
        + 2 * 2.0 * b * n * w * w  # cross-attention q, o
        + 2 * 2.0 * b * m * w * w  # cross-attention k, v on the memory
        + 4.0 * b * n * m * w  # its QK^T and PV
        + 2 * 2.0 * b * n * w * 4 * w  # the query feed-forward
    )
    proj = 2.0 * b * n * w * hidden
    fwd = mem + layers * per_layer + proj
    return fwd if not train else 3.0 * fwd - mem


def encoder_parameters(p: ILMParams, d_in: int, vocab: int, hidden: int) -> tuple[int, int]:
    """(Q-Former parameters, projector parameters), counted on the real modules (built on the meta device)."""
    from benchbed.methods.ilm.encoder import EncoderConfig, ILMEncoder

    cfg = EncoderConfig.from_params(p, d_in, vocab)
    with torch.device("meta"):  # the paper's 8 x 768 encoder: shapes only, no memory
        encoder = sum(p.numel() for p in ILMEncoder(cfg).parameters())
    return int(encoder), cfg.width * hidden + hidden


def input_dim(p: ILMParams) -> int:
    """Width of the encoder's input rows: the CF vectors (behavioral), the sentence embeddings (semantic,
    minilm: 384) or both concatenated (``ilm_inputs.build_inputs``)."""
    from benchbed.methods import method_defaults

    cf = int(dict(p.cf_params or {}).get("dim", method_defaults(p.cf_model, "generative").get("dim", 64)))
    semantic = 384  # all-MiniLM-L6-v2's sentence embedding (the only semantic_encoder benchbed bundles)
    return {"behavioral": cf, "semantic": semantic, "combined": cf + semantic}[p.input]


def ilm_stages(
    method: Any, task: Any, split: Split, tokenizer: Any, config: Any, arch: Arch, *, seed: int
) -> list[StagePlan]:
    from benchbed.llm.recipes.warm_start import wants_warm_start
    from benchbed.methods.ilm.generative import ILMGenerative

    if method.p.item_encoder != "qformer":
        raise ConfigError(f"benchbed plan: ilm item_encoder={method.p.item_encoder!r} is not modelled yet")
    if task.name == "item2text":
        return _item2text_stages(method, task, split, tokenizer, config, arch, seed=seed)
    gen: Any = ILMGenerative(**method._own(ILMGenerative))
    p: ILMGenerativeParams = gen.p
    _bind(gen, task, split, tokenizer, config)
    n_q = p.n_queries
    gen.slot_width = n_q
    examples = gen._training_examples(split, SimpleNamespace(seed=seed))
    bs, accum = p.batch_size, p.grad_accum
    stages: list[StagePlan] = []
    if wants_warm_start(gen.params):
        lengths, kept = _encode(gen, examples, use_slots=False)
        train, n = _text_stage(gen.params, p.tuning, LoraSpec(), config, arch)
        stages.append(StagePlan("generative-text", "train", lengths, bs, p.epochs, accum, kept, train, n))
    dims, enc_n, proj_n = _qformer(p, tokenizer, arch)
    unpriced = (
        [
            f"ilm-stage1 (Q-Former pretraining, ITC/ITM/ITG, pairs {p.stage1_pairs}, {enc_n:,} "
            "parameters) runs first: not priced, left out of the totals"
        ]
        if p.stage1
        else []
    )
    vectors = 1 + gen.setup.history_len
    lengths, kept = _encode(gen, examples, use_slots=True)
    note = f"Q-Former ({enc_n:,}) + projector ({proj_n:,}) on {vectors} slots x {n_q} tokens per row"
    flops = qformer_flops(entities=vectors, train=True, **dims)
    stages.append(
        _stage2("ilm-stage2", gen, config, arch, lengths, kept, enc_n + proj_n, flops, [note, *unpriced])
    )
    extra = qformer_flops(entities=vectors, train=False, **dims)
    stages.extend(_eval_stages(gen, task, split, arch, True, kept - 1, extra))
    return stages


def _qformer(p: ILMParams, tokenizer: Any, arch: Arch) -> tuple[dict[str, int], int, int]:
    """The Q-Former's shapes for :func:`qformer_flops`, its parameters and the projector's."""
    d_in = input_dim(p)
    enc_n, proj_n = encoder_parameters(p, d_in, len(tokenizer), arch.hidden)
    dims = {
        "d_in": d_in,
        "width": p.encoder_width,
        "layers": p.encoder_layers,
        "queries": p.n_queries,
        "memory": p.memory_tokens,
        "hidden": arch.hidden,
    }
    return dims, enc_n, proj_n


def _stage2(
    name: str,
    method: Any,
    config: Any,
    arch: Arch,
    lengths: np.ndarray,
    kept: int,
    outside: int,
    flops: float,
    notes: list[str],
) -> StagePlan:
    """ILM's stage 2 of ``method`` (either task path): the Q-Former and projector trained into the LLM
    (frozen, LoRA or full)."""
    p: ILMGenerativeParams | ILMItem2TextParams = method.p
    train, in_backbone = _stage2_training(method, config, arch)
    return StagePlan(
        name,
        "train",
        lengths,
        p.batch_size,
        p.stage2_epochs,
        p.grad_accum,
        kept,
        train,
        in_backbone,
        outside,
        flops,
        notes=notes,
    )


def _stage2_training(method: Any, config: Any, arch: Arch) -> tuple[Trainable, int]:
    """What stage 2 trains in the LLM: nothing (``freeze_llm``), LoRA or all of it; inputs carry grads."""
    p: ILMParams = method.p
    if p.freeze_llm:
        return Trainable("none", inputs_grad=True), 0
    if p.tuning == "lora":
        spec = LoraSpec.from_params(method.params)
        count = lora_count(config, spec)
        return Trainable("lora", tuple(count.targets), spec.r, inputs_grad=True), count.trainable
    return Trainable("full", inputs_grad=True), arch.parameters


def _item2text_stages(
    method: Any, task: Any, split: Split, tokenizer: Any, config: Any, arch: Arch, *, seed: int
) -> list[StagePlan]:
    """``ilm_item2text.ILMItem2Text``: the title warm start, (stage 1, unpriced), stage 2 with the Q-Former's
    N tokens at both item slots of every row, then the task's decoding."""
    from benchbed.item2text.examples import sample_examples
    from benchbed.item2text.prompts import SLOTS
    from benchbed.llm.backbone.facts import end_token
    from benchbed.llm.recipes.warm_start import wants_warm_start
    from benchbed.methods.ilm.item2text import ILMItem2Text
    from benchbed.plan.item2text import decode_stages

    i2t: Any = ILMItem2Text(**method._own(ILMItem2Text))
    p: ILMItem2TextParams = i2t.p
    proto = task.protocol(split)
    n_q = p.n_queries
    i2t.proto, i2t.tok, i2t.n_tokens = proto, tokenizer, n_q
    i2t.end = end_token(tokenizer, SimpleNamespace(config=config))
    examples = sample_examples(proto.train, p.max_train_examples, seed)
    stages: list[StagePlan] = []
    if wants_warm_start(i2t.params):
        text, kept = _i2t_lengths(i2t, examples, "title")
        bs, epochs, accum = p.batch_size, p.epochs, p.grad_accum
        full = Trainable("full")
        stages.append(
            StagePlan("ilm-i2t-text", "train", text, bs, epochs, accum, kept, full, arch.parameters)
        )
    dims, enc_n, proj_n = _qformer(p, tokenizer, arch)
    slot, kept = _i2t_lengths(i2t, examples, "slot")
    note = f"Q-Former ({enc_n:,}) + projector ({proj_n:,}) on {len(SLOTS)} item slots x {n_q} tokens per row"
    unpriced = (
        "ilm-stage1 (Q-Former pretraining on item texts) runs first: not priced, left out of the totals"
    )
    flops = qformer_flops(entities=len(SLOTS), train=True, **dims)
    notes = [note, *([unpriced] if p.stage1 else [])]
    stages.append(_stage2("ilm-i2t-stage2", i2t, config, arch, slot, kept, enc_n + proj_n, flops, notes))
    extra = qformer_flops(entities=len(SLOTS), train=False, **dims)

    def test_lengths(ex: list[Any]) -> np.ndarray:
        items = np.full((len(ex), 2), -1, dtype=np.int64)
        for r, e in enumerate(ex):
            items[r, : len(e.items)] = e.items
        enc, _ = i2t.encode_prompts([e.prompt for e in ex], items, mode="slot")
        return np.asarray(enc.lengths, dtype=np.int64)

    stages.extend(decode_stages(i2t, task, proto, arch, test_lengths, extra))
    return stages


def _i2t_lengths(i2t: Any, examples: list[Any], mode: str) -> tuple[np.ndarray, int]:
    """Prompt lengths of the item-to-text rows in ``mode`` and the tokens kept (longest answer + 1)."""
    items = i2t.item_matrix([e.items for e in examples])
    refs = [e.reference for e in examples]
    enc, answer = i2t.encode_prompts([e.prompt for e in examples], items, refs, mode=mode)
    return np.asarray(enc.lengths, dtype=np.int64), int(answer.max()) + 1
