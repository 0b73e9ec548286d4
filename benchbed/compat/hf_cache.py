"""The name of the KV-cache argument of transformers' model forwards, decided once, in one place.

Why: transformers 5.x renamed the forward argument ``past_key_values`` to ``cache`` (and the output field
likewise). The old name still works but prints a FutureWarning on every forward and is announced for removal
in 5.40; transformers 4.x (``pyproject.toml`` allows >= 4.44) knows only the old name. Every benchbed call
that hands a model a cache goes through ``cache_kwarg()`` (``ModelInputs.kwargs()`` does), and every read of a
returned cache through ``output_cache()``.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any


@functools.cache
def cache_kwarg() -> str:
    """``"cache"`` on transformers versions whose forwards take it, else ``"past_key_values"``."""
    from transformers import LlamaModel

    return "cache" if "cache" in inspect.signature(LlamaModel.forward).parameters else "past_key_values"


def output_cache(out: Any) -> Any:
    """The KV cache a forward returned, under either name."""
    cache = out.get("cache") if hasattr(out, "get") else None
    return cache if cache is not None else getattr(out, "past_key_values", None)
