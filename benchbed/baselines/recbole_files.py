"""RecBole atomic files of one benchbed split: what a row of each file is, written once per split and plan.

See :mod:`benchbed.baselines.recbole_adapter` for what each file holds per task (``labels`` or
``interactions``) and how sequential models get their ``item_id_list`` column.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchbed.baselines.collm_history import file_order_histories
from benchbed.data.schema import HISTORY_COLUMN, Split
from benchbed.errors import DataError
from benchbed.settings import get_settings

USER, ITEM, LABEL, SEQ = "user_id", "item_id", "label", "item_id_list"
STAGES = ("train", "valid", "test")


@dataclass(frozen=True)
class DataPlan:
    """Which rows and columns the atomic files hold (see the module docstring)."""

    feedback: str  # "labels" | "interactions"
    pointwise: bool  # trains on the label (labels) or on sampled negatives (interactions)
    sequential: bool = False
    max_len: int = 50  # history cap for sequential models
    min_history: int = 0  # rows with a shorter history are left out (SASRec needs >= 1)
    # labels only: "split" = the split's history column; "file" = CoLLM's (baselines.collm_history)
    history_rule: str = "split"

    @property
    def train_rows(self) -> str:
        if self.feedback == "interactions":
            return "all"
        return "labeled" if self.pointwise else "positives"

    @property
    def variant(self) -> str:
        seq = f"seq{self.max_len}h{self.min_history}" if self.sequential else "flat"
        rule = "-filehist" if self.sequential and self.history_rule == "file" else ""
        return f"{self.feedback}-{self.train_rows}-{seq}{rule}"


def _check_trainable(split: Split, plan: DataPlan) -> None:
    """One-line errors for a split the model cannot learn from under this task."""
    name = split.data.name
    if len(split.train) == 0:
        raise DataError(f"split of {name!r} ({split.protocol}): the train frame has no interactions")
    if plan.feedback == "labels":
        if not split.labeled:
            raise DataError(
                f"split of {name!r} ({split.protocol}): task ctr needs 0/1 labels but the data is implicit"
            )
        if plan.train_rows == "positives" and not (split.train["label"] == 1).any():
            raise DataError(
                f"split of {name!r} ({split.protocol}): no positive (label 1) train rows for a ranking model"
            )
        if plan.pointwise and split.train["label"].nunique() < 2:
            raise DataError(
                f"split of {name!r} ({split.protocol}): train labels are all "
                f"{int(split.train['label'].iloc[0])}; a pointwise model needs both classes"
            )


def _sequence_histories(split: Split, max_len: int) -> dict[str, list[list[int]]]:
    """Per row of each frame: the user's earlier items over train, valid, test (time order), last max_len."""
    parts = []
    for rank, stage in enumerate(STAGES):
        frame = split.frames()[stage]
        parts.append(
            pd.DataFrame(
                {
                    "user": frame["user"].to_numpy(),
                    "item": frame["item"].to_numpy(),
                    "ts": frame["timestamp"].to_numpy(),
                    "stage": rank,
                    "row": np.arange(len(frame)),
                }
            )
        )
    allrows = pd.concat(parts, ignore_index=True).sort_values(["user", "stage", "ts", "row"], kind="stable")
    out: dict[str, list[list[int]]] = {s: [[] for _ in range(len(split.frames()[s]))] for s in STAGES}
    users = allrows["user"].to_numpy()
    items = allrows["item"].to_numpy()
    stages = allrows["stage"].to_numpy()
    rows = allrows["row"].to_numpy()
    start = 0
    for i in range(len(users)):
        if i > 0 and users[i] != users[i - 1]:
            start = i
        lo = max(start, i - max_len)
        out[STAGES[stages[i]]][rows[i]] = items[lo:i].tolist()
    return out


