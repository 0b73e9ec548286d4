"""An example LLM method written only against the public kit (CONTRIBUTING.md, "Adding an LLM method").

``id-tokens``: every user and every item gets its own learned vector, written into the one-position slots of
the prompt bank's ``cf`` view (``{user_emb}``, ``{item_emb}``) while the backbone stays frozen; only the two
tables train, on the Yes/No loss. CoLLM maps a pretrained CF model's vectors through an MLP into the same
slots; here the vectors are learned from scratch in the LLM's own loss, so no CF model runs (a soft-prompt
per ID, not a paper's method: ``role="example"`` on its card).

What it composes: the CTR recipe (``PromptCTRMethod``: backbone, bank, rows, Yes/No scorer, training loop),
the slot injection (``vectors_for`` returns slot vectors), one stage declared with ``StageSpec`` and run by
the recipe's ``StageChain``, its budget from its own ``BudgetProfiles``, and parameters declared as a
``Params`` dataclass (checked before any work, read as ``self.p``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from benchbed.api import RunContext
from benchbed.cards import MethodCard
from benchbed.data.schema import Split
from benchbed.llm.budget import CPU_BUDGET, GPU_BUDGET, BudgetProfiles, device_profile
from benchbed.llm.injectors.prompts import Batch
from benchbed.llm.recipes.ctr import PromptCTRMethod, PromptTrainParams
from benchbed.llm.stages import StageSpec
from benchbed.llm.yesno.scorer import Rows
from benchbed.param_sets import AutoCap, AutoInt, AutoNumber, ParamSet, param
from benchbed.params import Param

BUDGETS = BudgetProfiles({"cpu": CPU_BUDGET, "gpu": GPU_BUDGET})  # the recipe's profiles, declared here
TRAINING = ("score", "train_templates", "lr", "weight_decay", "warmup_ratio", "grad_accum", "patience")


@dataclass(frozen=True)
class IDTokensParams(PromptTrainParams):
    """The recipe's prompt and training settings, the tables' scale, and this method's budget."""

    train_templates: int = 1
    lr: float = 1e-2  # only two small tables train
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    init_std: float = param(0.02, Param(kind="float", min=0, exclusive_min=True))  # the backbone's init scale
    epochs: AutoInt = "auto"  # the budget (BUDGETS): "auto" takes the device profile's value
    max_train_rows: AutoCap = "auto"
    max_valid_rows: AutoCap = "auto"
    max_seconds: AutoNumber = "auto"


class IDTokens(PromptCTRMethod):
    """One learned vector per user and per item in the prompt's slots; the backbone frozen."""

    name: ClassVar[str] = "id-tokens"
    view: ClassVar[str] = "cf"  # the bank's prompt with {user_emb} and {item_emb} slots
    shared_slots: ClassVar[tuple[str, ...]] = ("user_emb",)  # the user vector depends on the user only
    card: ClassVar[MethodCard] = MethodCard(
        paper="worked example (tests/example_method.py): per-ID soft tokens, no paper",
        role="example",
        injection="slot",
        head="yes-no",
        tasks=frozenset({"ctr"}),
        backbone="decoder",
    )
    Params: ClassVar[type[ParamSet]] = IDTokensParams
    p: IDTokensParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.tables = nn.ModuleDict()  # user and item tables, built by fit once the split's sizes are known

    def resolve_budget(self, ctx: RunContext) -> dict[str, Any]:
        assert self.backbone is not None
        self.budget = BUDGETS.resolve(self.params, ctx.budget, device_profile(self.backbone.device == "cpu"))
        return self.budget

    def fit(self, split: Split, ctx: RunContext) -> None:
        self.setup(split, ctx)
        self.resolve_budget(ctx)
        prep = self.prepare_rows(split, ctx.seed)
        self.announce_budget(prep, ctx)
        assert self.backbone is not None
        for p in self.model.parameters():
            p.requires_grad_(False)
        torch.manual_seed(ctx.seed)
        d, std = self.backbone.hidden_size, self.p.init_std
        self.tables = nn.ModuleDict(
            {"user": nn.Embedding(split.n_users, d), "item": nn.Embedding(split.n_items, d)}
        )
        for table in self.tables.values():
            nn.init.normal_(table.weight, std=std)
        self.tables.to(self.backbone.device)
        reads = {
            "params": self.stage_params((*TRAINING, "evals_per_epoch", "init_std")),
            "bank": self.bank.hash("cf"),
        }
        spec = StageSpec("id-tokens", reads)

        def train_fn(ckpt: Any) -> tuple[dict[str, Any], dict[str, Any]]:
            extra = {f"tables.{n}": p for n, p in self.tables.named_parameters()}
            result = self.train_prompts(self.model, prep, view="cf", vector_fn=self.slot_vectors, ctx=ctx,
                                        ckpt=ckpt, modules=[self.tables], extra_params=extra)  # fmt: skip
            return {"tables": self.tables.state_dict()}, {"train": result.as_dict()}

        run = self.stage_chain(split, ctx).run(
            spec, train_fn, lambda blob: self.tables.load_state_dict(blob["tables"])
        )
        self.fit_info = {"stage": run.outcome.info()}
        self.tables.eval().requires_grad_(False)
        self._trainable = sum(p.numel() for p in self.tables.parameters())

    def slot_vectors(self, rows: Rows, batch: Batch) -> dict[int, torch.Tensor]:
        device = self.tables["user"].weight.device
        users = torch.as_tensor(rows.users[batch.rows], device=device)
        items = torch.as_tensor(rows.items[batch.rows], device=device)
        return {0: self.tables["user"](users), 1: self.tables["item"](items)}

    def vectors_for(self, rows: Rows) -> Any:
        return lambda batch: self.slot_vectors(rows, batch)
