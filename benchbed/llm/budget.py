"""Training budgets in data terms (epochs, training rows/examples, validation rows), one scheme for every
LLM method.

A wall-clock cap makes a result depend on how busy the machine was, so ``max_seconds`` is off by default
everywhere (0 / None); a user may set one, and when it fires the stage's ``TrainResult.stopped`` is
``"time-budget"``, the method's ``record_info`` says ``time_capped: true`` and the runner copies that to the
record, so the leaderboard marks the row.

``auto`` values resolve from the device profile: on CPU a small budget that lets ``benchbed run --method
collm`` finish in minutes on 2 cores (a seeded subsample of training rows, a couple of epochs); on a GPU the
full protocol data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# CoLLM-style CTR methods. CPU: sized for ml-100k + the tiny backbone on 2 cores.
CPU_BUDGET: dict[str, Any] = {"epochs": 2, "max_train_rows": 4000, "max_valid_rows": 1000, "max_seconds": 0}
GPU_BUDGET: dict[str, Any] = {"epochs": 2, "max_train_rows": 0, "max_valid_rows": 0, "max_seconds": 0}
# A pretrained encoder (MiniLM, 22M parameters) on 2 CPU cores: forward+backward of 32 rows x ~100 tokens
# takes ~2-3 s, so one pass over ml-100k's 80k training rows would take hours. Learning curve on ml-100k
# (issue 26, seed 0, history_len 5, valid AUC every 512 rows; benchmarks/minilm_ctr_curve.py): CoLLM's
# step 2 peaks at 1,024 rows (0.600, 0.635, 0.621, 0.613) while the text-only LoRA stage stays at chance
# through 2,048 (0.505 -> 0.475); a stage took 11-14 min and scoring 10,000 test rows 17-19 min on the
# shared cores (load 10-20): one seed of tallrec + collm + the permuted control took ~75 min at 2,048 rows.
CPU_ENCODER_BUDGET: dict[str, Any] = {
    "epochs": 1,
    "max_train_rows": 2048,
    "max_valid_rows": 512,
    "max_seconds": 0,
}
BUDGET_KEYS = tuple(CPU_BUDGET)


def resolve(
    params: Mapping[str, Any], overrides: Mapping[str, Any], on_cpu: bool, *, encoder: bool = False
) -> dict[str, Any]:
    """``auto`` budget values from the device profile; ``overrides`` (``RunContext.budget``) win over the
    profile, explicit parameters over both. ``encoder``: a pretrained encoder backbone on CPU gets its own
    profile (``cpu-encoder``), sized from a measured learning curve."""
    if on_cpu and encoder:
        profile, name = CPU_ENCODER_BUDGET, "cpu-encoder"
    else:
        profile, name = (CPU_BUDGET, "cpu") if on_cpu else (GPU_BUDGET, "gpu")
    out: dict[str, Any] = {"profile": name}
    for key in BUDGET_KEYS:
        value = params.get(key, "auto")
        out[key] = overrides.get(key, profile[key]) if value == "auto" else value
    return out


def seconds_cap(value: Any) -> float | None:
    """A budget's ``max_seconds`` as the training loop takes it: None (off) for 0/None."""
    return float(value) if value else None


def time_capped(stage_results: Iterable[Mapping[str, Any]]) -> bool:
    """True when any stage's training stopped on the wall-clock cap."""
    return any(r.get("stopped") == "time-budget" for r in stage_results)
