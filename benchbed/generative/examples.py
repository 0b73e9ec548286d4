"""Training examples and evaluation rows of the OpenP5 protocol on a leave-one-out split.

Train: every position of a user's training sequence (``items[:-2]``) is a target, its history the items
before it, capped at ``history_len`` most recent (``sequential`` needs at least one history item; the
``straightforward`` sub-task, which shows only the user, also uses the first position). Valid: target = the
second-last item, history = the training sequence. Test: target = the last item, history = training sequence
plus the valid item. Each training example is paired with ``k`` distinct *seen* templates drawn with a seed;
the unseen template never appears in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchbed.data.schema import Split
from benchbed.errors import ConfigError, DataError

SUB_TASKS = ("sequential", "straightforward")
PROTOCOL = "leave-one-out"
MIN_INTERACTIONS = 3  # one train item at least, plus the valid and test targets


@dataclass(frozen=True)
class Example:
    """One prompt: ``template`` is ``"seen:<i>"`` or ``"unseen:<i>"`` in the sub-task's bank."""

    sub_task: str
    user: int
    history: tuple[int, ...]
    target: int
    template: str


@dataclass
class EvalRows:
    """One row per evaluated user: history (oldest first, capped) and the single ground-truth target."""

    users: np.ndarray
    histories: list[list[int]]
    targets: np.ndarray
    frame: pd.DataFrame  # the split rows (valid or test), aligned with ``users``


def check_split(split: Split) -> None:
    """One-line errors for a split this protocol cannot use."""
    if split.protocol != PROTOCOL:
        raise ConfigError(
            f"task 'generative' needs a {PROTOCOL!r} split (OpenP5 protocol), got {split.protocol!r}; "
            f"use --split {PROTOCOL}"
        )
    for name, frame in (("valid", split.valid), ("test", split.test)):
        dup = frame["user"].duplicated()
        if dup.any():
            raise DataError(
                f"split {name}: user {int(frame['user'][dup].iloc[0])} has several rows; "
                "leave-one-out keeps one"
            )
    train_len = split.train.groupby("user").size()
    test_users = split.test["user"].to_numpy()
    counts = train_len.reindex(test_users, fill_value=0).to_numpy()
    counts = counts + 1 + np.isin(test_users, split.valid["user"].to_numpy())
    short = test_users[counts < MIN_INTERACTIONS]
    if len(short):
        raise DataError(
            f"split: user {int(short[0])} has {int(counts[counts < MIN_INTERACTIONS][0])} interaction(s); "
            f"the generative task needs >= {MIN_INTERACTIONS} per user ({len(short)} such users; "
            "apply a 5-core filter)"
        )


def _check_sub_task(sub_task: str) -> None:
    if sub_task not in SUB_TASKS:
        raise ConfigError(f"task.sub_task: expected one of {list(SUB_TASKS)}, got {sub_task!r}")


def training_examples(
    split: Split,
    sub_tasks: tuple[str, ...],
    *,
    history_len: int,
    n_seen: int,
    templates_per_example: int,
    seed: int = 0,
    max_examples: int | None = None,
) -> list[Example]:
    """All training examples of ``sub_tasks``, each with ``templates_per_example`` distinct seen templates."""
    if not 1 <= templates_per_example <= n_seen:
        raise ConfigError(f"templates_per_example must be in 1..{n_seen}, got {templates_per_example}")
    if history_len < 1:
        raise ConfigError(f"history_len must be >= 1, got {history_len}")
    rng = np.random.default_rng(seed)
    out: list[Example] = []
    sequences = split.train_sequences()
    for sub_task in sub_tasks:
        _check_sub_task(sub_task)
        first = 1 if sub_task == "sequential" else 0
        for user, seq in sequences.items():
            for t in range(first, len(seq)):
                hist = tuple(int(i) for i in seq[max(0, t - history_len) : t])
                for tid in rng.choice(n_seen, size=templates_per_example, replace=False):
                    out.append(Example(sub_task, int(user), hist, int(seq[t]), f"seen:{int(tid)}"))
    if max_examples is not None and len(out) > max_examples:
        keep = np.sort(rng.choice(len(out), size=max_examples, replace=False))
        out = [out[i] for i in keep]
    return out


def eval_rows(split: Split, stage: str, *, history_len: int) -> EvalRows:
    """Valid or test users with their capped history and target (test history includes the valid item)."""
    if stage not in ("valid", "test"):
        raise ConfigError(f"evaluation stage must be 'valid' or 'test', got {stage!r}")
    frame = (split.test if stage == "test" else split.valid).sort_values("user", kind="stable")
    sequences = split.train_sequences()
    valid_item = dict(zip(split.valid["user"].astype(int), split.valid["item"].astype(int), strict=True))
    histories: list[list[int]] = []
    for user in frame["user"].astype(int):
        seq = [int(i) for i in sequences.get(user, np.zeros(0, dtype=np.int64))]
        if stage == "test" and user in valid_item:
            seq.append(valid_item[user])
        histories.append(seq[-history_len:] if history_len else [])  # [-0:] would be all of it
    return EvalRows(
        users=frame["user"].to_numpy(dtype=np.int64),
        histories=histories,
        targets=frame["item"].to_numpy(dtype=np.int64),
        frame=frame.reset_index(drop=True),
    )
