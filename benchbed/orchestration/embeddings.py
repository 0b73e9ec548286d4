"""The embedding source the runner hands LLM methods (``RunContext.embeddings``).

It sits above methods on purpose: on a cache miss it builds the ID baseline from the method registry and
fits it on the split, with the feedback the asking method needs, then stores the artifact in the
content-keyed cache (``benchbed.embeddings.store``). Methods only see the ``EmbeddingSource`` protocol.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from benchbed.api import RunContext, TaskSetup
from benchbed.data.schema import Split
from benchbed.embeddings import store
from benchbed.embeddings.store import EXPORTABLE, FEEDBACK_TASK, Embeddings
from benchbed.errors import ConfigError
from benchbed.methods import build_method


class RegistryEmbeddings:
    """Finds cached ID embeddings or trains the registered baseline for them, in the run's context."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def get(
        self, split: Split, model: str, *, params: dict[str, Any] | None, seed: int, feedback: str
    ) -> Embeddings:
        if model not in EXPORTABLE and not model.startswith("recbole:"):
            raise ConfigError(
                f"no embedding export for method {model!r}; exportable: {', '.join(EXPORTABLE)}"
            )
        # the ID model as the feedback's task trains it (ctr: CoLLM's pointwise settings, the same model the
        # --cf companion run trains), so the cache key and the companion's record agree
        method = build_method(model, dict(params or {}), task=FEEDBACK_TASK[feedback])
        found = store.find(split, model, method.params, feedback, seed)
        if found is not None:
            return found
        setup = TaskSetup(task=FEEDBACK_TASK[feedback], feedback=feedback)
        ctx = replace(self.ctx, setup=setup, seed=seed, embeddings=self)
        start = time.perf_counter()
        method.fit(split, ctx)
        emb = store.store(split, model, method, feedback, seed, time.perf_counter() - start)
        emb.cache_hit = False
        return emb


def get_embeddings(
    split: Split,
    model: str,
    *,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    feedback: str | None = None,
    ctx: RunContext | None = None,
) -> Embeddings:
    """Embeddings of ``model`` on ``split`` (cached); ``feedback`` defaults to labels on labeled splits."""
    fb = feedback or (ctx.feedback if ctx is not None else ("labels" if split.labeled else "interactions"))
    return RegistryEmbeddings(ctx or RunContext(seed=seed)).get(
        split, model, params=params, seed=seed, feedback=fb
    )


def keep_fitted_embeddings(
    split: Split, model: str, method: Any, ctx: RunContext, fit_seconds: float
) -> bool:
    """Store the embeddings of a baseline that ``benchbed run`` has just fitted, under the key the source
    would use, so an LLM method asking next (collm after its ``mf`` companion) reuses this model instead of
    training the same one again. Returns True if it stored them."""
    if model not in EXPORTABLE or store.find(split, model, method.params, ctx.feedback, ctx.seed) is not None:
        return False
    arrays = method.embeddings()  # computed once (sequence models encode every user's history here)
    if arrays is None:
        return False
    store.store(split, model, method, ctx.feedback, ctx.seed, fit_seconds, arrays)
    return True