def _frame_rows(split: Split, plan: DataPlan) -> dict[str, pd.DataFrame]:
    """The rows (user, item[, label][, history]) of each atomic file."""
    histories = None
    if plan.sequential and plan.feedback == "labels" and plan.history_rule == "file":
        histories = file_order_histories(split.frames(), plan.max_len)
    elif plan.sequential and (plan.feedback == "interactions" or HISTORY_COLUMN not in split.train.columns):
        histories = _sequence_histories(split, plan.max_len)
    out = {}
    for stage, frame in split.frames().items():
        rows = pd.DataFrame({USER: frame["user"].to_numpy(), ITEM: frame["item"].to_numpy()})
        if plan.feedback == "labels":
            rows[LABEL] = frame["label"].to_numpy().astype(np.float64)
        if plan.sequential:
            if histories is not None:
                hist = histories[stage]
            else:
                hist = [list(h)[-plan.max_len :] if plan.max_len else [] for h in frame[HISTORY_COLUMN]]
            rows[SEQ] = hist
        keep = np.ones(len(rows), dtype=bool)
        if stage == "train" and plan.train_rows == "positives":
            keep &= rows[LABEL].to_numpy() == 1
        if plan.sequential and plan.min_history > 0:
            keep &= rows[SEQ].map(len).to_numpy() >= plan.min_history
        out[stage] = rows[keep].reset_index(drop=True)
    return out


def _write_frame(rows: pd.DataFrame, path: Path) -> None:
    header = {USER: f"{USER}:token", ITEM: f"{ITEM}:token", LABEL: f"{LABEL}:float", SEQ: f"{SEQ}:token_seq"}
    out = rows.copy()
    if SEQ in out.columns:
        out[SEQ] = [" ".join(map(str, h)) for h in out[SEQ]]
    if LABEL in out.columns:
        out[LABEL] = out[LABEL].astype(int)
    out.columns = [header[c] for c in out.columns]
    out.to_csv(path, sep="\t", index=False)


@dataclass(frozen=True)
class AtomicFiles:
    root: Path  # RecBole's data_path
    name: str  # RecBole's dataset name (files are <root>/<name>/<name>.<stage>.inter)
    rows: dict[str, int]
    seq_width: int  # longest history written (>= 1); 0 for non-sequential files


def write_atomic_files(split: Split, plan: DataPlan, root: Path | None = None) -> AtomicFiles:
    """Write (or reuse) the split's atomic files for ``plan``.

    Files live in ``<cache>/recbole/<split hash>/<variant>/`` and are written to a temp dir that is
    renamed into place, so a crash never leaves half a dataset that a later run would trust.
    """
    _check_trainable(split, plan)
    split_hash = split.key
    root = Path(root) if root is not None else get_settings().cache_dir.resolve() / "recbole" / split_hash
    target = root / plan.variant
    info_file = target / "files.json"
    if not info_file.exists():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{plan.variant}.", dir=root))
        try:
            rows = _frame_rows(split, plan)
            for stage, frame in rows.items():
                _write_frame(frame, tmp / f"{plan.variant}.{stage}.inter")
            pd.DataFrame({f"{USER}:token": np.arange(split.n_users)}).to_csv(
                tmp / f"{plan.variant}.user", sep="\t", index=False
            )
            pd.DataFrame({f"{ITEM}:token": np.arange(split.n_items)}).to_csv(
                tmp / f"{plan.variant}.item", sep="\t", index=False
            )
            width = 0
            if plan.sequential:
                width = max([1] + [int(f[SEQ].map(len).max()) for f in rows.values() if len(f)])
            info = {"rows": {s: len(f) for s, f in rows.items()}, "seq_width": width, "plan": plan.variant}
            (tmp / "files.json").write_text(json.dumps(info, sort_keys=True), encoding="utf-8")
            try:
                os.replace(tmp, target)
            except OSError:  # another process won the race: its files are equivalent
                pass
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    info = json.loads(info_file.read_text(encoding="utf-8"))
    return AtomicFiles(root=root, name=plan.variant, rows=info["rows"], seq_width=int(info["seq_width"]))
