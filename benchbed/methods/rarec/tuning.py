"""RA-Rec's alignment training: the tuning set under the budget, its BPR batches, the loss of Eqs. 13-16 and
the training loop (AdamW with linear decay, §4.1.4). The selection rules themselves are ``rarec.data``'s.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from benchbed.api import RunContext
from benchbed.data.schema import Split
from benchbed.errors import ConfigError, DataError
from benchbed.llm.train import TrainConfig, train
from benchbed.methods.rarec.data import Samples, candidates, select, title_words
from benchbed.methods.rarec.params import RARecParams
from benchbed.methods.rarec.towers import ID_VARIANTS, Prompts, SidePrompt, Towers, info_nce


class AlignedMethod(Protocol):
    """What tuning reads of the method (``RARec`` has it), so that this module needs no import of it."""

    p: RARecParams
    soft: int
    seqs: dict[int, np.ndarray]
    model: Any

    @property
    def prompts(self) -> Prompts: ...

    @property
    def towers(self) -> Towers: ...

    @property
    def sides(self) -> torch.nn.ModuleDict: ...

    @property
    def user_side(self) -> SidePrompt: ...

    @property
    def item_side(self) -> SidePrompt: ...

    def _uid(self, users: np.ndarray, histories: Sequence[Any]) -> torch.Tensor | None: ...

    def _iid(self, items: np.ndarray) -> torch.Tensor | None: ...

    def _text_targets(self, rows: list[np.ndarray]) -> torch.Tensor: ...

    def _item_text_states(self) -> torch.Tensor: ...

    def _valid_ndcg(self, split: Split, max_users: int, seed: int) -> float: ...


def tuning_set(
    p: RARecParams,
    split: Split,
    budget: dict[str, Any],
    seqs: dict[int, np.ndarray],
    titles: list[str],
    seed: int,
) -> tuple[Samples, dict[str, Any]]:
    """The tuning samples of ``p.selection`` under the budget (the GPU profile's share of the candidates;
    all that qualify when an ``auto`` size asks for more than the data holds) and the record's facts."""
    pool = candidates(seqs)
    if len(pool) == 0:
        raise DataError(f"split of {split.data.name!r}: no user has 2 training interactions to tune on")
    size = budget["train_samples"]
    if p.selection == "all":
        size = None
    elif isinstance(size, float):  # the GPU profile's share of the candidates
        size = max(1, round(size * len(pool)))
    pick = functools.partial(
        select,
        p.selection,
        pool,
        seqs=seqs,
        words=[title_words(t) for t in titles],
        popularity=np.bincount(split.train["item"].to_numpy(), minlength=split.n_items),
        history_len=p.history_len,
        seed=seed,
    )
    try:
        return pick(size=size)
    except ConfigError:
        if not budget["train_samples_auto"]:
            raise
        return pick(size=None)  # an auto budget is a cap: keep what the data has


