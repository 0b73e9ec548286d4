"""What a method is, declared once beside its class (MTEB's model metadata, for recommenders).

A ``MethodCard`` names the paper a method reproduces, how the collaborative (ID) signal enters the model
(the injection), what reads the answer (the head), the tasks it serves, its variants and what backbone it
needs. ``benchbed methods`` prints it, README's method table is generated from the cards
(``benchbed methods --markdown``; a test keeps the two equal), every leaderboard says in a footnote what each
of its methods is (``benchbed.results.render``), and the conformance suite
(``tests/conformance/``) checks that every registered method has one that agrees with its class.
Only facts go here: no defaults, no behaviour.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from benchbed.errors import ConfigError

# how the ID signal enters the model (CONTRIBUTING.md's injection table names the kit part of each)
INJECTIONS: dict[str, str] = {
    "none": "no ID signal: text only, or a rule",
    "id-model": "an ID model (no LLM): embeddings learned from interactions",
    "slot": "one vector per prompt placeholder (llm.injectors.slots.SlotVectors)",
    "multi-slot": "N vectors per placeholder (llm.injectors.slots.MultiTokenSlots)",
    "prefix": "per-layer prefix into keys/values (llm.injectors.prefix.LayerPrefix)",
    "vocab": "new user/item tokens (llm.injectors.vocab.VocabExtension)",
}
# what turns the model's output into the task's answer
HEADS: dict[str, str] = {
    "yes-no": "Yes/No answer logit (llm.yesno)",
    "constrained-beams": "trie-constrained beams over item ids (llm.heads.constrained)",
    "multinomial": "softmax over all items (llm.heads.multinomial)",
    "pooled": "two-tower dot product (llm.heads.pooled)",
    "text": "free text (llm.heads.text)",
    "id-scores": "the ID model's own scores",
    "rule": "a fixed rule, no model",
}
BACKBONES: dict[str, str] = {
    "decoder": "a causal LM",
    "decoder-or-encoder": "a causal LM, or an encoder reading the answer at [MASK]",
    "encoder": "a sentence encoder",
    "encoder-or-decoder": "a sentence encoder, or a causal LM pooled at its last token",
    "none": "no language model",
}
ROLES: dict[str, str] = {
    "llm": "an LLM method of a paper",
    "baseline": "an ID baseline",
    "reference": "a reference row (floor, control)",
    "example": "a worked example, not a paper's method",
}


@dataclass(frozen=True)
class MethodCard:
    """Declarative facts about a method; set as ``card = MethodCard(...)`` on its class.

    ``paper``: the work reproduced, with the seed or source (``../shared/PROTOCOLS.md``); ``tasks`` must
    equal the class's ``tasks`` (the conformance suite checks it); ``variants``: named variants the method's
    parameters select (``"tuning=t1"``), empty when none."""

    paper: str
    role: str
    injection: str
    head: str | tuple[str, ...]  # one per task family where they differ (ilm: beams and free text)
    tasks: frozenset[str]
    backbone: str = "none"
    variants: tuple[str, ...] = ()
    code: str = ""  # the authors' repository, when public

    def __post_init__(self) -> None:
        object.__setattr__(self, "head", (self.head,) if isinstance(self.head, str) else tuple(self.head))
        for name, value, allowed in (
            ("role", self.role, ROLES),
            ("injection", self.injection, INJECTIONS),
            *(("head", head, HEADS) for head in self.head),
            ("backbone", self.backbone, BACKBONES),
        ):
            if value not in allowed:
                raise ConfigError(f"method card: {name}={value!r}; expected one of {', '.join(allowed)}")
        object.__setattr__(self, "tasks", frozenset(self.tasks))
        object.__setattr__(self, "variants", tuple(self.variants))

    def facts(self) -> dict[str, str]:
        """The card as ordered label -> text pairs (``benchbed methods NAME`` prints them)."""
        return {
            "paper": self.paper,
            "role": self.role,
            "injection": f"{self.injection} ({INJECTIONS[self.injection]})",
            "head": "; ".join(f"{head} ({HEADS[head]})" for head in self.head),
            "tasks": ", ".join(sorted(self.tasks)),
            "backbone": f"{self.backbone} ({BACKBONES[self.backbone]})",
            "variants": ", ".join(self.variants) or "-",
            **({"code": self.code} if self.code else {}),
        }

    def summary(self) -> str:
        """One phrase for a board's footnote: the paper and how the ID signal enters and is read."""
        return f"{self.paper} [{self.injection} -> {'/'.join(self.head)}]"


def id_baseline(paper: str, tasks: Iterable[str], code: str = "", variants: Iterable[str] = ()) -> MethodCard:
    """The card of an ID baseline: an ID model scoring with its own embeddings, no language model."""
    return MethodCard(
        paper, "baseline", "id-model", "id-scores", frozenset(tasks), variants=tuple(variants), code=code
    )


def reference_row(paper: str, tasks: Iterable[str], head: str = "rule") -> MethodCard:
    """The card of a reference row (a floor, a control, a fixed rule): no ID signal, no language model."""
    return MethodCard(paper, "reference", "none", head, frozenset(tasks))


def topk_llm(
    paper: str, injection: str, head: str, backbone: str, variants: Iterable[str], code: str = ""
) -> MethodCard:
    """The card of an LLM method that ranks all items (top-K) and names its paper's variants with one
    ``variant`` parameter: ``variants`` are its values beyond the method itself (cllm4rec, rarec)."""
    named = tuple(f"variant={v}" for v in variants)
    return MethodCard(paper, "llm", injection, head, frozenset({"topk"}), backbone, named, code)


def generative_llm(paper: str, injection: str, variants: Iterable[str]) -> MethodCard:
    """The card of an LLM method on the generative task (p5-random, embedproj): a decoder writes the item's
    id under constrained beams; methods differ in the paper, how the ID signal enters, and the variants."""
    return MethodCard(
        paper, "llm", injection, "constrained-beams", frozenset({"generative"}), "decoder", tuple(variants)
    )


def ctr_llm(paper: str, injection: str, backbone: str, variants: Iterable[str], code: str = "") -> MethodCard:
    """The card of a Yes/No prompt method on the CTR task (icl, tallrec, collm): the score is read from the
    answer's Yes/No logits; methods differ in the paper, how the ID signal enters, the backbones they take
    and the variants."""
    return MethodCard(paper, "llm", injection, "yes-no", frozenset({"ctr"}), backbone, tuple(variants), code)


def card_of(cls: Any) -> MethodCard | None:
    """A method class's card, or None when it declares none."""
    card = getattr(cls, "card", None)
    return card if isinstance(card, MethodCard) else None


TABLE_HEADER = ("method", "paper", "injection", "head", "tasks", "backbone", "variants")


@dataclass
class MethodRow:
    name: str
    card: MethodCard
    cells: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        c = self.card
        self.cells = (
            f"`{self.name}`",
            c.paper,
            c.injection,
            " / ".join(c.head),
            ", ".join(sorted(c.tasks)),
            c.backbone,
            ", ".join(c.variants) or "-",
        )
        self.cells = tuple(cell.replace("|", "\\|") for cell in self.cells)  # a pipe ends a Markdown cell


def markdown_table(cards: Iterable[tuple[str, MethodCard]]) -> str:
    """README's method table: one row per (registered name, card), in the order given."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(MethodRow(name, card).cells) + " |" for name, card in cards]
    return "\n".join(lines)
