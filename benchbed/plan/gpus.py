"""The GPUs a plan prices: memory and the published dense bf16 tensor-core peak (no sparsity).

Sources: NVIDIA A100 datasheet (SXM 80GB: 312 TFLOPS bf16 dense, 80 GB), H100 datasheet (SXM: 989 TFLOPS bf16
dense, the 1,979 figure is with sparsity; 80 GB), H200 datasheet (SXM: the H100's tensor cores, 989 TFLOPS
bf16 dense; 141 GB HBM3e).
"""

from __future__ import annotations

from dataclasses import dataclass

from benchbed.errors import ConfigError


@dataclass(frozen=True)
class GPU:
    name: str
    memory_gb: float  # decimal GB, as the datasheets state
    bf16_tflops: float  # dense peak

    @property
    def memory_bytes(self) -> float:
        return self.memory_gb * 1e9


GPUS: dict[str, GPU] = {
    "a100-80gb": GPU("A100 80GB", 80.0, 312.0),
    "h100": GPU("H100", 80.0, 989.0),
    "h200": GPU("H200", 141.0, 989.0),
}
ALIASES = {"a100": "a100-80gb", "a100-80g": "a100-80gb", "h100-80gb": "h100", "h200-141gb": "h200"}


def get_gpu(name: str) -> GPU:
    key = name.strip().lower().replace(" ", "-")
    key = ALIASES.get(key, key)
    if key not in GPUS:
        raise ConfigError(f"--gpu {name!r}: unknown GPU; expected one of {', '.join(GPUS)}")
    return GPUS[key]
