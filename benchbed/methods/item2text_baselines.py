"""Baselines of the item2text task (ILM §4.3 / Fig. 5 as ILM configures them) and its two reference rows.

All compose ``benchbed.llm.recipes.item2text.Item2TextLM`` (backbone, examples, next-token loss, text head):
- ``i2t-mlp1`` (CoLLM-style): a 2-layer MLP, hidden width 10x its input (CoLLM; ILM §4.3), maps the item's CF
  embedding to one token; MLP and LLM trained together in one stage.
- ``i2t-mlpn`` (ILM Fig. 5 "MLP"): the same MLP to ``n_tokens`` tokens (default 4, ILM's best range 4-8), for
  a like-for-like comparison with ILM's N query tokens.
- ``i2t-elm`` (ELM-style adapter): stage 1 trains only the adapter (LLM frozen), stage 2 everything
  (ILM §4.3: "ELM: an MLP adapter. Stage 1 trains only the adapter; stage 2 fine-tunes everything").
- ``i2t-text``: text only; the prompt carries the item's title where the marker is, no vector.
Reference rows (no training): ``i2t-floor`` answers each prompt with the reference of *another* test item
for the same sub-task whose reference differs (SC of mismatched references: the encoder's floor),
``i2t-const`` with the sub-task's most frequent training answer (what an item-blind model converges to) and
``i2t-copy`` with the title (``benchbed.item2text.controls``).

CF embeddings: ``cf_model`` (default ``als``, the export ILM's OpenP5 runs and seed 003 use) trained on the
split's training interactions through ``ctx.embedding_source``. On the ``tiny`` preset the LLM is randomly
initialised and learns the template language from the training examples: the numbers test the pipeline and
the relative strength of the item signal, not the methods at the paper's scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from benchbed.api import BaseRecommender, GenerateRequests, RunContext
from benchbed.cards import MethodCard, reference_row
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.item2text.controls import constant_answers, mismatch_by_item
from benchbed.item2text.setup import Item2TextProtocol
from benchbed.llm.lora import set_trainable
from benchbed.llm.recipes.item2text import Item2TextLM, Item2TextParams, LMStage
from benchbed.param_sets import ParamSet, param
from benchbed.params import Param


def _baseline_card(paper: str, injection: str) -> MethodCard:
    """The card of an item-to-text LM baseline: a causal decoder writing the answer text."""
    return MethodCard(
        paper=paper,
        role="llm",
        injection=injection,
        head="text",
        tasks=frozenset({"item2text"}),
        backbone="decoder",
    )


class ItemMLP(nn.Module):
    """CF item vector -> N token vectors: ``Linear(d, ratio*d) -> ReLU -> Linear(ratio*d, N*H)`` (CoLLM)."""

    def __init__(
        self, table: np.ndarray, ratio: int, n_tokens: int, hidden: int, *, standardize: bool = True
    ) -> None:
        super().__init__()
        d = int(table.shape[1])
        x = np.asarray(table, dtype=np.float64)
        if standardize:  # ALS rows have std ~0.008: a default-initialised MLP maps them all to ~its bias
            x = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-12)
        self.register_buffer("table", torch.as_tensor(x, dtype=torch.float32))
        self.n_tokens, self.hidden = n_tokens, hidden
        self.mlp = nn.Sequential(nn.Linear(d, ratio * d), nn.ReLU(), nn.Linear(ratio * d, n_tokens * hidden))

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        b, s = items.shape
        table: torch.Tensor = self.table  # type: ignore[assignment]  # a registered buffer
        vec = table[items.clamp(min=0)]  # -1 (no item) reads row 0; splice skips those slots
        return self.mlp(vec).view(b, s, self.n_tokens, self.hidden)


@dataclass(frozen=True)
class CFItemParams(Item2TextParams):
    """The vector baselines (i2t-mlp1): the recipe's settings, the CF export and the MLP over it."""

    cf_model: str = "als"
    cf_params: dict[str, Any] | None = None  # the CF export's parameters (None: its defaults)
    mlp_ratio: int = 10  # hidden layer = 10 x input width (CoLLM; ILM §4.3)
    standardize: bool = True  # z-score each CF dimension over items first (ours: ALS rows are ~1e-2 in size)


