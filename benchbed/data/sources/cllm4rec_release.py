"""The CLLM4Rec authors' released data layout, read as a pre-split dataset (their exact split).

The tarball linked from yaochenzhu/LLM4Rec's README (§4) holds one folder per dataset, read by their
``src/training.py``, ``finetuning.py`` and ``predict.py``:

- ``meta.pkl``: ``{"num_users": I, "num_items": J}``;
- ``train_matrix.npz``, ``val_matrix.npz``, ``test_matrix.npz``: scipy sparse ``I x J``, non-zero =
  interaction;
- ``user_item_texts/review.pkl`` (optional here): a list of ``(prompt_text, main_text)``, the prompt naming
  the pair, ``"user_57 writes the following review for item_46:"`` (``src/libs/data.py``).

Ids: user ``i`` is matrix row ``i`` and item ``j`` column ``j`` (their tokens ``user_i`` / ``item_j``); raw
ids are ``"i"`` / ``"j"``, so benchbed's dense ids equal theirs whenever every row and column has an
interaction (``stats`` counts those without one: then ids are renumbered and map back through ``raw_id``).
Each review becomes the ``review`` column of its training row; a review whose pair is no training
interaction is counted (``reviews_not_in_train``) and unused, so content documents stay training-only. No
timestamps: row order is the time order, train before valid before test (as ``presplit``). No item titles.

Pickles are read with a restricted unpickler (containers, numbers, strings, numpy scalars/arrays): a
``.pkl`` that asks for any other object is refused, never executed.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from benchbed.data.preprocess import build_data
from benchbed.data.schema import InteractionData
from benchbed.errors import DataError

if TYPE_CHECKING:
    from benchbed.data.spec import DatasetSpec

PARTS = ("train", "valid", "test")
FILES = {
    "meta": ("meta.pkl",),
    "train": ("train_matrix.npz",),
    "valid": ("val_matrix.npz",),
    "test": ("test_matrix.npz",),
    "reviews": ("user_item_texts/review.pkl",),
}
_PAIR = re.compile(r"user_(\d+)\b.*?item_(\d+)\b")
_SAFE = {
    ("builtins", n) for n in ("dict", "list", "tuple", "set", "frozenset", "str", "int", "float", "bool")
} | {
    ("collections", "OrderedDict"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _SAFE:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_pickle(path: Path) -> Any:
    try:
        return _SafeUnpickler(io.BytesIO(Path(path).read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"{path}: not a plain-data pickle ({exc})") from exc


def _count(meta: Any, key: str, path: Path) -> int:
    value = meta.get(key) if isinstance(meta, dict) else None
    try:
        n = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        n = -1
    if n < 1:
        raise DataError(f"{path}: field {key!r} must be a positive integer, got {value!r}")
    return n


def _pairs(path: Path, shape: tuple[int, int]) -> np.ndarray:
    try:
        mat = sp.load_npz(path)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: not a scipy sparse .npz matrix ({exc})") from exc
    if mat.shape != shape:
        raise DataError(
            f"{path}: matrix shape {mat.shape}; expected {shape} (num_users, num_items: meta.pkl)"
        )
    coo = sp.coo_matrix(mat)
    keep = coo.data != 0
    pairs = np.stack([coo.row[keep], coo.col[keep]], axis=1).astype(np.int64)
    pairs = np.unique(pairs, axis=0)  # sorted by (user, item): their column order
    if len(pairs) == 0:
        raise DataError(f"{path}: the matrix has no non-zero entry; expected at least one interaction")
    return pairs


def _reviews(path: Path, shape: tuple[int, int]) -> dict[tuple[int, int], str]:
    data = read_pickle(path)
    if not isinstance(data, list | tuple):
        raise DataError(f"{path}: expected a list of (prompt_text, main_text), got {type(data).__name__}")
    out: dict[tuple[int, int], str] = {}
    for n, entry in enumerate(data):
        pair = isinstance(entry, list | tuple) and len(entry) == 2
        if not (pair and all(isinstance(t, str) for t in entry)):
            raise DataError(f"{path} entry {n}: expected a (prompt_text, main_text) pair of strings")
        m = _PAIR.search(entry[0])
        if m is None:
            raise DataError(
                f"{path} entry {n}: prompt {entry[0][:60]!r} names no 'user_<i> ... item_<j>' pair"
            )
        u, i = int(m.group(1)), int(m.group(2))
        if u >= shape[0] or i >= shape[1]:
            raise DataError(
                f"{path} entry {n}: user_{u} / item_{i} out of meta.pkl's {shape[0]} x {shape[1]}"
            )
        out.setdefault((u, i), " ".join(entry[1].split()))
    return out


def load_with_parts(spec: DatasetSpec, files: dict[str, Path]) -> tuple[InteractionData, np.ndarray]:
    """The three matrices' union as ``InteractionData`` (reviews on training rows) and each row's part."""
    meta = read_pickle(files["meta"])
    shape = (_count(meta, "num_users", files["meta"]), _count(meta, "num_items", files["meta"]))
    pairs = {part: _pairs(files[part], shape) for part in PARTS}
    reviews = _reviews(files["reviews"], shape) if "reviews" in files else {}
    frames = []
    for code, part in enumerate(PARTS):
        p = pairs[part]
        frame = pd.DataFrame({"user_raw": p[:, 0].astype(str), "item_raw": p[:, 1].astype(str)})
        frame["rating"] = 1.0
        frame["part"] = np.int8(code)
        text = [reviews.get((int(u), int(i)), "") for u, i in p] if part == "train" else [""] * len(p)
        frame["review"] = pd.Series(text, dtype=object)
        frames.append(frame)
    union = pd.concat(frames, ignore_index=True)
    union["timestamp"] = np.arange(len(union), dtype=np.int64)  # train, then valid, then test
    train_pairs = {(int(u), int(i)) for u, i in pairs["train"]}
    seen_users = np.unique(np.concatenate([p[:, 0] for p in pairs.values()]))
    seen_items = np.unique(np.concatenate([p[:, 1] for p in pairs.values()]))
    stats = {
        **{f"{part}_pairs": int(len(p)) for part, p in pairs.items()},
        "reviews": len(reviews),
        "reviews_not_in_train": sum(1 for k in reviews if k not in train_pairs),
        "users_without_interactions": int(shape[0] - len(seen_users)),
        "items_without_interactions": int(shape[1] - len(seen_items)),
    }
    data = build_data(
        spec.name,
        union,
        None,
        None,
        {"dedupe": "none"},
        domain=spec.domain,
        stats=stats,
        carry=("part", "review"),
    )
    parts = data.interactions.pop("part").to_numpy(dtype=np.int8)
    return data, parts


def load(spec: DatasetSpec, files: dict[str, Path]) -> InteractionData:
    """Catalog loader for the union of the parts (the split itself comes from ``load_with_parts``)."""
    return load_with_parts(spec, files)[0]


def is_release_dir(path: Path) -> bool:
    """Whether ``path`` holds the authors' layout (``meta.pkl`` and ``train_matrix.npz``)."""
    return (path / "meta.pkl").is_file() and (path / "train_matrix.npz").is_file()
