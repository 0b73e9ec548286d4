"""Amazon reviews 2014 (McAuley lab): ``reviews_<Cat>_5.json.gz`` + ``meta_<Cat>.json.gz``.

Meta lines are Python literals (single quotes), not JSON, so they go through ``ast.literal_eval``; review
lines are JSON in the 5-core files but are accepted as literals too. Used by the OpenP5 Amazon datasets and,
with the option ``review_text`` (a ``review`` column of ``reviewText``), by CLLM4Rec's.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchbed.data.preprocess import build_data
from benchbed.data.schema import InteractionData
from benchbed.data.sources._amazon import _text, read_meta, read_reviews, time_range

if TYPE_CHECKING:
    from benchbed.data.spec import DatasetSpec


def parse_line(line: str) -> Any:
    """JSON when it is (fast), else a Python literal; never ``eval``."""
    try:
        return json.loads(line)
    except ValueError:
        return ast.literal_eval(line.strip())


def categories(obj: dict[str, Any]) -> str:
    """2014 meta: ``categories`` is a list of paths, e.g. [["Beauty", "Makeup", "Face"], ["Beauty", ...]]."""
    paths = obj.get("categories") or []
    if not isinstance(paths, list):
        return _text(paths)
    return " | ".join(" > ".join(_text(c) for c in p) if isinstance(p, list) else _text(p) for p in paths)


def load(spec: DatasetSpec, files: dict[str, Path]) -> InteractionData:
    """Catalog loader: ``reviews`` and ``meta`` files -> ``InteractionData`` (recipe applied)."""
    recipe = dict(spec.recipe)
    lo, hi = time_range(recipe)
    keep_text = bool(spec.options.get("review_text"))
    reviews, outside = read_reviews(files["reviews"], parse_line, lo, hi, keep_text=keep_text)
    meta, skipped = read_meta(files["meta"], parse_line, set(reviews["item_raw"]), categories)
    recipe.pop("time_from", None), recipe.pop("time_to", None)
    stats = {"outside_time_range": outside, **skipped}
    carry = ("review",) if keep_text else ()
    return build_data(spec.name, reviews, meta, None, recipe, domain=spec.domain, stats=stats, carry=carry)
