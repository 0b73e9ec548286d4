"""The stages of the generative LLM methods (``p5-random``, ``embedproj``) from the real split and templates.

The training examples, prompts and answers are the methods' own (``GenerativeLM._training_examples`` and
``encode_rows`` on the task's item index), so the plan reads the token counts a run would train on.
Evaluation is constrained beam search: one prefill of each user's prompt, then ``beams`` hypotheses decoded
for the answer's tokens against a KV cache; priced as that prefill plus one token per beam and step.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from benchbed.data.schema import Split
from benchbed.generative.examples import eval_rows
from benchbed.llm.lora import LoraSpec
from benchbed.plan.counts import lora_count, mlp_parameters
from benchbed.plan.flops import Arch, BatchShape, Trainable, forward_flops, mlp_flops
from benchbed.plan.stages import StagePlan

if TYPE_CHECKING:
    from benchbed.methods.embedproj import EmbedProjParams
    from benchbed.methods.p5_random import P5RandomParams

GENERATIVE_METHODS = ("p5-random", "embedproj")


def _bind(method: Any, task: Any, split: Split, tokenizer: Any, config: Any) -> None:
    """Give the method what ``encode_rows`` reads, as ``GenerativeLM.fit`` does (no backbone loaded)."""
    from benchbed.llm.backbone.facts import end_token

    protocol = task.method_setup(split).protocol
    method.bind_prompts(
        protocol, split.data.name, tokenizer, end_token(tokenizer, SimpleNamespace(config=config))
    )


def _encode(method: Any, examples: list[Any], use_slots: bool) -> tuple[np.ndarray, int]:
    rows = method.encode_rows(
        [e.sub_task for e in examples],
        np.asarray([e.user for e in examples]),
        [e.history for e in examples],
        [e.template for e in examples],
        use_slots=use_slots,
        targets=np.asarray([e.target for e in examples]),
    )
    return np.asarray(rows.enc.lengths, dtype=np.int64), int(rows.answer_len.max()) + 1


def _text_stage(
    p: dict[str, Any], tuning: str, lora: LoraSpec, config: Any, arch: Arch
) -> tuple[Trainable, int]:
    if tuning == "full":
        return Trainable("full"), arch.parameters
    count = lora_count(config, lora)
    return Trainable("lora", tuple(count.targets), lora.r), count.trainable


def generative_stages(
    method: Any, task: Any, split: Split, tokenizer: Any, config: Any, arch: Arch, *, seed: int
) -> list[StagePlan]:
    from benchbed.llm.recipes.warm_start import wants_warm_start

    p: P5RandomParams | EmbedProjParams = method.p
    _bind(method, task, split, tokenizer, config)
    examples = method._training_examples(split, SimpleNamespace(seed=seed))
    bs, accum = p.batch_size, p.grad_accum
    stages: list[StagePlan] = []
    text_lengths, kept = _encode(method, examples, use_slots=False)
    lora = LoraSpec(r=p.lora_r, alpha=p.lora_alpha, dropout=float(p.lora_dropout))
    if method.name == "p5-random" or wants_warm_start(method.params):
        train, n = _text_stage(
            method.params, p.tuning, lora if method.name == "p5-random" else LoraSpec(), config, arch
        )
        stages.append(
            StagePlan("generative-text", "train", text_lengths, bs, p.epochs, accum, kept, train, n)
        )
    use_slots = bool(method.use_slots)
    extra_eval = 0.0
    if method.name == "embedproj":
        projection, extra_eval, kept = _embedproj_stages(method, examples, config, arch)
        stages += projection
    stages.extend(_eval_stages(method, task, split, arch, use_slots, kept - 1, extra_eval))
    return stages


def _embedproj_stages(
    method: Any, examples: list[Any], config: Any, arch: Arch
) -> tuple[list[StagePlan], float, int]:
    """embedproj's projector stage (and LoRA stage 2), the projectors' FLOPs per scored row and the
    tokens kept of the slotted prompts."""
    from benchbed.methods import method_defaults

    p: EmbedProjParams = method.p
    bs, accum = p.batch_size, p.grad_accum
    cf_params = dict(p.cf_params or {})
    d = int(cf_params.get("dim", method_defaults(p.cf_model, "generative").get("dim", 64)))
    mid = p.proj_hidden or arch.hidden
    sizes = [d, mid, arch.hidden]
    proj_n = 2 * mlp_parameters(sizes)
    vectors = 1 + method.setup.history_len  # the user slot and one per history item
    slot_lengths, kept = _encode(method, examples, use_slots=True)
    stages = [
        StagePlan(
            "embedproj-stage1",
            "train",
            slot_lengths,
            bs,
            p.stage1_epochs,
            accum,
            kept,
            Trainable("none", inputs_grad=True),
            0,
            proj_n,
            mlp_flops(sizes, vectors, train=True),
            notes=[f"2 projectors {' -> '.join(map(str, sizes))} ({proj_n:,} parameters)"],
        )
    ]
    if p.stage == 2:
        spec = LoraSpec.from_params(method.params)
        count = lora_count(config, spec)
        stages.append(
            StagePlan(
                "embedproj-stage2",
                "train",
                slot_lengths,
                bs,
                p.stage2_epochs,
                accum,
                kept,
                Trainable("lora", tuple(count.targets), spec.r, inputs_grad=True),
                count.trainable,
                proj_n,
                mlp_flops(sizes, vectors, train=True),
            )
        )
    return stages, mlp_flops(sizes, vectors, train=False), kept


def _eval_stages(
    method: Any, task: Any, split: Split, arch: Arch, use_slots: bool, answer: int, extra: float
) -> list[StagePlan]:
    from benchbed.tasks.generative import GenerativeTaskParams
    from benchbed.tasks.subsets import templates_for

    tp: GenerativeTaskParams = task.p
    rows = eval_rows(split, "test", history_len=tp.history_len)
    n = len(rows.users) if tp.max_users is None else min(len(rows.users), tp.max_users)
    beams = tp.beams
    out = []
    for template in templates_for(method, "test"):
        key = {"seen": "seen:0", "unseen": "unseen:0"}[template]
        enc = method.encode_rows(
            [method.setup.sub_task] * n,
            np.asarray(rows.users[:n]),
            list(rows.histories[:n]),
            [key] * n,
            use_slots=use_slots,
        )
        lengths = np.asarray(enc.enc.lengths, dtype=np.int64)
        # beam search: per user ``beams`` x ``answer`` decoded tokens, each attending to its prompt
        decode = sum(
            beams
            * answer
            * (forward_flops(arch, BatchShape(1, 1, 1)) + 4.0 * int(ln) * arch.q_width * arch.layers)
            for ln in lengths
        )
        st = StagePlan(
            f"test ({template})",
            "eval",
            lengths,
            method.p.eval_batch_size,
            extra_flops_per_row=extra + decode / max(1, n),
            kv_rows=beams,
            kv_extra_tokens=answer,
            notes=[f"constrained beam search: {beams} beams x {answer} answer tokens per user"],
        )
        out.append(st)
    return out
