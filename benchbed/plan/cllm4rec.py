"""The stages of ``cllm4rec`` from the method's own documents and batches (nothing trains, no weights).

The plan builds the method's real ``Corpus`` over a ``VocabExtension`` whose tables live on the meta device
(so a 20k-user vocabulary costs no memory), the real content documents (``_content_docs``: reviews or item
metadata, capped by the budget) and the real epoch-0 batches of every stage (``batches().documents``,
``_rec_batches``: the same seeded bucketing, padding and masking a run uses). Each stage prices one epoch
and multiplies by its epochs (later epochs draw other batches of the same documents).

FLOPs of a document batch (``CLLM4RecCore._main_states``): the prompt runs once (``Lp`` tokens, left padded),
the main text but its last token (``Lm - 1``) runs against the prompt's KV cache, so attention covers
``Lp^2 + (Lm - 1)(Lp + Lm - 1)`` query-key pairs per row, not the square of the sum. The head reads the last
prompt state and every main state (``Lm`` positions; ``Lm - 1`` with ``code_shift``): collaborative
documents through the item rows of the extension (``n_items`` wide, and those rows train: a weight
gradient), content documents through the backbone's own frozen LM head (the base vocabulary). A
recommendation batch (``rec_loss``) runs its prompt once and scores the last state against all items. The
backbone is frozen but every input embedding carries a gradient (the new rows train), so the backward runs
every block's input gradients and no weight gradient.

Not modelled: ``llm-ftall`` and ``llm-scratch`` (the whole backbone trains; ``benchbed plan`` refuses them in
one line). Memory uses the generic formula at the largest ``rows x (Lp + Lm)`` batch with the logits of the
base vocabulary (an overestimate for collaborative documents, whose head is ``n_items`` wide).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.plan.flops import Arch, Trainable
from benchbed.plan.shaped import ShapedStage, shaped
from benchbed.plan.stages import StagePlan

if TYPE_CHECKING:
    from benchbed.methods.cllm4rec.params import CLLM4RecParams

UNMODELLED_VARIANTS = ("llm-ftall", "llm-scratch")


def extension_parameters(n_users: int, n_items: int, hidden: int, tables: int, separate_head: bool) -> int:
    """Trainable rows of the extension: one row per user and item token per table (+ a separate output
    matrix per table and type when the backbone's LM head is untied, paper App. B.3.1)."""
    return tables * (n_users + n_items) * hidden * (2 if separate_head else 1)


def segment_flops(
    arch: Arch,
    rows: int,
    prompt: int,
    main: int,
    kept: int,
    head_rows: int,
    *,
    train: bool,
    head_trains: bool,
) -> float:
    """One batch of ``rows`` documents: ``prompt`` tokens, then ``main`` tokens against the prompt's cache
    (``main=0``: one segment), ``kept`` positions through a head ``head_rows`` wide. With ``train`` the
    backward of a frozen backbone whose inputs carry a gradient; ``head_trains``: the head is trained rows."""
    tokens = rows * (prompt + main)
    area = rows * (prompt * prompt + main * (prompt + main))  # query-key pairs per head width
    head = 2.0 * rows * kept * arch.hidden * head_rows
    forward = 2.0 * tokens * arch.block_macs * arch.layers + 4.0 * area * arch.q_width * arch.layers + head
    if not train:
        return forward
    # input gradients of every projection; dQ, dK, dP, dV of both attention matmuls; the head's input
    # gradient and, for trained rows, its weight gradient
    backward = 2.0 * tokens * arch.block_macs * arch.layers + 8.0 * area * arch.q_width * arch.layers
    return forward + backward + head * (1 + int(head_trains))


def _doc_shape(batch: Any, code_shift: bool) -> tuple[int, int, int, int]:
    """(rows, prompt width, tokens run after the prompt, positions through the head) of a DocBatch."""
    rows, lp = (int(x) for x in batch.prompt.shape)
    lm = int(batch.main.shape[1])
    feed = lm - 1
    kept = feed if code_shift else feed + 1
    return rows, lp, feed, kept


def _lengths(batches: list[Any]) -> np.ndarray:
    out: list[np.ndarray] = []
    for b in batches:
        if hasattr(b, "prompt_mask"):
            out.append((b.prompt_mask.sum(1) + b.main_mask.sum(1)).numpy())
        else:
            out.append(b.batch.attention_mask.sum(1).numpy())
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, dtype=np.int64)


