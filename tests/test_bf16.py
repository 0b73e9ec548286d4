"""Every LLM method end to end with ``--dtype bfloat16`` on CPU (the tiny Llama-architecture backbone), as the
CUDA path runs them (bf16 weights): finite losses and metrics, and a record that says bf16. dtype bugs must
surface here, before a GPU run. The runs are ``benchmarks/gpu_check.py``'s (benchmarks/ci.yaml's smallest,
cut further). Here ``tallrec`` alone, with the record's own checks; every other method runs in bf16 once, in
``tests/test_gpu_check.py::test_gpu_check_cpu_tiny_every_method`` (the same runs, through the script), so
the suite does not train each of them twice.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import pytest

from benchbed.config import RunConfig
from benchbed.orchestration.runner import execute

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def _runs() -> list[dict[str, Any]]:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.RUNS)


FAST = {"tallrec"}
RUNS = _runs()


@pytest.mark.parametrize("run", [pytest.param(r, id=r["method"]) for r in RUNS if r["method"] in FAST])
def test_method_runs_in_bf16_on_cpu(run: dict[str, Any]) -> None:
    cfg = RunConfig.from_dict({**run, "device": "cpu", "dtype": "bfloat16", "save_predictions": False})
    record = execute(cfg, force=True).record
    assert record.status == "ok", record.error
    assert (record.backbone or {}).get("dtype") == "bfloat16"
    assert record.counts["all"]["rows"] > 0
    for subset, values in record.metrics.items():
        if (record.counts.get(subset) or {}).get(
            "rows", 1
        ):  # an empty subset (no warm rows) is NaN by design
            assert values and all(v is not None and math.isfinite(v) for v in values.values()), subset
    # the validation metric after every training epoch (a NaN loss would poison it)
    for stage in (record.info.get("method") or {}).get("stages", {}).values():
        for entry in ((stage.get("train") or {}) if isinstance(stage, dict) else {}).get("history", []):
            assert entry.get("metric") is None or math.isfinite(entry["metric"])
    if run["method"] == "tallrec":  # the plan's count: LoRA r=8 on q_proj, v_proj of the tiny backbone
        assert record.cost["trainable_params"] == 4096