@dataclass(frozen=True)
class MLPNParams(CFItemParams):
    """i2t-mlpn: the MLP to N tokens."""

    # ILM Fig. 5: best around 4-8
    n_tokens: int = param(4, Param(kind="int", min=1, help="tokens per item"))


@dataclass(frozen=True)
class ELMParams(CFItemParams):
    """i2t-elm: the adapter stage, then everything."""

    stage1_epochs: int = 1  # adapter only, LLM frozen
    stage1_lr: float = 1e-3
    stage2_epochs: int = 2  # everything
    stage2_lr: float = 1e-3


class _CFItemLM(Item2TextLM):
    """Shared by the vector baselines: CF embeddings of ``cf_model`` through an ``ItemMLP``."""

    Params: ClassVar[type[ParamSet]] = CFItemParams
    p: CFItemParams

    def prepare(self, split: Split, ctx: RunContext) -> None:
        p = self.p
        emb = ctx.embedding_source(self.name).get(
            split, p.cf_model, params=p.cf_params, seed=ctx.seed, feedback=ctx.feedback
        )
        if emb.item.shape[0] != split.n_items:
            raise ConfigError(
                f"method {self.name!r}: {p.cf_model} embeddings have {emb.item.shape[0]} items, the split "
                f"{split.n_items}; re-export them for this split"
            )
        self.cf_manifest = dict(getattr(emb, "manifest", {}) or {})
        torch.manual_seed(ctx.seed)
        self.proj = ItemMLP(
            emb.item, p.mlp_ratio, self.n_tokens, self.bb.hidden_size, standardize=p.standardize
        ).to(self.bb.device)

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        return self.proj(items)

    def cf_identity(self) -> dict[str, Any]:
        p = self.p
        return {
            "cf": p.cf_model,
            "cf_params": p.cf_params,
            "export": self.cf_manifest.get("params_hash"),
            "mlp_ratio": p.mlp_ratio,
            "n_tokens": self.n_tokens,
            "standardize": p.standardize,
        }

    def _joint(self, name: str, epochs: int, lr: float) -> LMStage:
        return LMStage(name, self.cf_identity(), {"proj": self.proj, "llm": self.model}, lr, epochs,
                         before=self.unfreeze_llm)  # fmt: skip

    def unfreeze_llm(self) -> None:
        set_trainable(self.model, lambda _n: True)

    def freeze_llm(self) -> None:
        set_trainable(self.model, lambda _n: False)


class I2TMLP1(_CFItemLM):
    """CoLLM-style baseline: one soft token per item from an MLP over its CF vector, trained with the LLM."""

    name: ClassVar[str] = "i2t-mlp1"
    card: ClassVar[MethodCard] = _baseline_card(
        "CoLLM-style MLP to one token, as ILM 4.3 configures it (seed 000)", "slot"
    )

    def train_stages(self) -> list[LMStage]:
        return [self._joint("i2t-mlp-joint", self.p.epochs, float(self.p.lr))]


class I2TMLPN(I2TMLP1):
    """The same MLP to N soft tokens per item (ILM Fig. 5's baseline; N = 4 by default)."""

    name: ClassVar[str] = "i2t-mlpn"
    card: ClassVar[MethodCard] = _baseline_card("MLP to N tokens, ILM Fig. 5 (seed 000)", "multi-slot")
    Params: ClassVar[type[ParamSet]] = MLPNParams
    p: MLPNParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.n_tokens = self.p.n_tokens  # range checked by its Param; MultiTokenSlots too


class I2TELM(_CFItemLM):
    """ELM-style adapter: stage 1 trains the adapter with the LLM frozen, stage 2 trains everything."""

    name: ClassVar[str] = "i2t-elm"
    card: ClassVar[MethodCard] = _baseline_card(
        "ELM-style adapter, two stages, as ILM 4.3 configures it (seed 000)", "slot"
    )
    Params: ClassVar[type[ParamSet]] = ELMParams
    p: ELMParams

    def train_stages(self) -> list[LMStage]:
        p = self.p
        first = LMStage("i2t-elm-adapter", self.cf_identity(), {"proj": self.proj}, float(p.stage1_lr),
                          p.stage1_epochs, before=self.freeze_llm)  # fmt: skip
        # stage 2 starts from stage 1's result: the recipe names stage 1's key in stage 2's identity
        return [first, self._joint("i2t-elm-all", p.stage2_epochs, float(p.stage2_lr))]