def _pass_flops(batches: list[Any], n_items: int, code_shift: bool, train: bool) -> Any:
    """A function of the architecture: FLOPs of one pass over ``batches`` (doc and rec batches mixed)."""
    shapes = []
    for b in batches:
        if hasattr(b, "prompt_mask"):
            rows, lp, feed, kept = _doc_shape(b, code_shift)
            collab = b.kind == "collab"
            shapes.append((rows, lp, feed, kept, collab, True))
        else:  # a recommendation prompt: one segment, the last state against every item
            rows, length = (int(x) for x in b.batch.input_ids.shape)
            shapes.append((rows, length, 0, 1, True, True))

    def flops(arch: Arch) -> float:
        return sum(
            segment_flops(
                arch,
                rows,
                lp,
                feed,
                kept,
                n_items if item_head else arch.vocab,
                train=train,
                head_trains=train and item_head,
            )
            for rows, lp, feed, kept, item_head, _ in shapes
        )

    return flops


def _shapes(batches: list[Any]) -> list[tuple[int, int]]:
    out = []
    for b in batches:
        if hasattr(b, "prompt_mask"):
            out.append((int(b.prompt.shape[0]), int(b.prompt.shape[1] + b.main.shape[1])))
        else:
            rows, length = b.batch.input_ids.shape
            out.append((int(rows), int(length)))
    return out


def _bind(method: Any, split: Split, tokenizer: Any, arch: Arch, config: Any, seed: int) -> dict[str, Any]:
    """Give the method what its batch builders read, as ``CLLM4Rec.fit`` does, on a meta-device extension;
    returns its content documents (or None)."""
    from benchbed.llm.injectors.vocab import VocabExtension
    from benchbed.methods.cllm4rec.docs import Corpus, positives, user_items
    from benchbed.methods.cllm4rec.method import COLLAB, CONTENT

    p: CLLM4RecParams = method.p
    if p.variant in UNMODELLED_VARIANTS:
        raise ConfigError(
            f"benchbed plan: cllm4rec variant {p.variant!r} trains the whole backbone, which is not "
            f"modelled yet (modelled: cllm4rec, llm-cf, llm-fixord, llm-prerec)"
        )
    method.eff = eff = method.effective()
    method.budget = method.resolve_budget(SimpleNamespace(budget={}), on_cpu=False)
    use_labels = p.train_positives == "label"  # "auto" follows the task's feedback: interactions on topk
    rows = positives(split, use_labels)
    method.train_items = user_items(rows, split.n_users)
    method._order_seed = int(seed)
    method.fit_info = {}
    with torch.device("meta"):
        ext = VocabExtension(
            arch.vocab,
            arch.hidden,
            {"user": split.n_users, "item": split.n_items},
            tables=(COLLAB, CONTENT),
            head="tied" if arch.tied else "separate",
            method="cllm4rec",
        )
    n_pos = getattr(config, "n_positions", None) or config.max_position_embeddings
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    method.corpus = corpus = Corpus(
        ext, tokenizer, max_length=min(p.max_length, int(n_pos)), pad_id=int(pad or 0)
    )
    ctx = SimpleNamespace(seed=seed, say=lambda *a, **k: None)
    docs, _ = method._content_docs(split, rows, corpus, ctx) if eff["use_content"] else (None, "none")
    return {"docs": docs, "separate": ext.head == "separate"}


