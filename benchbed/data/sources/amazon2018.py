"""Amazon reviews 2018 (McAuley lab): ``<Cat>_5.json.gz`` (or ``<Cat>.json.gz``) + ``meta_<Cat>.json.gz``.

Both are JSON lines (gzip or plain), streamed. Used by ``amazon-book`` (CoLLM's recipe).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchbed.data.preprocess import build_data
from benchbed.data.schema import InteractionData
from benchbed.data.sources._amazon import _text, read_meta, read_reviews, time_range

if TYPE_CHECKING:
    from benchbed.data.catalog import DatasetSpec


def categories(obj: dict[str, Any]) -> str:
    """2018 meta: ``category`` is one path, e.g. ["Books", "Literature & Fiction"]."""
    cats = obj.get("category") or []
    return " > ".join(_text(c) for c in cats) if isinstance(cats, list) else _text(cats)


def load(spec: DatasetSpec, files: dict[str, Path]) -> InteractionData:
    """Catalog loader: ``reviews`` and ``meta`` files -> ``InteractionData`` (recipe applied)."""
    recipe = dict(spec.recipe)
    lo, hi = time_range(recipe)
    reviews, outside = read_reviews(files["reviews"], json.loads, lo, hi)
    meta, skipped = read_meta(files["meta"], json.loads, set(reviews["item_raw"]), categories)
    recipe.pop("time_from", None), recipe.pop("time_to", None)
    stats = {"outside_time_range": outside, **skipped}
    return build_data(spec.name, reviews, meta, None, recipe, domain=spec.domain, stats=stats)
