"""The stages of the item-to-text baselines (``i2t-text``, ``i2t-mlp1``, ``i2t-mlpn``, ``i2t-elm``).

Read from the method and the task, not re-derived: the training examples (``sample_examples`` of the task's
protocol under ``max_train_examples``), their prompts and references through the method's own
``encode_prompts`` (title or N slot tokens per item, the reference and the end token appended), the test
examples of each template (``eval_examples`` of the test items, ``max_test_items``), and the decoding setting.

- ``i2t-text``: the whole LLM on the title prompts.
- ``i2t-mlp1`` / ``i2t-mlpn``: one joint stage, the LLM in full + ``ItemMLP`` (d -> ratio x d -> N x H) on the
  two item columns of every row (``item_matrix``: the MLP runs on both, the second is padding for one-item
  prompts); the prompt's inputs carry gradients.
- ``i2t-elm``: the adapter alone (LLM frozen, inputs carry gradients), then everything.
- test: greedy/beam decoding priced as one prefill plus ``beams x max_new_tokens`` decoded tokens against the
  prompt (an upper bound: generation stops at the end token).
The CF model that exports the item vectors (ALS) is not priced.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from benchbed.data.schema import Split
from benchbed.plan.counts import mlp_parameters
from benchbed.plan.flops import Arch, BatchShape, Trainable, forward_flops, mlp_flops
from benchbed.plan.stages import StagePlan

if TYPE_CHECKING:
    from benchbed.llm.recipes.item2text import Item2TextParams
    from benchbed.methods.item2text_baselines import CFItemParams, ELMParams
    from benchbed.tasks.item2text import Item2TextTaskParams

ITEM2TEXT_METHODS = ("i2t-text", "i2t-mlp1", "i2t-mlpn", "i2t-elm")
ITEM_COLUMNS = 2  # Item2TextLM.item_matrix: (B, 2) item ids per row


def _cf_dim(p: CFItemParams) -> int:
    from benchbed.methods import method_defaults

    given = dict(p.cf_params or {})
    return int(given.get("dim", method_defaults(p.cf_model, "generative").get("dim", 64)))


def mlp_sizes(p: CFItemParams, n_tokens: int, hidden: int) -> list[int]:
    """``ItemMLP``: Linear(d, ratio x d) -> ReLU -> Linear(ratio x d, N x H)."""
    d = _cf_dim(p)
    return [d, p.mlp_ratio * d, n_tokens * hidden]


def _encode(method: Any, examples: list[Any], references: bool) -> tuple[np.ndarray, int]:
    items = method.item_matrix([e.items for e in examples])
    refs = [e.reference for e in examples] if references else None
    enc, answer = method.encode_prompts([e.prompt for e in examples], items, refs)
    return np.asarray(enc.lengths, dtype=np.int64), int(answer.max()) + 1 if len(answer) else 1


def item2text_stages(
    method: Any, task: Any, split: Split, tokenizer: Any, config: Any, arch: Arch, *, seed: int
) -> list[StagePlan]:
    from benchbed.item2text.examples import sample_examples
    from benchbed.llm.backbone.facts import end_token

    p: Item2TextParams = method.p
    proto = task.protocol(split)
    method.proto, method.tok = proto, tokenizer
    method.end = end_token(tokenizer, SimpleNamespace(config=config))
    examples = sample_examples(proto.train, p.max_train_examples, seed)
    lengths, kept = _encode(method, examples, references=True)
    bs, accum = p.batch_size, p.grad_accum
    full = Trainable("full", inputs_grad=method.name != "i2t-text")
    stages: list[StagePlan] = []
    extra_eval = 0.0
    if method.name == "i2t-text":
        stages.append(
            StagePlan("i2t-text", "train", lengths, bs, p.epochs, accum, kept, full, arch.parameters)
        )
    else:
        stages += _mlp_stages(method, arch, lengths, kept, full)
        extra_eval = mlp_flops(
            mlp_sizes(method.p, int(method.n_tokens), arch.hidden), ITEM_COLUMNS, train=False
        )
    stages.extend(
        decode_stages(
            method, task, proto, arch, lambda ex: _encode(method, ex, references=False)[0], extra_eval
        )
    )
    return stages


def _mlp_stages(method: Any, arch: Arch, lengths: np.ndarray, kept: int, full: Trainable) -> list[StagePlan]:
    """The ItemMLP methods: i2t-elm's adapter stage then everything; the MLP baselines jointly at once."""
    p: CFItemParams = method.p
    bs, accum = p.batch_size, p.grad_accum
    sizes = mlp_sizes(p, int(method.n_tokens), arch.hidden)
    mlp_n = mlp_parameters(sizes)
    mlp_train = mlp_flops(sizes, ITEM_COLUMNS, train=True)
    note = [f"ItemMLP {' -> '.join(map(str, sizes))} ({mlp_n:,} parameters)"]
    stages: list[StagePlan] = []
    if method.name == "i2t-elm":
        elm: ELMParams = method.p
        adapter = Trainable("none", inputs_grad=True)
        epochs1 = elm.stage1_epochs
        stages.append(
            StagePlan(
                "i2t-elm-adapter",
                "train",
                lengths,
                bs,
                epochs1,
                accum,
                kept,
                adapter,
                0,
                mlp_n,
                mlp_train,
                notes=note,
            )
        )
        name, epochs = "i2t-elm-all", elm.stage2_epochs
    else:
        name, epochs = "i2t-mlp-joint", p.epochs
    n = arch.parameters
    stages.append(
        StagePlan(name, "train", lengths, bs, epochs, accum, kept, full, n, mlp_n, mlp_train, notes=note)
    )
    return stages


def decode_stages(
    method: Any, task: Any, proto: Any, arch: Arch, lengths_of: Any, extra: float
) -> list[StagePlan]:
    """The task's test decoding per template: ``lengths_of(examples)`` gives the prompts' token counts."""
    from benchbed.tasks.subsets import templates_for

    items = proto.items.test
    tp: Item2TextTaskParams = task.p
    if tp.max_test_items is not None:
        items = np.sort(items)[: tp.max_test_items]
    beams, new = tp.num_beams, tp.max_new_tokens
    out = []
    for template in templates_for(method, "test"):
        key = "seen:0" if template == "seen" else "unseen:0"
        ex = proto.eval_examples(items, key)
        test_lengths = lengths_of(ex)
        decode = sum(
            beams
            * new
            * (forward_flops(arch, BatchShape(1, 1, 1)) + 4.0 * int(n) * arch.q_width * arch.layers)
            for n in test_lengths
        )
        out.append(
            StagePlan(
                f"test ({template})",
                "eval",
                test_lengths,
                method.p.eval_batch_size,
                extra_flops_per_row=extra + decode / max(1, len(ex)),
                kv_rows=beams,
                kv_extra_tokens=new,
                notes=[
                    f"{len(ex):,} prompts; decoding {beams} beam(s) x up to {new} new tokens (upper bound)"
                ],
            )
        )
    return out
