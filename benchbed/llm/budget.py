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
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BudgetProfiles:
    """A method's budgets, declared beside its defaults: profile name -> values in data terms.

    Profiles a method may declare: ``cpu`` (sized for the tiny backbone on 2 cores), ``gpu`` (the protocol's
    data, usually the paper's schedule), ``cpu-encoder`` (a pretrained encoder on CPU). ``labels`` names a
    profile in the record and the run's banner when the name alone would not say what it is (cllm4rec's
    ``gpu`` is the paper schedule). ``as_int``: values are cast to int (epoch counts); ``flag_auto``: each
    key also gets ``<key>_auto`` (whether it came from the profile), for methods whose auto value is a cap
    rather than a size."""

    profiles: Mapping[str, Mapping[str, Any]]
    labels: Mapping[str, str] = field(default_factory=dict)
    as_int: bool = False
    flag_auto: bool = False

    @property
    def keys(self) -> tuple[str, ...]:
        first = next(iter(self.profiles.values()))
        return tuple(first)

    def resolve(
        self, params: Mapping[str, Any], overrides: Mapping[str, Any], profile: str
    ) -> dict[str, Any]:
        """``auto`` values from ``profile``; ``overrides`` (``RunContext.budget``) win over the profile,
        explicit parameters over both."""
        values = self.profiles[profile]
        out: dict[str, Any] = {"profile": self.labels.get(profile, profile)}
        for key in self.keys:
            value = params.get(key, "auto")
            chosen = overrides.get(key, values[key]) if value == "auto" else value
            out[key] = int(chosen) if self.as_int else chosen
            if self.flag_auto:
                out[f"{key}_auto"] = value == "auto"
        return out


def device_profile(on_cpu: bool, *, encoder: bool = False) -> str:
    """The profile a run gets from where it runs: ``cpu-encoder`` for a pretrained encoder on CPU."""
    if on_cpu:
        return "cpu-encoder" if encoder else "cpu"
    return "gpu"


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
CTR_BUDGETS = BudgetProfiles({"cpu": CPU_BUDGET, "gpu": GPU_BUDGET, "cpu-encoder": CPU_ENCODER_BUDGET})
BUDGET_KEYS = CTR_BUDGETS.keys


def resolve(
    params: Mapping[str, Any], overrides: Mapping[str, Any], on_cpu: bool, *, encoder: bool = False
) -> dict[str, Any]:
    """The CTR recipe's budget (:data:`CTR_BUDGETS`) for where the run is: a pretrained encoder backbone on
    CPU gets its own profile (``cpu-encoder``), sized from a measured learning curve."""
    return CTR_BUDGETS.resolve(params, overrides, device_profile(on_cpu, encoder=encoder))


def seconds_cap(value: Any) -> float | None:
    """A budget's ``max_seconds`` as the training loop takes it: None (off) for 0/None."""
    return float(value) if value else None


def time_capped(stage_results: Iterable[Mapping[str, Any]]) -> bool:
    """True when any stage's training stopped on the wall-clock cap."""
    return any(r.get("stopped") == "time-budget" for r in stage_results)
