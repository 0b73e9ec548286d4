"""Bring-your-own split: a directory with ``<name>.train.inter``, ``.valid.inter``, ``.test.inter``.

RecBole atomic format (so the same directory also feeds RecBole's ``benchmark_filename``), an optional
``label`` column (0/1; all files or none) and an optional ``<name>.item`` with titles. Rows are kept as given
(no de-duplication): a pair in both train and test is then caught by the leakage check. Without a timestamp
field the row order is the time order, train before valid before test.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from benchbed.data.preprocess import build_data
from benchbed.data.schema import InteractionData
from benchbed.data.sources.recbole_atomic import read_features, read_inter
from benchbed.errors import DataError

if TYPE_CHECKING:
    from benchbed.data.spec import DatasetSpec

PARTS = ("train", "valid", "test")


def load_with_parts(spec: DatasetSpec, files: dict[str, Path]) -> tuple[InteractionData, np.ndarray]:
    """The union of the three files as ``InteractionData``, and each row's part (0 train, 1 valid, 2 test)."""
    frames, stats = [], {}
    for code, part in enumerate(PARTS):
        frame, part_stats = read_inter(files[part], strict_columns=True)
        if len(frame) == 0:
            raise DataError(f"{files[part]}: the {part} file has no rows; expected at least one interaction")
        frame["part"] = np.int8(code)
        frames.append(frame)
        stats.update({f"{part}_{k}": v for k, v in part_stats.items()})
    has_label = {part: "label" in f for part, f in zip(PARTS, frames, strict=True)}
    if len(set(has_label.values())) > 1:
        raise DataError(
            f"{spec.directory}: 'label' column in some files only ({has_label}); expected all or none"
        )
    untimed = [p for p in PARTS if f"{p}_timestamp" in stats]
    if untimed and len(untimed) < 3:
        raise DataError(
            f"{spec.directory}: 'timestamp' column missing in {untimed} only; expected all or none"
        )
    if untimed:  # row order: shift valid after train and test after valid
        offset = 0
        for frame in frames:
            frame["timestamp"] += offset
            offset += len(frame)
    union = pd.concat(frames, ignore_index=True)
    items = read_features(files["item"], "item_id") if "item" in files else None
    data = build_data(
        spec.name, union, items, None, {"dedupe": "none"}, domain=spec.domain, stats=stats, carry=("part",)
    )
    parts = data.interactions.pop("part").to_numpy(dtype=np.int8)
    return data, parts


def load(spec: DatasetSpec, files: dict[str, Path]) -> InteractionData:
    """Catalog loader for the union of the parts (the split itself comes from ``load_with_parts``)."""
    return load_with_parts(spec, files)[0]
