"""The stages of ``rarec`` (RA-Rec) from the method's own tuning set, prompts and soft-prompt modules.

What is read from the method, not re-derived: the tuning set (``rarec.tuning.tuning_set`` with the GPU
budget's share, the same fallback when an ``auto`` budget asks for more than the data has), the hard
prompts (``Prompts.user`` / ``Prompts.item`` at the budget's ``max_tokens``), the epoch-0 batches and their
negatives (``rarec.tuning.epoch_batches``, the training's seeded draw), and the trainable count: the real
``SidePrompt`` pair built as ``RARec.fit`` builds it.

FLOPs of one tower batch (``Towers.encode`` through ``LayerPrefix``) on a frozen encoder: the text's block
projections; every layer's prefix (P positions) through that layer's K/V projections; attention of T text
queries over P + T keys; the ID map ``W^l x + b^l``; BERT's pooler on the first token (computed, unused).
The backward, as autograd runs it (eager attention): the prefix keys and values need gradients in every
layer (dK, dV, dP), the text only from the second layer on (dQ and the Q/K/V projections' input gradients
from layer 2; the attention output and MLP input gradients everywhere), the prefix K/V projections' input
gradients, and the ID map's weight gradient. The InfoNCE terms (Eq. 16) are one batched matmul per side,
forward and the gradient of the prefix side. Not matmuls, so not counted: pooling, the BPR dot products.

Stages: the alignment targets (text-only passes over every item and, in epoch 0, every tuning sample's
user prompt, no gradients), the tuning stage (epoch 0's batches x epochs), validation (item tower over all
items + user tower over the validation users, once per epoch: all epochs, early stopping ignored) and test.
Modelled: BERT-family encoders (minilm, bert-base, a folder with a BERT config) and the layer variants
(full, no_id, no_reparam, no_context, zero_shot); a decoder backbone and the input-token variants are refused
in one line. The ID model that exports the vectors (ComiRec) is not priced.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.llm.backbone.facts import family
from benchbed.plan.flops import Arch, Trainable, arch_of
from benchbed.plan.shaped import ShapedStage, shaped
from benchbed.plan.stages import StagePlan

if TYPE_CHECKING:
    from benchbed.methods.rarec.params import RARecParams

MODELLED_VARIANTS = ("full", "no_id", "no_reparam", "no_context", "zero_shot")
MODELLED_FAMILIES = ("bert",)  # backbone families the rarec plan models (its FLOPs are BERT-shaped)


def meta_encoder(config: Any) -> Any:
    """The bare encoder (``AutoModel``, as ``load_backbone('minilm')`` loads it) on the meta device."""
    from transformers import AutoModel

    with torch.device("meta"):
        return AutoModel.from_config(config)


def encoder_arch(config: Any) -> tuple[Arch, bool]:
    """The encoder's shapes and whether it has BERT's pooler (a dense layer on the first token)."""
    model = meta_encoder(config)
    return arch_of(model), getattr(model, "pooler", None) is not None


@functools.lru_cache(maxsize=8)
def _side_params(variant: str, layers: int, hidden: int, id_dim: int) -> tuple[int, int]:
    """(trainable parameters of both sides, prefix length), from the real ``SidePrompt`` modules."""
    from benchbed.methods.rarec.towers import SidePrompt

    sides = [SidePrompt(variant, layers, hidden, id_dim) for _ in ("user", "item")]
    n = sum(p.numel() for s in sides for p in s.parameters() if p.requires_grad)
    return int(n), sides[0].length


def id_map_layers(variant: str, layers: int) -> int:
    """Affine ID maps applied per row: one per layer (full, no_context), one for all (no_reparam)."""
    return {"full": layers, "no_context": layers, "no_reparam": 1}.get(variant, 0)


def tower_flops(
    arch: Arch,
    rows: int,
    text: int,
    prefix: int,
    *,
    id_dim: int,
    id_maps: int,
    pooler: bool,
    train: bool,
) -> float:
    """One tower batch of ``rows`` x ``text`` tokens with a ``prefix``-long layer prefix (see module doc)."""
    L, H, q, kv = arch.layers, arch.hidden, arch.q_width, arch.kv_width
    tokens = rows * text
    pairs = rows * text * (prefix + text)  # query-key pairs per head width
    prefix_kv = 2.0 * rows * prefix * 2 * H * kv * L
    id_map = 2.0 * rows * id_maps * H * id_dim
    fwd = 2.0 * tokens * arch.block_macs * L + 4.0 * pairs * q * L + prefix_kv + id_map
    fwd += 2.0 * rows * H * H if pooler else 0.0
    if not train:
        return fwd
    attn_in = sum(x.n_in * x.n_out for x in arch.linears if x.role == "attn_in")
    rest = arch.block_macs - attn_in
    bwd = prefix_kv + id_map  # the prefix's input gradients, the ID maps' weight gradients
    for layer in range(L):
        text_grad = layer > 0  # the text entering the block depends on an earlier layer's prefix
        bwd += 2.0 * pairs * q * (3 + int(text_grad))  # dK, dV, dP; dQ once the text carries a gradient
        bwd += 2.0 * tokens * (rest + attn_in * int(text_grad))
    return fwd + bwd


def info_nce_flops(rows: int, layers: int, hidden: int) -> float:
    """Both sides' InfoNCE (Eq. 16): an (L, N, N) batched matmul each, forward + the prefix side's grad."""
    return 2 * (2.0 + 2.0) * layers * rows * rows * hidden if rows >= 2 else 0.0


def _id_dim(p: RARecParams) -> int:
    from benchbed.methods import method_defaults

    given = dict(p.id_params or {})
    return int(given.get("dim", method_defaults(p.id_model, "topk").get("dim", 64)))


def rarec_stages(
    method: Any, task: Any, split: Split, tokenizer: Any, config: Any, *, seed: int
) -> tuple[Arch, list[StagePlan]]:
    from benchbed.methods.rarec.towers import ID_VARIANTS, Prompts

    p: RARecParams = method.p
    variant = p.variant
    _check_modelled(config, variant)
    arch, pooler = encoder_arch(config)
    budget = method._budget(False, SimpleNamespace(budget={}))
    titles = method._titles(split)
    prompts = Prompts(tokenizer, titles, int(budget["max_tokens"]), p.user_prompt)
    id_dim = _id_dim(p) if variant in ID_VARIANTS else 0
    trainable, prefix = _side_params(variant, arch.layers, arch.hidden, id_dim)
    prefix = 0 if variant == "zero_shot" else prefix
    id_maps = id_map_layers(variant, arch.layers)
    tower = functools.partial(tower_flops, arch, prefix=prefix, id_dim=id_dim, id_maps=id_maps, pooler=pooler)
    item_len = np.asarray([len(prompts.item(i)) for i in range(split.n_items)], dtype=np.int64)
    eval_items = _tower_pass(item_len, 256)
    stages: list[StagePlan] = []
    seqs = split.train_sequences()
    if variant != "zero_shot":
        tuning = _Tuning(method, split, budget, seqs, titles, prompts, item_len, eval_items, tower, pooler)
        stages += tuning.stages(arch, trainable, prefix, variant in ID_VARIANTS, seed)
    users = np.array(sorted(split.test["user"].unique()), dtype=np.int64)
    hist = task._histories(split, "test", users)
    stages.append(_score_stage("test", prompts, hist, p.history_len, eval_items, tower, 1))
    return arch, stages


def _check_modelled(config: Any, variant: str) -> None:
    if family(config) not in MODELLED_FAMILIES:
        raise ConfigError(
            f"benchbed plan: rarec on a {family(config)!r} backbone is not modelled yet "
            f"(modelled: BERT-family encoders such as minilm and bert-base)"
        )
    if variant not in MODELLED_VARIANTS:
        raise ConfigError(
            f"benchbed plan: rarec variant {variant!r} is not modelled yet (modelled: "
            f"{', '.join(MODELLED_VARIANTS)})"
        )


@dataclass
class _Tuning:
    """What the tuning stages of a trained variant read: the method, its data and the tower's cost."""

    method: Any
    split: Split
    budget: dict[str, Any]
    seqs: Any
    titles: list[str]
    prompts: Any
    item_len: np.ndarray
    eval_items: list[tuple[int, int]]
    tower: Any
    pooler: bool

    def stages(self, arch: Arch, trainable: int, prefix: int, id_variant: bool, seed: int) -> list[StagePlan]:
        """The InfoNCE targets (with alignment), the alignment training and the per-epoch validation."""
        from benchbed.methods.rarec.tuning import tuning_set

        p: RARecParams = self.method.p
        split, budget, seqs = self.split, self.budget, self.seqs
        chosen, _ = tuning_set(p, split, budget, seqs, self.titles, seed)  # RARec._train's selection
        hl = p.history_len
        user_len = np.asarray(
            [
                len(self.prompts.user(seqs[int(u)][max(0, int(k) - hl) : int(k)]))
                for u, k in zip(chosen.users, chosen.positions, strict=True)
            ],
            dtype=np.int64,
        )
        steps = _epoch0(chosen, seqs, split.n_items, p.batch_size, seed)
        align = float(p.lam) > 0 and id_variant
        out: list[StagePlan] = []
        if align:  # text-only passes: every item once, every sample's user prompt in epoch 0 (cached)
            out.append(self._targets_stage(user_len, steps))
        out.append(self._align_stage(arch, chosen, user_len, steps, align, trainable, prefix))
        valid_users = int(budget["valid_users"])
        if valid_users > 0:
            users = np.array(sorted(split.valid["user"].unique()), dtype=np.int64)[:valid_users]
            hist = [seqs.get(int(u), np.zeros(0, dtype=np.int64)) for u in users]
            out.append(
                _score_stage(
                    "valid (per epoch)",
                    self.prompts,
                    hist,
                    hl,
                    self.eval_items,
                    self.tower,
                    int(budget["epochs"]),
                )
            )
        return out

    def _targets_stage(self, user_len: np.ndarray, steps: list[tuple[np.ndarray, np.ndarray]]) -> ShapedStage:
        targets = [*self.eval_items, *((len(u), int(user_len[u].max())) for u, _ in steps)]
        pooler = self.pooler

        def target_flops(a: Arch) -> float:
            return sum(
                tower_flops(a, r, n, prefix=0, id_dim=0, id_maps=0, pooler=pooler, train=False)
                for r, n in targets
            )

        return shaped(
            "rarec-align-targets",
            "eval",
            targets,
            np.concatenate([self.item_len, user_len]),
            256,
            target_flops,
            notes=["InfoNCE targets: text-only states of every item and every sample's user prompt"],
        )

    def _align_stage(
        self,
        arch: Arch,
        chosen: Any,
        user_len: np.ndarray,
        steps: list[tuple[np.ndarray, np.ndarray]],
        align: bool,
        trainable: int,
        prefix: int,
    ) -> ShapedStage:
        p: RARecParams = self.method.p
        item_len, tower = self.item_len, self.tower

        def step_flops(a: Arch) -> float:
            total = 0.0
            for users, items in steps:
                b = len(users)
                total += tower(rows=b, text=int(user_len[users].max()), train=True)
                total += tower(rows=2 * b, text=int(item_len[items].max()), train=True)
                total += info_nce_flops(b, a.layers, a.hidden) if align else 0.0
            return total

        shapes = [_step_shape(user_len[u], item_len[i]) for u, i in steps]
        return shaped(
            "rarec-align",
            "train",
            shapes,
            np.concatenate([user_len, item_len[np.concatenate([i for _, i in steps])]]),
            p.batch_size,
            step_flops,
            epochs=int(self.budget["epochs"]),
            grad_accum=p.grad_accum,
            kept=0,
            train=Trainable("none", inputs_grad=True),
            trainable_outside=trainable,
            notes=[
                f"{len(chosen.users):,} tuning samples ({p.selection}), 1 negative each; "
                f"prefix {prefix} x {arch.layers} layers",
                "epoch 0's batches x epochs",
            ],
        )


