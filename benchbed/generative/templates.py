"""Template banks of the generative task, loaded with ``benchbed.prompts.load_bank``, and rendering to pieces.

A bank (``benchbed/prompts/generative_<sub_task>.yaml`` or any YAML path with the same keys) has 10 ``seen``
templates (training; template 0 is evaluated as ``seen``), 1 ``unseen`` one (evaluation only) and one
``answer`` format that spells the target. Rendering returns ``benchbed.prompts`` pieces: methods that inject
vectors get a ``Slot("user")`` right after the user id and a ``Slot("item_<j>")`` right after the j-th history
id (the vectors go *alongside* the id text); text-only methods get plain text.
"""

from __future__ import annotations

from pathlib import Path

from benchbed.errors import ConfigError
from benchbed.prompts import PLACEHOLDER, Piece, PromptBank, Slot, load_bank

VIEW = "text"
HISTORY_SEP = " , "
USER_SLOT = "user"
REQUIRED = {"sequential": ("dataset", "user", "history"), "straightforward": ("dataset", "user")}


def item_slot(j: int) -> str:
    return f"item_{j}"


def slot_names(history_len: int) -> tuple[str, ...]:
    """Slot columns of an encoded prompt: the user, then one per history position."""
    return (USER_SLOT, *(item_slot(j) for j in range(history_len)))


def load_generative_bank(sub_task: str, path: str | Path | None = None) -> PromptBank:
    """The bank of ``sub_task`` (built-in unless ``path``), checked for this task's needs."""
    if sub_task not in REQUIRED:
        raise ConfigError(f"task.sub_task: expected one of {sorted(REQUIRED)}, got {sub_task!r}")
    bank = load_bank(path or f"generative_{sub_task}")
    if VIEW not in bank.required:
        raise ConfigError(f"{bank.path}: a generative bank needs the view {VIEW!r}")
    missing = [f for f in REQUIRED[sub_task] if f not in bank.required[VIEW]]
    if missing:
        raise ConfigError(
            f"{bank.path}: view {VIEW!r} must require {{{missing[0]}}} for sub-task {sub_task!r}"
        )
    answer = bank.extra.get("answer")
    if not isinstance(answer, str) or "{target}" not in answer:
        raise ConfigError(f"{bank.path}: key 'answer' must be a string with the placeholder {{target}}")
    unknown = sorted(set(PLACEHOLDER.findall(answer)) - {"dataset", "target"})
    if unknown:
        raise ConfigError(
            f"{bank.path}: answer has unknown placeholder {{{unknown[0]}}}; known: dataset, target"
        )
    if not bank.unseen:
        raise ConfigError(f"{bank.path}: the generative task needs one 'unseen' template")
    seen_texts = {t[VIEW] for t in bank.seen}
    if any(t[VIEW] in seen_texts for t in bank.unseen):
        raise ConfigError(f"{bank.path}: an unseen template also appears among the seen ones")
    return bank


def template_ref(key: str) -> str | int:
    """``"seen:3"`` -> 3 (a seen index), ``"unseen:0"`` stays: the form ``PromptBank.template`` takes."""
    kind, _, idx = key.partition(":")
    if kind == "seen":
        return int(idx or 0)
    if kind == "unseen":
        return f"unseen:{int(idx or 0)}"
    raise ConfigError(f"template {key!r}: expected 'seen[:i]' or 'unseen[:i]'")


def render_pieces(
    bank: PromptBank, key: str, *, dataset: str, user: str, history: list[str], slots: bool
) -> list[Piece]:
    """Fill one template through the bank's renderer; with ``slots`` a vector slot follows the user id and
    each history id."""
    hist: list[Piece] = []
    for j, item in enumerate(history):
        if j:
            hist.append(HISTORY_SEP)
        hist.extend([item, Slot(item_slot(j))] if slots else [item])
    user_pieces: list[Piece] = [user, Slot(USER_SLOT)] if slots else [user]
    values = {"dataset": dataset, "user": user_pieces, "history": hist}
    return bank.render(template_ref(key), VIEW, values)


def render_answer(bank: PromptBank, *, dataset: str, target: str) -> str:
    return str(bank.extra["answer"]).format(dataset=dataset, target=target)