class I2TText(Item2TextLM):
    """Text-only: the item's title in the prompt, no vector (what the LLM gets from text alone)."""

    name: ClassVar[str] = "i2t-text"
    card: ClassVar[MethodCard] = _baseline_card(
        "text only: the item's title in the prompt (ILM 4.3 baseline)", "none"
    )
    prompt_mode: ClassVar[str] = "title"

    def train_stages(self) -> list[LMStage]:
        spec = LMStage(
            "i2t-text", {"prompt_mode": "title"}, {"llm": self.model}, float(self.p.lr), self.p.epochs
        )
        spec.before = self.unfreeze_llm
        return [spec]

    def unfreeze_llm(self) -> None:
        set_trainable(self.model, lambda _n: True)


# --- reference rows -----------------------------------------------------------------------------------
class _Reference(BaseRecommender):
    tasks: ClassVar[frozenset[str]] = frozenset({"item2text"})
    Params: ClassVar[type[ParamSet]] = ParamSet  # no parameters

    def fit(self, split: Split, ctx: RunContext) -> None:
        proto = ctx.setup.protocol
        self.proto = proto if isinstance(proto, Item2TextProtocol) else Item2TextProtocol.default(split)
        self.template_info = self.proto.template_info()
        # prompt text -> sub-task, from every template of the bank (the requests carry no sub-task name)
        bank = self.proto.bank
        self._task_of: dict[str, str] = {}
        for task in self.proto.tasks:
            for key in [*(f"seen:{i}" for i in range(len(bank.seen[task]))), "unseen:0"]:
                text = bank.render(
                    task, key, domain_one=self.proto.facts.domain_one, attr_noun=self.proto.facts.attr_noun
                )
                self._task_of[text] = task

    def task_of(self, prompt: str) -> str:
        if prompt not in self._task_of:
            raise ConfigError(f"method {self.name!r}: prompt {prompt!r} is no template of the task's bank")
        return self._task_of[prompt]


class I2TFloor(_Reference):
    """SC of mismatched references: each prompt gets the reference of the next test item of its sub-task
    whose reference differs from its own (``controls.mismatched_references``)."""

    name: ClassVar[str] = "i2t-floor"
    card: ClassVar[MethodCard] = reference_row(
        "reference row: another test item's reference (the SC floor)", {"item2text"}
    )

    def fit(self, split: Split, ctx: RunContext) -> None:
        super().fit(split, ctx)
        self._other = mismatch_by_item(self.proto.eval_examples(self.proto.items.test, "seen:0"))

    def generate(self, requests: GenerateRequests) -> list[str]:
        assert requests.items is not None
        out = []
        for prompt, row in zip(requests.prompts, np.asarray(requests.items), strict=True):
            task = self.task_of(prompt)
            text = self._other.get((task, int(row[0])))
            if text is None:
                raise ConfigError(
                    f"method {self.name!r}: sub-task {task!r} has no test item with a different reference "
                    "(every answer is the same), so no mismatched reference exists"
                )
            out.append(text)
        return out


class I2TConst(_Reference):
    """The sub-task's most frequent training answer for every prompt (``controls.constant_answers``)."""

    name: ClassVar[str] = "i2t-const"
    card: ClassVar[MethodCard] = reference_row(
        "reference row: the most frequent training answer", {"item2text"}
    )

    def fit(self, split: Split, ctx: RunContext) -> None:
        super().fit(split, ctx)
        self._answer = constant_answers(self.proto.train)

    def generate(self, requests: GenerateRequests) -> list[str]:
        return [self._answer[self.task_of(prompt)] for prompt in requests.prompts]


class I2TCopy(_Reference):
    """Copy the input: the item's title (both titles for pair prompts)."""

    name: ClassVar[str] = "i2t-copy"
    card: ClassVar[MethodCard] = reference_row("reference row: the item's title copied", {"item2text"})

    def generate(self, requests: GenerateRequests) -> list[str]:
        assert requests.items is not None
        titles = self.proto.facts.title
        return [
            " and ".join(titles[int(i)] for i in row if int(i) >= 0) for row in np.asarray(requests.items)
        ]