def _epoch0(chosen: Any, seqs: Any, n_items: int, bs: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(sample rows, positive + negative items) of every batch of epoch 0: the alignment training's draw."""
    from benchbed.methods.rarec.tuning import epoch_batches

    seen = {u: set(s.tolist()) for u, s in seqs.items()}
    return [
        (rows, np.concatenate([chosen.targets[rows], neg]))
        for rows, neg in epoch_batches(chosen, seen, n_items, bs, seed, 0)
    ]


def _step_shape(user_len: np.ndarray, item_len: np.ndarray) -> tuple[int, int]:
    """One step's tokens as (rows, padded length) for the memory estimate: B user + 2B item rows."""
    rows = len(user_len) + len(item_len)
    tokens = len(user_len) * int(user_len.max()) + len(item_len) * int(item_len.max())
    return rows, -(-tokens // rows)


def _tower_pass(lengths: np.ndarray, bs: int) -> list[tuple[int, int]]:
    return [(len(lengths[s : s + bs]), int(lengths[s : s + bs].max())) for s in range(0, len(lengths), bs)]


def _score_stage(
    name: str,
    prompts: Any,
    histories: list[Any],
    hl: int,
    items: list[tuple[int, int]],
    tower: Any,
    passes: int,
) -> ShapedStage:
    """``score_all``: the item tower over every item (batches of 256), the user tower (batches of 64)."""
    lengths = np.asarray([len(prompts.user(list(h)[-hl:])) for h in histories], dtype=np.int64)
    users = _tower_pass(lengths, 64)
    shapes = [*items, *users]
    return shaped(
        name,
        "eval",
        shapes,
        lengths,
        64,
        lambda a: sum(tower(rows=r, text=n, train=False) for r, n in shapes),
        passes=passes,
        notes=[f"{len(histories):,} users; item tower over all {sum(r for r, _ in items):,} items"],
    )