def cllm4rec_stages(
    method: Any, split: Split, tokenizer: Any, config: Any, arch: Arch, *, seed: int
) -> list[StagePlan]:
    p: CLLM4RecParams = method.p
    bound = _bind(method, split, tokenizer, arch, config, seed)
    docs, eff, budget = bound["docs"], method.eff, method.budget
    n_items = split.n_items
    per_table = extension_parameters(split.n_users, n_items, arch.hidden, 1, bound["separate"])
    trains = _TrainStages(p.batch_size, p.grad_accum, n_items, p.code_shift, per_table)
    use_c = docs is not None
    tables = 2 if use_c else 1
    if use_c:
        trains.add(
            "cllm4rec-warmup",
            method.batches().documents(0, 0, None, docs, reorder=False),
            int(budget["warmup_epochs"]),
            1,
            f"content LLM alone on {len(docs['users']):,} content documents",
        )
    pre = method.batches().documents(0, 1, method.train_items, docs, reorder=eff["reorder_pretrain"])
    trains.add(
        "cllm4rec-pretrain",
        pre,
        int(budget["pretrain_epochs"]),
        tables,
        "L-step over the collaborative documents, then C-step over the content documents",
    )
    stages = trains.stages
    valid_users, _ = method._valid_targets(split, use_labels=p.train_positives == "label", budget=budget)
    if eff["finetune"]:
        trains.add(
            "cllm4rec-finetune",
            method._rec_batches(0, docs),
            int(budget["finetune_epochs"]),
            tables,
            "RecLLM (multinomial over all items) then C-step",
        )
        stages.append(
            _score_stage(
                method, valid_users, "valid (per fine-tune epoch)", int(budget["finetune_epochs"]), n_items
            )
        )
    test_users = np.asarray(sorted(split.test["user"].unique()), dtype=np.int64)
    stages.append(_score_stage(method, test_users, "test", 1, n_items))
    return stages


@dataclass
class _TrainStages:
    """CLLM4Rec's training stages, each priced on its epoch 0's batches (extension tables trained only)."""

    bs: int
    accum: int
    n_items: int
    shift: bool
    per_table: int
    stages: list[StagePlan] = field(default_factory=list)

    def add(self, name: str, batches: list[Any], epochs: int, tables: int, note: str) -> None:
        if epochs <= 0 or not batches:
            return
        st = shaped(
            name,
            "train",
            _shapes(batches),
            _lengths(batches),
            self.bs,
            _pass_flops(batches, self.n_items, self.shift, train=True),
            epochs=epochs,
            grad_accum=self.accum,
            kept=max(_doc_shape(b, self.shift)[3] if hasattr(b, "prompt_mask") else 1 for b in batches),
            train=Trainable("none", inputs_grad=True),
            trainable_outside=tables * self.per_table,
            notes=[note, "epoch 0's batches x epochs"],
        )
        self.stages.append(st)


def _score_stage(method: Any, users: np.ndarray, name: str, passes: int, n_items: int) -> ShapedStage:
    """``score_all``: one prompt of all training items per user, its last state against every item."""
    corpus, bs = method.corpus, method.p.eval_batch_size
    batches = []
    for s in range(0, len(users), bs):
        chunk = users[s : s + bs]
        items = [method.prompt_items(int(u)) for u in chunk]
        if method.eff["finetune"]:
            batches.append(corpus.rec_batch(chunk, items, [np.zeros(0)] * len(chunk)))
        else:  # LLM-PreRec: the collaborative prompt and the history, next-item head
            batches.append(SimpleNamespace(batch=corpus.history_batch(chunk, items)))
    return shaped(
        name,
        "eval",
        _shapes(batches),
        _lengths(batches),
        bs,
        _pass_flops(batches, n_items, False, train=False),
        passes=passes,
        notes=[f"{len(users):,} users, full ranking of {n_items:,} items in one forward each"],
    )
