"""The opening of a stage chain on a randomly initialised backbone: a text-only stage first.

The ``tiny`` preset is random: before an injection method can teach it to read vectors it must read the prompt
language at all (protocols/ilm.md §1h: the tiny LM is "briefly pretrained on the template corpus"; ILM App. B
pretrains its 8-layer decoder on OpenP5 text). A pretrained backbone starts from its own weights. embedproj
and both task paths of ilm open this way; each later stage names the keys of the stages it builds on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchbed.llm.stages import StageRun

RANDOM_INIT_BACKBONES = frozenset({"tiny"})  # presets whose weights are random: they need a text stage first


def wants_warm_start(params: dict[str, Any]) -> bool:
    """A method on top of the text stage trains it first: ``warm_start: text``, or ``auto`` on a randomly
    initialised backbone (a pretrained one already reads text)."""
    mode = params["warm_start"]
    return mode == "text" or (mode == "auto" and str(params["backbone"]) in RANDOM_INIT_BACKBONES)


def warm_start(params: dict[str, Any], run_text_stage: Callable[[], StageRun]) -> list[str]:
    """Run the text stage when :func:`wants_warm_start`; the keys the next stages name as built on (its key,
    or none)."""
    return [run_text_stage().key] if wants_warm_start(params) else []
