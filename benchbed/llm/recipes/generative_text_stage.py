"""The generative recipe's text-only stage: p5-random's whole training, and the warm start that embedproj and
ilm's generative path run first on a randomly initialised backbone (``benchbed.llm.recipes.warm_start``).

One definition, so the three methods give the stage the same identity for the same settings and the second
method loads it from the stage cache.
"""

from __future__ import annotations

from benchbed.llm.lora import LoraSpec, add_lora, set_trainable
from benchbed.llm.recipes.generative import GenerativeLM, LMStage
from benchbed.llm.recipes.warm_start import warm_start


def text_stage(method: GenerativeLM, tuning: str, lora: LoraSpec) -> LMStage:
    """The text-only stage (also embedproj's warm start on a randomly initialised backbone): same identity
    for the same settings, so the second method loads it from the stage cache. ``tuning`` is full or lora
    (declared: ``benchbed.params``)."""
    if tuning == "full":
        set_trainable(method.model, lambda _n: True)
    else:
        method.model, _ = add_lora(method.model, lora)
        method.bb.model = method.model
    return LMStage(
        name="generative-text",
        reads={"tuning": tuning, "lora": lora.as_dict() if tuning == "lora" else None},
        modules={"model": method.model},
        use_slots=False,
        lr=float(method.p.lr),  # an int lr stays a float in the stage's identity
        epochs=method.p.epochs,
    )


def generative_warm_start(method: GenerativeLM, tuning: str) -> list[str]:
    """embedproj's and ilm's opening on the generative task: this text stage (``tuning``: the method's, no
    LoRA settings of its own) when :func:`wants_warm_start`; the keys the next stages build on."""
    return warm_start(method.params, lambda: method.run_stage(text_stage(method, tuning, LoraSpec())))
