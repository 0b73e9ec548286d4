"""``benchmarks/gpu_check.py --device cpu --tiny``: the GPU check's own code, run on CPU so it cannot rot."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_report(report: dict, methods: list[str]) -> None:
    gc = _gpu_check()
    assert set(gc.FIELDS) <= set(report)
    assert [m["method"] for m in report["methods"]] == methods
    assert all(m["ok"] and m["dtype"] == "bfloat16" for m in report["methods"]), report["methods"]
    grads = report["gradients"]
    assert grads["lora_grads_finite"] and grads["injected_grads_finite"] and grads["frozen_without_grad"]
    assert grads["lora_tensors"] == 8  # q_proj, v_proj x A, B x 2 blocks
    for mode in ("rows", "prefix"):
        assert report["scoring"][mode]["finite"] and report["scoring"][mode]["rows_per_s"] > 0
    assert report["scoring"]["prefix_speedup"] > 0
    train = report["training"]
    assert train["losses_finite"] and train["tokens_per_s"] > 0 and train["flops_per_step"] > 0
    assert train["mfu"] is None and report["peak_tflops"] is None  # CPU: no published peak to divide by
    assert math.isfinite(train["memory_error"]) and train["peak_memory_bytes"] > 0


def test_gpu_check_cpu_tiny_writes_every_field(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    assert _gpu_check().main(["--device", "cpu", "--tiny", "--out", str(out), "--methods"]) == 0
    _check_report(json.loads(out.read_text()), [])


@pytest.mark.slow
def test_gpu_check_cpu_tiny_every_method(tmp_path: Path) -> None:
    gc = _gpu_check()
    out = tmp_path / "gpu_check.json"
    assert gc.main(["--device", "cpu", "--tiny", "--out", str(out)]) == 0
    _check_report(json.loads(out.read_text()), [r["method"] for r in gc.RUNS])


def test_gpu_check_refuses_missing_cuda(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert _gpu_check().main(["--out", str(tmp_path / "x.json")]) == 2
    assert "no CUDA device" in capsys.readouterr().err