def epoch_batches(
    chosen: Samples, seen: dict[int, set[int]], n_items: int, bs: int, seed: int, epoch: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(sample rows, one negative item per row) of every batch of ``epoch``: a seeded order, and for each
    sample one uniform negative the user never interacted with (§3.3)."""
    rng = np.random.default_rng([seed, 0x7A11, epoch])
    n = len(chosen)
    order = rng.permutation(n)
    out = []
    for start in range(0, n, bs):
        rows = order[start : start + bs]
        neg = np.empty(len(rows), dtype=np.int64)
        for j, r in enumerate(rows):
            mine = seen[int(chosen.users[r])]
            while True:
                cand = int(rng.integers(n_items))
                if cand not in mine:
                    break
            neg[j] = cand
        out.append((rows, neg))
    return out


@dataclass
class AlignmentLoss:
    """BPR over (user, positive, negative) [Eq. 13] + lam * (user + item InfoNCE) [Eqs. 14-16] + the L2 term
    on the trainable tensors. ``item_states``: the items' text-only targets (None without alignment); users'
    targets are computed once per tuning sample, when its first batch comes."""

    rarec: AlignedMethod
    chosen: Samples
    histories: list[np.ndarray]
    user_rows: list[np.ndarray]
    named: dict[str, torch.nn.Parameter]
    item_states: torch.Tensor | None
    user_states: dict[int, torch.Tensor] = field(default_factory=dict)

    def __call__(self, batch: np.ndarray) -> torch.Tensor:
        m, p = self.rarec, self.rarec.p
        rows, neg = batch[:, 0], batch[:, 1]
        users = self.chosen.users[rows]
        pos = self.chosen.targets[rows]
        u_ids = m._uid(users, [self.histories[r] for r in rows])
        u_vec, u_al = m.towers.encode(m.user_side, [self.user_rows[r] for r in rows], u_ids)
        both = np.concatenate([pos, neg])
        i_vec, i_al = m.towers.encode(
            m.item_side, [m.prompts.item(int(i), m.soft) for i in both], m._iid(both)
        )
        b = len(rows)
        s_pos = (u_vec * i_vec[:b]).sum(-1)
        s_neg = (u_vec * i_vec[b:]).sum(-1)
        loss = -torch.nn.functional.logsigmoid(s_pos - s_neg).mean()  # BPR, Eq. 13
        if self.item_states is not None:
            assert u_al is not None and i_al is not None
            loss = loss + float(p.lam) * self._alignment(rows, users, pos, u_al, i_al[:b])  # Eq. 16
        if float(p.reg) > 0:
            loss = loss + float(p.reg) * sum((q**2).sum() for q in self.named.values())
        return loss

    def _alignment(
        self, rows: np.ndarray, users: np.ndarray, pos: np.ndarray, u_al: torch.Tensor, i_al: torch.Tensor
    ) -> torch.Tensor:
        """User + item InfoNCE between the ID prefixes and the text-only states [Eqs. 14-15]."""
        assert self.item_states is not None
        m, tau = self.rarec, float(self.rarec.p.tau)
        missing = [int(r) for r in rows if int(r) not in self.user_states]
        if missing:
            texts = [m.prompts.text_only(self.user_rows[r], m.soft) for r in missing]
            states = m._text_targets(texts)
            self.user_states.update(zip(missing, states.cpu(), strict=True))
        h_u = torch.stack([self.user_states[int(r)] for r in rows]).to(u_al.device)
        h_i = self.item_states[torch.as_tensor(pos)].to(i_al.device)
        l_ua = info_nce(u_al, h_u, torch.as_tensor(users, device=u_al.device), tau)
        l_ia = info_nce(i_al, h_i, torch.as_tensor(pos, device=i_al.device), tau)
        return l_ua + l_ia


def train_alignment(
    rarec: AlignedMethod,
    split: Split,
    ctx: RunContext,
    chosen: Samples,
    budget: dict[str, Any],
    named: dict[str, torch.nn.Parameter],
    stage_dir: Any,
) -> dict[str, Any]:
    """Train the alignment module on ``chosen`` (resumable from ``stage_dir``); the training's summary."""
    p = rarec.p
    n, bs, hl = len(chosen), p.batch_size, p.history_len
    histories = [
        rarec.seqs[int(u)][max(0, int(k) - hl) : int(k)]
        for u, k in zip(chosen.users, chosen.positions, strict=True)
    ]
    user_rows = [rarec.prompts.user(h, rarec.soft) for h in histories]
    seen = {u: set(s.tolist()) for u, s in rarec.seqs.items()}
    align = float(p.lam) > 0 and p.variant in ID_VARIANTS
    item_states = rarec._item_text_states() if align else None
    loss_fn = AlignmentLoss(rarec, chosen, histories, user_rows, named, item_states)

    def batches(epoch: int) -> list[np.ndarray]:
        pairs = epoch_batches(chosen, seen, split.n_items, bs, ctx.seed, epoch)
        return [np.stack([rows, neg], axis=1) for rows, neg in pairs]

    valid_users = int(budget["valid_users"])
    eval_fn = (lambda: rarec._valid_ndcg(split, valid_users, ctx.seed)) if valid_users > 0 else None
    result = train(
        named,
        batches,
        -(-n // bs),
        loss_fn,
        _config(p, budget),
        eval_fn=eval_fn,
        checkpoint_dir=stage_dir,
        log=ctx.log,
        modules=[rarec.sides],
    )
    rarec.model.eval()
    out = result.as_dict()
    out["samples_per_s"] = out.pop("rows_per_s")
    return out


def _config(p: RARecParams, budget: dict[str, Any]) -> TrainConfig:
    return TrainConfig(
        lr=float(p.lr),
        weight_decay=0.0,  # lambda_Theta is the L2 term of Eq. 13 (in the loss)
        epochs=int(budget["epochs"]),
        warmup_ratio=0.0,  # §4.1.4 names no warmup
        schedule="linear",  # §4.1.4: AdamW with linear decay
        grad_accum=p.grad_accum,
        evals_per_epoch=1,
        patience=2,
    )
