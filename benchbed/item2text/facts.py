"""What the item-to-text references are built from: per-item title, year, attribute set, brand, description.

Read from ``InteractionData.items`` (``benchbed.data.schema``): MovieLens has ``title``, ``year`` and
``genres`` (RecBole's ml-100k: space separated tokens; the ml-1m loader: ", " separated); Amazon has
``title``, ``brand``, ``categories`` (paths "A > B | A > C") and ``description``. Genres and categories are
both the item's *attribute set* (``attrs``); the noun prompts use is ``attr_noun`` ("genres" / "categories").
Amazon category paths are flattened to their unique names; a name carried by more than ``ROOT_SHARE`` of the
items (the store's root, e.g. "Books") says nothing about an item and is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from benchbed.data.schema import InteractionData

ROOT_SHARE = 0.9
UNKNOWN = {"unknown", "(no genres listed)", ""}


@dataclass(frozen=True)
class ItemFacts:
    """Per item (index = dense item id): ``title``; ``year`` (None when absent); ``attrs`` (sorted tuple)."""

    dataset: str
    domain_one: str  # "movie", "book", "item": the noun prompts use
    attr_noun: str  # "genres" | "categories"
    title: tuple[str, ...]
    year: tuple[int | None, ...]
    attrs: tuple[tuple[str, ...], ...]
    brand: tuple[str, ...]
    fields: frozenset[str]  # which source fields the dataset has: title, year, genres, categories, brand, ...

    def __len__(self) -> int:
        return len(self.title)

    def decade(self, item: int) -> str | None:
        y = self.year[item]
        return None if y is None else f"{(y // 10) * 10}s"

    @cached_property
    def vocabulary(self) -> tuple[str, ...]:
        """Every attribute and decade any item has: what ``attr_f1`` looks for in generated text."""
        names = {a for row in self.attrs for a in row}
        names |= {d for d in (self.decade(i) for i in range(len(self))) if d}
        return tuple(sorted(names))

    def has(self, item: int, need: str) -> bool:
        """Whether ``item`` has the fact ``need`` ("title", "year", "attrs", "brand")."""
        if need == "title":
            return bool(self.title[item])
        if need == "year":
            return self.year[item] is not None
        if need == "attrs":
            return bool(self.attrs[item])
        if need == "brand":
            return bool(self.brand[item])
        raise KeyError(need)


def _year(value: object) -> int | None:
    m = re.search(r"(1[89]\d\d|20\d\d)", str(value or ""))
    return int(m.group(1)) if m else None


def _split_attrs(value: object) -> list[str]:
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()
    if not text:
        return []
    if " > " in text or " | " in text:
        parts = [p.strip() for path in text.split("|") for p in path.split(">")]
    elif "," in text:
        parts = [p.strip() for p in text.split(",")]
    else:  # RecBole token_seq: space separated
        parts = text.split()
    return [p for p in dict.fromkeys(parts) if p.lower() not in UNKNOWN]


def item_facts(data: InteractionData) -> ItemFacts:
    """Facts of every item of ``data`` (see the module docstring for the columns read)."""
    items = data.items
    n = len(items)

    def col(name: str) -> list[str]:
        if name not in items.columns:
            return [""] * n
        return ["" if pd.isna(v) else str(v).strip() for v in items[name].tolist()]

    fields = {
        c for c in ("title", "year", "genres", "categories", "brand", "description") if c in items.columns
    }
    source = "genres" if "genres" in items.columns else "categories"
    raw = items[source].tolist() if source in items.columns else [None] * n
    attrs = [_split_attrs(v) for v in raw]
    counts: dict[str, int] = {}
    for row in attrs:
        for a in row:
            counts[a] = counts.get(a, 0) + 1
    if source == "categories" and n > 1:
        roots = {a for a, c in counts.items() if c > ROOT_SHARE * n}
        attrs = [[a for a in row if a not in roots] for row in attrs]
    years = [_year(v) for v in col("year")] if "year" in items.columns else [None] * n
    domain = data.domain or "items"
    return ItemFacts(
        dataset=data.name,
        domain_one=domain[:-1] if domain.endswith("s") else domain,
        attr_noun=source,
        title=tuple(col("title")),
        year=tuple(years),
        attrs=tuple(tuple(sorted(row)) for row in attrs),
        brand=tuple(col("brand")),
        fields=frozenset(fields),
    )
