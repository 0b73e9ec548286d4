"""What the plan's estimates are checked against: FLOPs counted by ``FlopCounterMode`` and the peak of
live tensor bytes, on any device (CPU has no ``max_memory_allocated``).

:class:`LiveTensorPeak` watches every tensor an operator returns (a ``TorchDispatchMode``) and keeps the
running sum of the bytes of their storages that are still alive, so its peak is what an allocator would
have to hold at once: activations saved for backward, gradients, optimizer states. Tensors that existed
before it started (the weights) are added by the caller.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LiveTensorPeak(TorchDispatchMode):
    """Peak bytes of tensors created inside the mode and alive at the same time."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.current = 0
        self.peak = 0
        self._ops = 0

    def _purge(self) -> None:
        dead = [k for k, (ref, _) in self.live.items() if ref.expired()]
        for k in dead:
            self.current -= self.live.pop(k)[1]

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        self._purge()
        inputs, _ = tree_flatten((args, kwargs))
        # a view or in-place result shares an input's storage: nothing new was allocated
        aliased = {t.untyped_storage()._cdata for t in inputs if isinstance(t, torch.Tensor)}
        flat, _ = tree_flatten(out)
        for t in flat:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                storage = t.untyped_storage()
                key = storage._cdata
                if key not in self.live and key not in aliased:
                    nbytes = storage.nbytes()
                    self.live[key] = (StorageWeakRef(storage), nbytes)
                    self.current += nbytes
        self.peak = max(self.peak, self.current)
        return out


def parameter_bytes(*modules: torch.nn.Module) -> int:
    seen: set[int] = set()
    total = 0
    for m in modules:
        for t in [*m.parameters(), *m.buffers()]:
            key = t.untyped_storage()._cdata
            if key not in seen:
                seen.add(key)
                total += t.untyped_storage().nbytes()
    return total
