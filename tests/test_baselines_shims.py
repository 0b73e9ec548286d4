"""The RecBole compatibility shims: each one fixes its breakage and touches nothing outside RecBole."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from benchbed.compat import recbole_shims


class _NotATensor:
    """Stands for the Config object RecBole pickles into its checkpoints."""

    value = 3


def test_numpy_aliases_let_recbole_config_build(tmp_path: Path) -> None:
    recbole_shims.apply()
    assert np.float_ is np.float64 and np.complex_ is np.complex128 and np.unicode_ is np.str_
    from recbole.config import Config

    from benchbed.baselines.recbole_containment import recbole_scope

    with recbole_scope(tmp_path):
        config = Config(
            model="BPR", dataset="ml-100k", config_dict={"gpu_id": "", "checkpoint_dir": str(tmp_path)}
        )
    assert config["embedding_size"] == 64


def test_torch_load_shim_is_scoped_to_recbole_trainer(tmp_path: Path) -> None:
    recbole_shims.apply()
    import recbole.trainer.trainer as trainer_module

    path = tmp_path / "ckpt.pth"
    torch.save({"config": _NotATensor(), "state_dict": {"w": torch.ones(2)}}, path)
    loaded = trainer_module.torch.load(path, map_location="cpu")  # what RecBole's evaluate() calls
    assert loaded["config"].value == 3
    with pytest.raises(pickle.UnpicklingError):  # torch.load everywhere else keeps its safe default
        torch.load(path, map_location="cpu")
    assert trainer_module.torch.nn is torch.nn  # everything else is torch itself


def test_dok_update_for_lightgcn() -> None:
    recbole_shims.apply()
    matrix = sp.dok_matrix((3, 3), dtype=np.float32)
    matrix._update({(0, 1): 1.0, (2, 0): 1.0})
    assert matrix.nnz == 2 and matrix[0, 1] == 1.0 and matrix.toarray().sum() == 2.0


def test_quick_start_is_never_imported() -> None:
    """recbole.quick_start imports an old ray that breaks on numpy 2; nothing of ours may pull it in. Checked
    in a fresh interpreter: in the test process another test (the Ray executor's) may have imported ray."""
    code = (
        "import sys, benchbed.baselines.recbole_models, benchbed.embeddings.store\n"
        "from benchbed.compat import recbole_shims\n"
        "recbole_shims.apply()\n"
        "print(sorted(m for m in ('recbole.quick_start', 'ray') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]", out
