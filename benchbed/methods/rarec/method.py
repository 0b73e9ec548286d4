"""``rarec`` (seed 004, RA-Rec, Yu et al.): pretrained ID vectors as layer-wise soft prompts in a frozen LM.

Two towers share one frozen language model (default the real pretrained ``minilm``, all-MiniLM-L6-v2, the
CPU stand-in for the paper's SentenceBERT): the user tower reads the hard prompt of the user's history titles,
the item tower the item's title. In every layer l the ID vector of the user (item) from a frozen ID model
becomes ``p^l = W^l x + b^l`` and, after 2 learned contextual vectors ``c^l``, joins that layer's keys and
values (queries from the text only) [Eqs. 3-11]; the pooled outputs score by dot product [Eq. 12]. Only the
alignment module trains, with BPR + lambda * (user + item InfoNCE between ``p^l`` and the text-only hidden
state of the same entity) [Eqs. 13-16] on a small tuning set chosen by word-overlap denoising and bucketed
diversity sampling [§3.4] (``rarec.data``; the training loop and loss: ``rarec.tuning``; the ID vectors:
``rarec.ids``). Variants for Table 4 and the text-only tower: ``rarec.towers``.

What is not the paper's (and why) is listed in the parameters' comments (``rarec.params``, with the
budgets); shared/protocols/rarec.md is the source of every recommended choice. ID user vectors come from
the ID model's export (for ComiRec: the interest vector of the user's *training* history), so at test time
the valid item is in the text prompt but not in the user's ID vector: the embedding cache holds arrays, not
the ID model.

Status (issue 10): the paper's gain does not reproduce at the CPU budget. On ml-100k (leave-one-out, full
ranking) rarec reaches HR@10 0.037 against comirec's 0.146 (no_id 0.027, zero_shot 0.030; issue 22's
re-run, log-uniform ComiRec, lam 0): the CPU budget
is 19 AdamW steps at 5e-4 (600 samples / 32), ~1/350 of the paper's ~7K steps, so W^l stays near its
0.02-bounded init: its W x part has norm ~0.34 on ComiRec rows (norm ~2) next to text states of ~11. The
mechanism itself works: on planted data (tests/test_method_rarec.py, lr 0.02, ~80 steps) rarec beats both
ComiRec and the text tower and loses the gain when the ID rows are permuted, at the default objective.
The InfoNCE alignment (lam > 0) does not add to that there: it rewards an ID prefix whose direction follows
the entity's text-only state, and the planted text is identical across the twins the ID vectors separate.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar, cast

import numpy as np
import torch

from benchbed.api import BaseRecommender, RunContext
from benchbed.cards import MethodCard, topk_llm
from benchbed.data.schema import Split
from benchbed.errors import ConfigError, DataError
from benchbed.llm import stages
from benchbed.llm.backbone.loader import Backbone, load_backbone
from benchbed.llm.budget import BudgetProfiles, device_profile
from benchbed.llm.heads.pooled import default_pooling
from benchbed.llm.injectors.prefix import LayerPrefix, n_layers
from benchbed.llm.injectors.prompts import special_prefix
from benchbed.llm.stages import StageChain, StageSpec
from benchbed.methods.rarec.ids import ID_HISTORY, id_vectors
from benchbed.methods.rarec.params import BUDGET_KEYS, BUDGETS, RARecParams
from benchbed.methods.rarec.towers import (
    ID_VARIANTS,
    INPUT_VARIANTS,
    VARIANTS,
    Prompts,
    SidePrompt,
    TowerParts,
    Towers,
)
from benchbed.methods.rarec.tuning import train_alignment, tuning_set
from benchbed.param_sets import ParamSet


class RARec(BaseRecommender):
    """RA-Rec: ID-vector layer prefixes in a frozen LM, two towers, BPR + InfoNCE alignment."""

    name: ClassVar[str] = "rarec"
    # injection, head, backbone, the variant parameter's values beyond "full"
    card: ClassVar[MethodCard] = topk_llm(
        # SentenceBERT in the paper's main table; Fig. 3 also runs BGE, OPT and GPT-2 (protocols/rarec.md)
        "RA-Rec (Yu et al.; seed 004; no public code)",
        "prefix",
        "pooled",
        "encoder-or-decoder",
        VARIANTS[1:],
    )
    tasks: ClassVar[frozenset[str]] = frozenset({"topk"})
    score_kind: ClassVar[str] = "score"
    budgets: ClassVar[BudgetProfiles] = BUDGETS  # cpu / gpu, declared beside the parameters they resolve
    Params: ClassVar[type[ParamSet]] = RARecParams  # with their sources: rarec.params
    p: RARecParams
    zero_shot_variants: ClassVar[tuple[str, ...]] = ("zero_shot",)  # trains nothing by design (§4.3)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)  # types, ranges and choices: RARecParams (benchbed.params)
        self.info: dict[str, Any] = {}
        self.budget: dict[str, Any] = {}
        self.model: Any = None  # the frozen language model both towers share
        self.device = "cpu"
        self.user_ids: torch.Tensor | None = None  # ID vectors (None for the text towers)
        self.item_ids: torch.Tensor | None = None
        self.fitted: TowerParts | None = None  # prompts, towers and soft prompts: what fit builds
        self.soft = 0  # soft input tokens of the input-token variants (0 for layer prefixes)
        self.seqs: dict[int, np.ndarray] = {}  # training sequences: histories of the tuning samples
        self._items: torch.Tensor | None = None  # the item tower's output, cached per trained state

    # --- hooks ----------------------------------------------------------------------------------------------
    def companions(self) -> list[tuple[str, dict[str, Any]]]:
        """The ID model and the text-only tower (w/o IDRepresentation) with the same budget, so the board
        after ``benchbed run --method rarec`` holds RA-Rec > max(ID model, text) or not. The ID model's run
        also leaves its embeddings in the cache, where this run then finds them."""
        p = self.p
        if p.variant != "full" or p.permute_ids:
            return []
        same = {
            k: v
            for k, v in self.params.items()
            if v != self.defaults[k] and k not in ("variant", "permute_ids")
        }
        return [(p.id_model, dict(p.id_params or {})), ("rarec", {**same, "variant": "no_id"})]

    def record_info(self) -> dict[str, Any]:
        return dict(self.info)

    def trainable_parameters(self) -> int:
        if self.fitted is None:
            return 0
        return int(sum(p.numel() for p in self.sides.parameters() if p.requires_grad))

    def parameter_breakdown(self) -> dict[str, int]:
        """Trainable parameters by part, both towers summed: ``context`` = the learned prefixes ``c^l``,
        ``reparam`` = ``W^l`` and ``b^l``. RA-Rec's Table 6 reports 18,432 = 12 x 2 x 768, the size of one
        tower's 2-token context prefix on a 12-layer 768-wide model: a count without the ``W^l`` matrices
        (12 x 768 x d) and without the second tower (protocols/rarec.md §3b)."""
        out = {"context": 0, "reparam": 0}
        for name, q in [] if self.fitted is None else self.sides.named_parameters():
            if q.requires_grad:
                out["context" if name.endswith("context") else "reparam"] += int(q.numel())
        return out

    # --- fit ----------------------------------------------------------------------------------------------
    def _budget(self, on_cpu: bool, ctx: RunContext) -> dict[str, Any]:
        return self.budgets.resolve(self.params, ctx.budget, device_profile(on_cpu))

    def _titles(self, split: Split) -> list[str]:
        items = split.data.items
        titles = items["title"].fillna("").astype(str).str.strip()
        empty = titles == ""
        if empty.any():
            n = int(empty.sum())
            if self.p.missing_titles == "error":
                raise DataError(
                    f"dataset {split.data.name!r}: {n} of {len(items)} items have no title and rarec's "
                    "towers read titles; drop them in the recipe or set missing_titles=id ('item <raw id>')"
                )
            titles = titles.where(~empty, "item " + items["raw_id"].astype(str))
        self.info["items_without_title"] = int(empty.sum())
        return titles.tolist()

    def fit(self, split: Split, ctx: RunContext) -> None:
        p = self.p
        variant = p.variant
        titles = self._titles(split)
        budget = self._budget(not str(ctx.device).startswith("cuda"), ctx)
        self.budget = budget
        bb = self._frozen_backbone(ctx)  # first: an unsupported backbone fails before the ID model trains
        self.user_ids = self.item_ids = None
        id_info: dict[str, Any] | None = None
        if variant in ID_VARIANTS:  # the text towers need none
            user, item, id_info = id_vectors(split, ctx, p, self.name)
            self.user_ids, self.item_ids = torch.from_numpy(user), torch.from_numpy(item)
        self.device = bb.device
        self.model = bb.model
        self.backbone_info = dict(bb.info)
        pooling = self._build_towers(bb, titles, ctx.seed)
        self._items = None
        self.seqs = split.train_sequences()
        ctx.say(
            f"rarec: variant {variant}, backbone {p.backbone} ({bb.info.get('id')}), "
            f"{self.trainable_parameters():,} trainable parameters, {budget['profile']} budget "
            f"(samples {budget['train_samples']}, epochs {budget['epochs']}, {budget['max_tokens']} tokens)"
        )
        self.info.update(
            {
                "variant": variant,
                "budget": budget,
                "id_model": id_info,
                "pooling": pooling,
                "trainable_parameters": self.trainable_parameters(),
                "trainable_by_part": self.parameter_breakdown(),
            }
        )
        if variant == "zero_shot":
            self.info["training"] = None
            return
        self._train(split, ctx, budget, titles)

    def _frozen_backbone(self, ctx: RunContext) -> Backbone:
        """The language model, frozen (no gradients, no dropout); one without layer prefixes fails here."""
        p = self.p
        bb = load_backbone(p.backbone, device=ctx.device, dtype=ctx.dtype)
        for param in bb.model.parameters():
            param.requires_grad_(False)
        bb.model.eval()
        if p.variant in ("full", "no_id", "no_reparam", "no_context"):
            LayerPrefix().check(bb.model, self.name, p.backbone)
        return bb

    def _build_towers(self, bb: Backbone, titles: list[str], seed: int) -> str:
        """The hard prompts, the two towers and their soft prompts (seeded init); returns the pooling."""
        p, model, variant = self.p, bb.model, self.p.variant
        prompts = Prompts(bb.tokenizer, titles, int(self.budget["max_tokens"]), p.user_prompt)
        pooling = default_pooling(model) if p.pooling == "auto" else p.pooling
        lead = len(special_prefix(bb.tokenizer))
        towers = Towers(model, int(bb.tokenizer.pad_token_id), bb.device, pooling, lead)
        n_l, hidden = n_layers(model), int(model.config.hidden_size)
        id_dim = 0 if self.user_ids is None else int(self.user_ids.shape[1])
        vocab = model.get_input_embeddings().weight if variant == "project_inputs" else None
        devices = [torch.cuda.current_device()] if str(bb.device).startswith("cuda") else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            sides = torch.nn.ModuleDict(
                {s: SidePrompt(variant, n_l, hidden, id_dim, vocab) for s in ("user", "item")}
            ).to(bb.device)
        self.fitted = TowerParts(prompts, towers, sides)
        self.soft = self.user_side.length if variant in INPUT_VARIANTS else 0
        return pooling

    def _train(self, split: Split, ctx: RunContext, budget: dict[str, Any], titles: list[str]) -> None:
        """The alignment stage: trained on the tuning set (``rarec.tuning``), or loaded from the cache."""
        p = self.p
        chosen, sel_info = tuning_set(p, split, budget, self.seqs, titles, ctx.seed)
        ctx.say(
            f"rarec: {sel_info['kept']} tuning samples ({p.selection}) of {sel_info['candidates']} "
            f"candidates"
            + (f", {sel_info['after_denoising']} after denoising" if "after_denoising" in sel_info else "")
        )
        self.info["data"] = sel_info
        chain = StageChain(ctx.cache_dir, stages.run_context(split.key, self.backbone_info, ctx.seed))
        spec = StageSpec("rarec-align", self._stage_reads(budget, sel_info["kept"]))
        named = {n: q for n, q in self.sides.named_parameters() if q.requires_grad}

        def load(blob: dict[str, Any]) -> None:
            self.sides.load_state_dict(blob["sides"])

        def train_fn(stage_dir: Any) -> tuple[dict[str, Any], dict[str, Any]]:
            result = train_alignment(self, split, ctx, chosen, budget, named, stage_dir)
            return {"sides": self.sides.state_dict()}, {"train": result}

        start = time.perf_counter()
        run = chain.run(spec, train_fn, load)
        self.info["training"] = {**run.outcome.info(), "seconds": round(time.perf_counter() - start, 3)}

    def _stage_reads(self, budget: dict[str, Any], kept: int) -> dict[str, Any]:
        """What the alignment stage reads beyond the run context: the ID model, every parameter but the
        evaluation's, the budget and the tuning set's size."""
        p = self.params
        reads = {
            "id_model": {
                k: (self.info["id_model"] or {}).get(k) for k in ("model", "params_hash", "permuted")
            },
            "params": {k: v for k, v in p.items() if k not in ("valid_users", "grad_accum")},
            **stages.accumulation_identity(p["grad_accum"]),
            "budget": {k: budget[k] for k in BUDGET_KEYS},
            "kept": kept,
            "schedule": "linear",
        }
        if self.soft:  # input-token variants: targets = mean token embeddings of the text alone (issue 22)
            reads["text_targets"] = "token-embeddings-without-placeholders"
        return reads

    # --- the fitted parts ---------------------------------------------------------------------------------
    def _parts(self) -> TowerParts:
        if self.fitted is None:
            raise ConfigError("method 'rarec' must be fitted before it can score")
        return self.fitted

    @property
    def prompts(self) -> Prompts:
        return self._parts().prompts

    @property
    def towers(self) -> Towers:
        return self._parts().towers

    @property
    def sides(self) -> torch.nn.ModuleDict:
        """The alignment module (both sides' soft prompts): the only part that trains."""
        return self._parts().sides

    @property
    def user_side(self) -> SidePrompt:
        return cast(SidePrompt, self.sides["user"])

    @property
    def item_side(self) -> SidePrompt:
        return cast(SidePrompt, self.sides["item"])

    # --- helpers ------------------------------------------------------------------------------------------
    def _uid(self, users: np.ndarray, histories: Sequence[Any]) -> torch.Tensor | None:
        if self.user_ids is None or self.item_ids is None:
            return None
        if self.p.user_ids == "export":
            return self.user_ids[torch.as_tensor(users)].to(self.device)
        out = torch.zeros(len(users), self.item_ids.shape[1])
        for r, h in enumerate(histories):
            window = np.asarray(h, dtype=np.int64)[-ID_HISTORY:]
            if len(window):
                out[r] = self.item_ids[torch.as_tensor(window)].mean(dim=0)
        return out.to(self.device)

    def _iid(self, items: np.ndarray) -> torch.Tensor | None:
        return None if self.item_ids is None else self.item_ids[torch.as_tensor(items)].to(self.device)

    def _text_targets(self, rows: list[np.ndarray]) -> torch.Tensor:
        """InfoNCE targets of text-only rows: per layer the hidden state entering it (layer prefixes), or
        the mean token embedding (input-token variants, whose ID token is a token embedding)."""
        if self.soft:
            return self.towers.token_states(rows)
        return self.towers.text_states(rows, n_layers(self.model))

    @torch.no_grad()
    def _item_text_states(self) -> torch.Tensor:
        n = len(self.prompts.titles)
        out = [
            self._text_targets([self.prompts.item(i) for i in range(s, min(s + 256, n))]).cpu()
            for s in range(0, n, 256)
        ]
        return torch.cat(out)

    @torch.no_grad()
    def item_matrix(self, batch_size: int = 256) -> torch.Tensor:
        """(n_items, H): the item tower over every item, computed once per trained state and cached."""
        if self._items is None:
            self.sides.eval()
            n = len(self.prompts.titles)
            parts = []
            for s in range(0, n, batch_size):
                items = np.arange(s, min(s + batch_size, n))
                rows = [self.prompts.item(int(i), self.soft) for i in items]
                vec, _ = self.towers.encode(self.item_side, rows, self._iid(items))
                parts.append(vec)
            self._items = torch.cat(parts)
        return self._items

    @torch.no_grad()
    def user_matrix(
        self, users: np.ndarray, histories: list[list[int]], batch_size: int = 64
    ) -> torch.Tensor:
        self.sides.eval()
        hl = self.p.history_len
        parts = []
        for s in range(0, len(users), batch_size):
            rows = [self.prompts.user(h[-hl:], self.soft) for h in histories[s : s + batch_size]]
            vec, _ = self.towers.encode(
                self.user_side,
                rows,
                self._uid(np.asarray(users[s : s + batch_size]), histories[s : s + batch_size]),
            )
            parts.append(vec)
        return torch.cat(parts) if parts else torch.zeros(0, self.item_matrix().shape[1])

    def score_all(self, users: np.ndarray, histories: list[list[int]]) -> np.ndarray:
        self._parts()  # one line when not fitted
        u = self.user_matrix(np.asarray(users, dtype=np.int64), histories)
        return (u @ self.item_matrix().T).cpu().numpy().astype(np.float64)

    def _valid_ndcg(self, split: Split, max_users: int, seed: int) -> float:
        """NDCG@10 on up to ``max_users`` validation users (full ranking, training items masked); the item
        tower is recomputed because the item prefixes changed since the last evaluation."""
        self._items = None
        valid = split.valid
        users = np.array(sorted(valid["user"].unique()), dtype=np.int64)
        if len(users) > max_users:
            users = np.sort(np.random.default_rng([seed, 0xE7A1]).choice(users, max_users, replace=False))
        target = valid.groupby("user")["item"].first().to_dict()
        hist = [self.seqs.get(int(u), np.zeros(0, dtype=np.int64)).tolist() for u in users]
        scores = self.score_all(users, hist)
        total = 0.0
        for r, u in enumerate(users):
            row = scores[r]
            row[np.asarray(hist[r], dtype=np.int64)] = -np.inf
            t = int(target[int(u)])
            rank = int((row > row[t]).sum())
            total += 1.0 / np.log2(rank + 2) if rank < 10 else 0.0
        self._items = None
        return total / max(len(users), 1)
