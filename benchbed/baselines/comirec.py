"""ComiRec-SA (Cen et al., KDD 2020): a multi-interest sequential recommender, RA-Rec's ID model (seed 004).

RecBole 1.2.1 has no ComiRec (shared/protocols/comirec.md), so this is a small PyTorch model following the
authors' TF1 code (THUDM/ComiRec ``src/model.py`` ``Model_ComiRec_SA``, ``src/train.py``,
``src/data_iterator.py``, as summarised in the protocol file):

- history ``H`` = the last ``max_len`` items before the target, oldest first, zero-padded on the right;
  learned positional embeddings are added **only** to compute the attention: ``X = H + P``;
- ``A = softmax_T(W_2 tanh(W_1 X))`` with ``W_1: d -> 4*hidden``, ``W_2: 4*hidden -> K``, padding masked;
- interests ``V = A^T H`` (H, not H + P): K vectors of size d;
- training readout: the interest with the largest dot product with the target item; loss: sampled softmax
  over ``10 * batch_size`` negatives (zero, non-trainable bias), Adam. ``tf.nn.sampled_softmax_loss`` with
  TF's defaults: a log-uniform (Zipfian) candidate sampler, unique draws, accidental hits removed and the
  logits corrected by ``log Q`` (``LogUniformSampler``); the authors' item ids are ranks by frequency
  (``preprocess/data.py`` sorts items by count, most frequent first), which is what makes the log-uniform
  law a popularity-biased sampler, so here an item's class is its rank by training frequency;
- training samples as the authors' iterator draws them: a random user, a random position ``k`` in
  ``[4, len)`` (clamped to ``len - 1`` for shorter sequences), target ``seq[k]``, history
  ``seq[k-max_len:k]``;
- inference: each interest scores every item, an item's score is its best interest's (the authors merge the
  per-interest top-N by score, which for one list is the same order).

Export (``embeddings()``, only with one interest: RA-Rec uses K = 1): item = the item embedding table; user
= sequence = the interest vector of the user's training history, computed by ``user_vectors`` exactly as
``score_all`` computes the vector it ranks with.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from benchbed.api import BaseRecommender, RunContext, ScoreRequests
from benchbed.baselines.comirec_model import ComiRecSA, LogUniformSampler, pad_histories
from benchbed.baselines.recbole_adapter import check_device
from benchbed.cards import id_baseline
from benchbed.data.schema import Split
from benchbed.errors import ConfigError, DataError
from benchbed.param_sets import AutoInt, ParamSet, param
from benchbed.params import Param

if TYPE_CHECKING:
    import pandas as pd

# `max_iter: auto`: the authors train up to 1,000 x 1,000 iterations with early stopping (src/train.py:
# max_iter=1000 (k), test_iter=1000, patience=50); on a CPU a seeded sample of 2,000 iterations of 128
# (~2.6 passes over ml-100k's training interactions) keeps `benchbed run` to seconds.
CPU_MAX_ITER = 2000
GPU_MAX_ITER = 1_000_000
# negatives of the sampled softmax: "log_uniform" = tf.nn.sampled_softmax_loss's default sampler (authors'
# src/model.py passes no sampled_values), "uniform" = every item equally likely (benchbed before issue 22)
SAMPLERS = ("log_uniform", "uniform")


@dataclass(frozen=True)
class ComiRecParams(ParamSet):
    """The authors' settings (src/train.py), with RA-Rec's one interest; types and ranges: the naming rules
    of benchbed.params (all positive ints)."""

    dim: int = 64  # authors' src/train.py: embedding_dim 64
    hidden: int = 64  # hidden_size 64 (W_1 has 4 * hidden outputs, Model_ComiRec_SA)
    n_interests: int = 1  # RA-Rec §4.1.4: "we set the number of user interests to 1" (authors: 4)
    max_len: int = 20  # maxlen 20 (Amazon Book; Taobao 50)
    batch_size: int = 128  # batch_size 128 (Amazon Book)
    lr: float = 1e-3  # learning_rate 0.001, Adam (ComiRec-DR uses 0.005)
    neg_factor: int = 10  # neg_num 10: sampled softmax over neg_num * batch_size negatives
    min_position: int = 4  # data_iterator: k = random.choice(range(4, len(item_list)))
    max_iter: AutoInt = "auto"  # iterations; auto: CPU 2,000, GPU 1,000,000 (authors' max_iter 1000k)
    eval_every: int = 1000  # test_iter 1000: evaluate on the validation stage every 1,000 iterations
    patience: int = 50  # patience 50 evaluations without improvement
    eval_k: int = 50  # validation metric: recall@50 (the authors' topN)
    # tf.nn.sampled_softmax_loss's default (src/model.py); uniform: no log Q
    sampler: str = param("log_uniform", Param(kind="str", choices=SAMPLERS))


class ComiRec(BaseRecommender):
    """ComiRec-SA; scores are ``max_k <v_k, e_i>`` over the user's interest vectors."""

    name = "comirec"
    card = id_baseline("ComiRec-SA (Cen et al., KDD 2020): RA-Rec's ID model (seed 004)", {"ctr", "topk"})
    tasks: ClassVar[frozenset[str]] = frozenset({"topk", "ctr"})
    score_kind: ClassVar[str] = "score"
    Params: ClassVar[type[ParamSet]] = ComiRecParams
    p: ComiRecParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.model: ComiRecSA | None = None
        self.info: dict[str, Any] = {}

    # --- training ------------------------------------------------------------------------------------------
    def fit(self, split: Split, ctx: RunContext) -> None:
        p = self.p
        device = check_device(ctx.device)
        train, seqs, users = self._training_sequences(split, ctx)
        profile = "cpu" if device == "cpu" else "gpu"
        max_iter = p.max_iter
        if max_iter == "auto":
            max_iter = CPU_MAX_ITER if profile == "cpu" else GPU_MAX_ITER
        ctx.say(
            f"comirec: ComiRec-SA K={p.n_interests} d={p.dim}, {max_iter} iterations of "
            f"{p.batch_size} ({profile} budget), eval every {p.eval_every}"
        )
        devices = [torch.cuda.current_device()] if device.startswith("cuda") else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(ctx.seed)
            model = ComiRecSA(split.n_items, p.dim, p.hidden, p.n_interests, p.max_len)
        model.to(device)
        self.model, self.device = model, device
        start = time.perf_counter()
        run = self._train_loop(model, split, train, seqs, users, max_iter, ctx)
        model.eval()
        train_hist = [seqs.get(u, np.zeros(0, dtype=np.int64)) for u in range(split.n_users)]
        self._user = self.user_vectors(train_hist)
        seconds = time.perf_counter() - start
        it = run["iterations"]
        self.info = {
            "budget": {"profile": profile, "max_iter": int(max_iter), "batch_size": p.batch_size},
            "sampler": {
                "kind": p.sampler,
                "negatives": int(run["negatives"]),
                "mean_draws": round(run["tries"] / max(it, 1), 1) if p.sampler == "log_uniform" else None,
            },
            "iterations": it,
            "samples": it * p.batch_size,
            "stopped": run["stopped"],
            "best_valid_recall": None if run["best"] == -math.inf else round(run["best"], 6),
            "history": run["history"],
            "feedback": ctx.feedback,
        }
        self.backbone_info = {
            "library": "benchbed (ComiRec-SA after THUDM/ComiRec src/model.py)",
            "device": device,
            "train_rows": int(len(train)),
            "train_seconds": round(seconds, 3),
            "feedback": ctx.feedback,
        }

    def _training_sequences(
        self, split: Split, ctx: RunContext
    ) -> tuple[pd.DataFrame, dict[int, np.ndarray], np.ndarray]:
        """The training rows (positives only on labels), each user's items in time order, and the users
        with a history and a target (two items or more)."""
        train = split.train
        if ctx.feedback == "labels":
            if not split.labeled:
                raise DataError(f"split of {split.data.name!r}: feedback 'labels' needs 0/1 labels")
            train = train[train["label"] == 1]
        ordered = train.sort_values("timestamp", kind="stable")
        seqs = {int(u): g["item"].to_numpy() for u, g in ordered.groupby("user", sort=True)}
        users = np.array([u for u, s in seqs.items() if len(s) >= 2], dtype=np.int64)
        if len(users) == 0:
            raise DataError(
                f"split of {split.data.name!r} ({split.protocol}): no user has 2 training interactions, "
                "which ComiRec needs (a history and a target)"
            )
        return train, seqs, users

    def _train_loop(
        self,
        model: ComiRecSA,
        split: Split,
        train: pd.DataFrame,
        seqs: dict[int, np.ndarray],
        users: np.ndarray,
        max_iter: int,
        ctx: RunContext,
    ) -> dict[str, Any]:
        """Sampled-softmax steps, validation recall every ``eval_every`` iterations with early stopping;
        the best state is loaded back. Returns what the record's info tells of the run."""
        p = self.p
        opt = torch.optim.Adam(model.parameters(), lr=float(p.lr))
        rng = np.random.default_rng([ctx.seed, 0xC0312EC])
        valid_hist, valid_pos, valid_mask = self._valid_rows(split, seqs)
        best, best_state, bad, history = -math.inf, None, 0, []
        n_neg = min(p.neg_factor * p.batch_size, split.n_items)
        sampler = LogUniformSampler.by_frequency(train["item"].to_numpy(), split.n_items)
        tries_total = 0
        it = 0
        stopped = "max_iter"
        model.train()
        while it < max_iter:
            loss, tries = self._step(model, opt, seqs, users, rng, sampler, n_neg, split.n_items)
            tries_total += tries
            it += 1
            if it % p.eval_every == 0 or it == max_iter:
                metric = self._valid_recall(valid_hist, valid_pos, valid_mask)
                history.append(
                    {"iter": it, "recall": round(metric, 6), "loss": round(float(loss.detach()), 6)}
                )
                if metric > best:
                    best, bad = metric, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    bad += 1
                ctx.say(f"comirec: iter {it} valid recall@{p.eval_k} {metric:.4f}")
                model.train()
                if bad >= p.patience:
                    stopped = "early-stop"
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
        return {
            "iterations": it,
            "stopped": stopped,
            "best": best,
            "history": history,
            "negatives": n_neg,
            "tries": tries_total,
        }

    def _step(
        self,
        model: ComiRecSA,
        opt: torch.optim.Optimizer,
        seqs: dict[int, np.ndarray],
        users: np.ndarray,
        rng: np.random.Generator,
        sampler: LogUniformSampler,
        n_neg: int,
        n_items: int,
    ) -> tuple[torch.Tensor, int]:
        """One optimizer step on a sampled batch; its loss and the sampler's draws (0 when uniform)."""
        hist, target = self._sample(seqs, users, rng)
        tries = 0
        if self.p.sampler == "uniform":
            negatives = rng.choice(n_items, size=n_neg, replace=False)
            loss = self._loss(model, hist, target, negatives)
        else:
            negatives, tries = sampler.sample(n_neg, rng)
            log_q = [
                torch.from_numpy(np.log(sampler.expected_count(sampler.rank[x], n_neg, tries)))
                for x in (target, negatives)
            ]
            loss = self._loss(model, hist, target, negatives, log_q=(log_q[0], log_q[1]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss, tries

    def _sample(
        self, seqs: dict[int, np.ndarray], users: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        p = self.p
        chosen = rng.choice(users, size=p.batch_size)
        hist, target = [], np.empty(len(chosen), dtype=np.int64)
        for r, u in enumerate(chosen):
            s = seqs[int(u)]
            lo = min(p.min_position, len(s) - 1)
            k = int(rng.integers(lo, len(s)))
            target[r] = s[k]
            hist.append(s[max(0, k - p.max_len) : k])
        return pad_histories(hist, p.max_len), target

    def _loss(
        self,
        model: ComiRecSA,
        hist: np.ndarray,
        target: np.ndarray,
        negatives: np.ndarray,
        log_q: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Sampled softmax of the target against ``negatives``; ``log_q`` = log expected counts of the
        targets (B,) and the negatives (S,), subtracted from their logits (TF's ``subtract_log_q``)."""
        dev = self.device
        h = torch.from_numpy(hist).to(dev)
        t = torch.from_numpy(target).to(dev)
        v = model.interests(h)  # (B, K, d)
        items = model.items()
        pos = items[t]  # (B, d)
        # readout: the interest closest to the target (Model_ComiRec_SA, argmax over interests)
        pick = torch.einsum("bkd,bd->bk", v, pos).argmax(dim=1)
        readout = v[torch.arange(len(t), device=dev), pick]
        neg = torch.from_numpy(negatives).to(dev)
        logits = torch.cat([(readout * pos).sum(-1, keepdim=True), readout @ items[neg].T], dim=1)
        if log_q is not None:
            logits = logits - torch.cat(
                [log_q[0].unsqueeze(1), log_q[1].unsqueeze(0).expand(len(t), -1)], 1
            ).to(device=dev, dtype=logits.dtype)
        # sampled softmax removes accidental hits (a negative equal to the row's target)
        hit = neg.unsqueeze(0) == t.unsqueeze(1)
        logits[:, 1:] = logits[:, 1:].masked_fill(hit, -1e9)
        return nn.functional.cross_entropy(logits, torch.zeros(len(t), dtype=torch.long, device=dev))

    def _valid_rows(
        self, split: Split, seqs: dict[int, np.ndarray]
    ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        valid = split.valid
        users = np.array(sorted(valid["user"].unique()), dtype=np.int64) if len(valid) else np.zeros(0, int)
        pos = valid.groupby("user")["item"].unique().to_dict() if len(valid) else {}
        empty = np.zeros(0, dtype=np.int64)
        hist = pad_histories([seqs.get(int(u), empty) for u in users], self.p.max_len)
        masks = [np.unique(seqs.get(int(u), empty)) for u in users]
        return hist, [np.asarray(pos[int(u)], dtype=np.int64) for u in users], masks

    def _valid_recall(self, hist: np.ndarray, pos: list[np.ndarray], masks: list[np.ndarray]) -> float:
        """Recall@eval_k on the validation stage (train items masked): the early-stopping metric."""
        if len(hist) == 0:
            return 0.0
        k = self.p.eval_k
        total = 0.0
        for start in range(0, len(hist), 1024):
            scores = self._scores_padded(hist[start : start + 1024])
            for r in range(len(scores)):
                row = scores[r]
                row[masks[start + r]] = -np.inf
                top = np.argpartition(-row, min(k, len(row) - 1))[:k]
                p = pos[start + r]
                total += float(np.isin(p, top).sum()) / max(len(p), 1)
        return total / len(hist)

    # --- scoring --------------------------------------------------------------------------------------------
    def _require(self) -> ComiRecSA:
        if self.model is None:
            raise ConfigError("method 'comirec' must be fitted before it can score")
        return self.model

    @torch.no_grad()
    def _interests_padded(self, hist: np.ndarray) -> torch.Tensor:
        model = self._require()
        model.eval()
        return model.interests(torch.from_numpy(hist).to(self.device))

    @torch.no_grad()
    def _scores_padded(self, hist: np.ndarray) -> np.ndarray:
        v = self._interests_padded(hist)  # (B, K, d)
        items = self._require().items()
        return torch.einsum("bkd,nd->bkn", v, items).amax(dim=1).cpu().numpy().astype(np.float64)

    def user_vectors(self, histories: Sequence[Any]) -> np.ndarray:
        """(B, d) interest vector of each history ((B, K, d) with K interests): what scoring uses."""
        out = []
        for start in range(0, len(histories), 1024):
            hist = pad_histories(histories[start : start + 1024], self.p.max_len)
            out.append(self._interests_padded(hist).cpu().numpy())
        v = np.concatenate(out) if out else np.zeros((0, self.p.n_interests, self.p.dim))
        return v[:, 0] if self.p.n_interests == 1 else v

    def score_all(self, users: np.ndarray, histories: list[list[int]]) -> np.ndarray:
        return self._scores_padded(pad_histories(histories, self.p.max_len))

    def score(self, requests: ScoreRequests) -> np.ndarray:
        v = self._interests_padded(pad_histories(requests.histories, self.p.max_len))
        items = self._require().items()[torch.as_tensor(np.asarray(requests.items), device=self.device)]
        with torch.no_grad():
            return torch.einsum("bkd,bd->bk", v, items).amax(dim=1).cpu().numpy().astype(np.float64)

    # --- hooks ----------------------------------------------------------------------------------------------
    def trainable_parameters(self) -> int:
        return 0 if self.model is None else int(sum(p.numel() for p in self.model.parameters()))

    def record_info(self) -> dict[str, Any]:
        return dict(self.info)

    def embeddings(self) -> dict[str, np.ndarray | None] | None:
        """One interest: user = sequence = the training-history interest vector; item = the item table.
        Several interests have no single user vector: nothing is exported (None)."""
        model = self._require()
        if self.p.n_interests != 1:
            return None
        item = model.items().detach().cpu().numpy().astype(np.float32)
        user = np.asarray(self._user, dtype=np.float32)
        return {"user": user, "item": item, "sequence": user}
