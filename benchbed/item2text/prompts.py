"""Item markers in item-to-text prompts and their conversion to pieces on the method side.

The task hands ``generate`` (and ``fit``, in ``Example.prompt``) plain strings with ``{item1}`` / ``{item2}``
markers. ``to_pieces`` turns one into ``benchbed.prompts`` pieces for
``benchbed.llm.injectors.prompts.encode``:
``Slot`` markers (methods that inject vectors), the items' titles (text-only methods) or both.
"""

from __future__ import annotations

from collections.abc import Sequence

from benchbed.errors import ConfigError
from benchbed.prompts import Piece, Slot, render_template

SLOTS = ("item1", "item2")
MODES = ("slot", "title", "title+slot")


def marked(pieces: Sequence[Piece]) -> str:
    """Pieces back to one string, each ``Slot`` written as its ``{name}`` marker."""
    return "".join(f"{{{p.name}}}" if isinstance(p, Slot) else p for p in pieces)


def to_pieces(
    prompt: str, items: Sequence[int], *, mode: str = "slot", titles: Sequence[str] | None = None
) -> list[Piece]:
    """``prompt``'s markers as ``Slot``s (``slot``), the items' titles (``title``) or title then slot."""
    if mode not in MODES:
        raise ConfigError(f"item2text prompts: mode {mode!r}; expected one of {MODES}")
    if mode != "slot" and titles is None:
        raise ConfigError(f"item2text prompts: mode {mode!r} needs the item titles")
    pieces = render_template(prompt, {}, SLOTS)
    out: list[Piece] = []
    for p in pieces:
        if isinstance(p, Slot):
            j = SLOTS.index(p.name)
            if j >= len(items) or int(items[j]) < 0:
                raise ConfigError(f"item2text prompt {prompt!r} has {{{p.name}}} but no item for it")
            if mode == "slot":
                out.append(p)
                continue
            assert titles is not None
            title = titles[int(items[j])] or "an untitled item"
            out.append(f'"{title}"')
            if mode == "title+slot":
                out.append(p)
        else:
            out.append(p)
    merged: list[Piece] = []
    for p in out:
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        else:
            merged.append(p)
    return merged
