"""The item-to-text sub-tasks: what each asks, which facts it needs and how its reference is written.

The substitute for ELM's 24 tasks (not public) from ``../shared/protocols/semantic-consistency.md``: targets
are deterministic sentences over the item's facts, so a model can only get them right by knowing the item.
Single-item: ``describe`` ("Title (Year). Genres: A, B."), ``genres`` ("A, B."), ``decade`` ("The 1990s.").
Pair (ELM's Sim / DiffNN / CommNN): ``common`` / ``differ`` (shared attributes / symmetric difference) with a
seeded random partner, and ``common_nn`` / ``differ_nn`` with the first item's collaborative nearest neighbour
(co-occurrence in the training interactions), the pairs that need the behavioural signal. Pair targets name
no titles: the partner's attributes are the content. ``attributes`` is the set ``attr_f1`` scores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from benchbed.item2text.facts import ItemFacts


@dataclass(frozen=True)
class SubTask:
    name: str
    arity: int  # items per prompt
    needs: tuple[str, ...]  # facts every item of an example must have (ItemFacts.has)
    partner: str | None  # pair tasks: "random" or "nn"
    reference: Callable[[ItemFacts, tuple[int, ...]], str]
    attributes: Callable[[ItemFacts, tuple[int, ...]], frozenset[str]]


def _join(names: list[str] | tuple[str, ...]) -> str:
    return ", ".join(names)


def _describe(f: ItemFacts, items: tuple[int, ...]) -> str:
    i = items[0]
    year = f" ({f.year[i]})" if f.year[i] is not None else ""
    text = f"{f.title[i]}{year}. {f.attr_noun.capitalize()}: {_join(f.attrs[i]) or 'none'}."
    if f.brand[i]:
        text += f" Brand: {f.brand[i]}."
    return text


def _genres(f: ItemFacts, items: tuple[int, ...]) -> str:
    return f"{_join(f.attrs[items[0]])}."


def _decade(f: ItemFacts, items: tuple[int, ...]) -> str:
    return f"The {f.decade(items[0])}."


def _shared(f: ItemFacts, items: tuple[int, ...]) -> tuple[str, ...]:
    a, b = items
    return tuple(x for x in f.attrs[a] if x in set(f.attrs[b]))


def _common(f: ItemFacts, items: tuple[int, ...]) -> str:
    shared = _shared(f, items)
    if not shared:
        return f"They share no {f.attr_noun}."
    return f"Both are {_join(shared)}."


def _only(f: ItemFacts, items: tuple[int, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    a, b = items
    first = tuple(x for x in f.attrs[a] if x not in set(f.attrs[b]))
    second = tuple(x for x in f.attrs[b] if x not in set(f.attrs[a]))
    return first, second


def _differ(f: ItemFacts, items: tuple[int, ...]) -> str:
    first, second = _only(f, items)
    if not first and not second:
        return f"They have the same {f.attr_noun}."
    parts = []
    if first:
        parts.append(f"Only the first is {_join(first)}.")
    if second:
        parts.append(f"Only the second is {_join(second)}.")
    return " ".join(parts)


def _attrs_one(f: ItemFacts, items: tuple[int, ...]) -> frozenset[str]:
    return frozenset(f.attrs[items[0]])


def _attrs_decade(f: ItemFacts, items: tuple[int, ...]) -> frozenset[str]:
    d = f.decade(items[0])
    return frozenset({d} if d else set())


def _attrs_shared(f: ItemFacts, items: tuple[int, ...]) -> frozenset[str]:
    return frozenset(_shared(f, items))


def _attrs_differ(f: ItemFacts, items: tuple[int, ...]) -> frozenset[str]:
    first, second = _only(f, items)
    return frozenset(first) | frozenset(second)


SUB_TASKS: dict[str, SubTask] = {
    t.name: t
    for t in (
        SubTask("describe", 1, ("title", "attrs"), None, _describe, _attrs_one),
        SubTask("genres", 1, ("attrs",), None, _genres, _attrs_one),
        SubTask("decade", 1, ("year",), None, _decade, _attrs_decade),
        SubTask("common", 2, ("attrs",), "random", _common, _attrs_shared),
        SubTask("differ", 2, ("attrs",), "random", _differ, _attrs_differ),
        SubTask("common_nn", 2, ("attrs",), "nn", _common, _attrs_shared),
        SubTask("differ_nn", 2, ("attrs",), "nn", _differ, _attrs_differ),
    )
}
# which source column a fact comes from, for "dataset has no item text for sub-task X" errors
FACT_FIELDS = {"title": "title", "year": "year", "attrs": "genres/categories", "brand": "brand"}
