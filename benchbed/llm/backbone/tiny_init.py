"""benchbed's own seeded initialisation of the random ``tiny`` backbones, and their revision.

A model built from a config is initialised by the library's ``_init_weights``, which changes between
transformers releases (5.x moved it and its RNG use): the same seed then gives other weights and every
committed ``tiny`` record stops reproducing. Here each parameter is drawn from its own numpy ``PCG64`` stream,
seeded by (seed, parameter name), so the weights depend on neither the library's init code nor the order in
which modules are built; the revision is a hash of those weights, so a change can never pass unnoticed.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Any

import numpy as np
import torch

INIT_STD = 0.02  # the initializer_range of Llama/GPT-2 configs


def _stream(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def _is_norm(name: str) -> bool:
    lowered = name.lower()
    return any(tag in lowered for tag in ("norm", "ln_", "layernorm"))


@torch.no_grad()
def init_tiny_weights(model: Any, seed: int) -> None:
    """Overwrite every parameter: N(0, 0.02) matrices and embeddings, ones for norm scales, zeros for biases.

    Tied parameters (Llama/GPT-2 tie the LM head to the input embeddings) are visited once, by their first
    name, as ``named_parameters`` lists them."""
    for name, param in model.named_parameters():
        if name.endswith("bias"):
            values = np.zeros(param.shape, dtype=np.float32)
        elif _is_norm(name) and param.dim() == 1:
            values = np.ones(param.shape, dtype=np.float32)
        else:
            values = (_stream(seed, name).standard_normal(param.shape) * INIT_STD).astype(np.float32)
        param.copy_(torch.from_numpy(values).to(param.dtype))


def weights_digest(model: Any) -> str:
    """sha256 (12 hex) of the parameters by name: the ``tiny`` backbones' revision."""
    h = hashlib.sha256()
    for name, param in model.named_parameters():
        h.update(name.encode())
        h.update(param.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:12]
