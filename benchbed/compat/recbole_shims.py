"""The three shims RecBole 1.2.1 needs on numpy 2, torch >= 2.6 and scipy >= 1.14 — nothing else.

Call :func:`apply` before importing anything from ``recbole``. It is idempotent. Each shim is as narrow
as we could make it: the numpy aliases are restored only where numpy 2 removed them, the ``torch.load``
default is changed only inside RecBole's trainer module, and ``dok_matrix._update`` is added only when
scipy lacks it. Never import ``recbole.quick_start``: it imports an old ``ray`` that fails on numpy 2.
"""

from __future__ import annotations

import types
from typing import Any

_applied = False


def _numpy_aliases() -> None:
    """numpy 2 removed ``np.float_``, ``np.complex_`` and ``np.unicode_``.

    Without this, ``recbole.config.Config.__init__`` dies at once: its ``compatibility_settings`` reads
    those names to re-create ``np.float``/``np.complex``/``np.unicode`` (which RecBole's metrics and layers
    still use) and raises ``AttributeError: np.float_ was removed in the NumPy 2.0 release``.
    """
    import numpy as np

    for old, new in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
        if old not in np.__dict__:
            setattr(np, old, new)


class _TorchFullLoad(types.ModuleType):
    """``torch`` as RecBole's trainer sees it: everything delegated, but ``load`` unpickles fully."""

    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name: str) -> Any:
        import torch

        return getattr(torch, name)

    @staticmethod
    def load(*args: Any, **kwargs: Any) -> Any:
        import torch

        kwargs.setdefault("weights_only", False)
        return torch.load(*args, **kwargs)


def _trainer_torch_load() -> None:
    """torch >= 2.6 defaults ``torch.load(weights_only=True)``.

    Without this, ``Trainer.evaluate(load_best_model=True)`` and ``Trainer.resume_checkpoint`` fail with
    ``UnpicklingError: Weights only load failed``: RecBole's checkpoints pickle its ``Config`` object and
    numpy RNG states. The checkpoints are the ones RecBole itself just wrote, so a full unpickle is safe.
    Scoped to ``recbole.trainer.trainer``'s own ``torch`` name; ``torch.load`` elsewhere is untouched.
    """
    import recbole.trainer.trainer as trainer_module

    if not isinstance(trainer_module.torch, _TorchFullLoad):
        trainer_module.torch = _TorchFullLoad()  # type: ignore[assignment]


def _dok_update(self: Any, data: Any) -> None:
    self._dict.update(data)


def _scipy_dok_update() -> None:
    """scipy >= 1.14 dropped the private ``dok_matrix._update``.

    Without this, building LightGCN (also NGCF, GCMC, SpectralCF, NCL, KGIN, MCCLK) fails with
    ``AttributeError: 'dok_matrix' object has no attribute '_update'`` in ``get_norm_adj_mat``. The
    replacement updates the matrix's ``_dict`` store, which is what the old method did.
    """
    import scipy.sparse as sp

    if not hasattr(sp.dok_matrix, "_update"):
        sp.dok_matrix._update = _dok_update  # type: ignore[attr-defined]


def apply() -> None:
    """Apply all shims (idempotent). Imports ``recbole.trainer.trainer`` but not ``recbole.quick_start``."""
    global _applied
    if _applied:
        return
    _numpy_aliases()
    _scipy_dok_update()
    _trainer_torch_load()
    _applied = True
