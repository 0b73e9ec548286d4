"""What a run needs to know of the machine: device and dtype, seeds, peak memory, the code's commit."""

from __future__ import annotations

import random
import re
import resource
import sys

import numpy as np

from benchbed.params import ParamError
from benchbed.results.environment import git_output


def git_sha() -> str | None:
    """The checkout's commit, or None when benchbed is not running from a git checkout."""
    out = git_output("rev-parse", "HEAD")
    sha = (out or "").strip()
    return sha or None


def resolve_device(device: str | None, dtype: str | None) -> tuple[str, str]:
    """CUDA + bfloat16 when present, else CPU + float32; explicit choices win."""
    if device is None or dtype is None:
        try:
            import torch

            cuda = bool(torch.cuda.is_available())
        except ImportError:  # pragma: no cover - torch is a dependency
            cuda = False
        device = device or ("cuda" if cuda else "cpu")
        dtype = dtype or ("bfloat16" if device.startswith("cuda") else "float32")
    return device, dtype


DTYPES = ("float32", "bfloat16", "float16")
DEVICE_PATTERN = re.compile(r"cpu|mps|cuda(:\d+)?")


def check_device_dtype(device: str | None, dtype: str | None) -> None:
    """``--device``/``--dtype`` checked before any work: a typo or an absent GPU is a usage error."""
    if device is not None and not DEVICE_PATTERN.fullmatch(device):
        raise ParamError(f"--device {device!r} is invalid; expected cpu, cuda, cuda:N or mps")
    if dtype is not None and dtype not in DTYPES:
        raise ParamError(f"--dtype {dtype!r} is invalid; expected one of {', '.join(DTYPES)}")
    if device is not None and device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ParamError(f"--device {device}: torch sees no CUDA GPU on this machine; use --device cpu")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ParamError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover
        pass


def cuda_present(device: str) -> bool:
    """A CUDA device that exists (``--device cuda`` on a CPU-only build fails in the method, not here)."""
    if not device.startswith("cuda"):
        return False
    import torch

    return bool(torch.cuda.is_available())


def peak_memory_mb(device: str) -> float:
    """Peak resident memory of this process (``ru_maxrss``, a lifetime peak) or, on CUDA, the larger of it
    and the peak allocated CUDA memory since the run started."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    mb = rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024
    if cuda_present(device):
        import torch

        mb = max(mb, torch.cuda.max_memory_allocated() / 2**20)
    return round(mb, 1)
