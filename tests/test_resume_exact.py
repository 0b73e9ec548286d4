"""End to end: a tallrec run interrupted in epoch 2 and resumed gives the record an uninterrupted run gives.

Issue 14 measured test AUC 0.525114 resumed against 0.525308 uninterrupted (LoRA weights apart by up to
0.0085), and the resumed stage was cached under the same key. This runs the real runner (``execute``) on
ml-100k with the tiny random backbone and a small data budget: its numbers test the pipeline, not TALLRec.
The interruption is a ``KeyboardInterrupt`` raised from the run's log callback when the training loop
reports epoch 2's second evaluation, i.e. after the mid-epoch checkpoint written at its first one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchbed.config import RunConfig
from benchbed.orchestration.runner import RunOutcome, execute
from benchbed.results.record import RunRecord, read_record
from benchbed.results.store import failed_path
from benchbed.settings import get_settings

PARAMS = {
    "backbone": "tiny",
    "epochs": 3,
    "evals_per_epoch": 2,  # a checkpoint after each evaluation: one in the middle of every epoch
    "max_train_rows": 96,  # 6 batches of 16 per epoch
    "max_valid_rows": 48,
    "max_seconds": 0,
    "history_len": 2,
    "batch_size": 16,
    "train_templates": 2,
}
CONFIG = RunConfig(method="tallrec", task="ctr", method_params=PARAMS, task_params={"max_rows": 200})


def stage_info(record: RunRecord) -> dict:
    return record.info["method"]["stages"]["stage1"]


def test_interrupted_and_resumed_tallrec_run_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    straight = execute(CONFIG, force=True, progress=False)
    assert straight.record.status == "ok" and not stage_info(straight.record)["train"]["resumed"]
    stage_dir = Path(stage_info(straight.record)["dir"])
    reference = tmp_path / "uninterrupted-stage"
    shutil.move(stage_dir, reference)  # the next run trains the same stage from scratch

    def interrupt(message: str) -> None:
        if message.startswith("epoch 2 eval 2"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute(CONFIG, force=True, progress=False, log=interrupt)
    assert (stage_dir / "train_state.pt").is_file() and not (stage_dir / "stage.pt").exists()
    assert failed_path(straight.path).is_file()  # the good record stays; the failure is beside it

    # resume as a user would: a new process (nothing carried over in memory), the same command with --force
    args = [f"--param={k}={v}" for k, v in PARAMS.items()] + ["--task-param=max_rows=200", "--force", "-q"]
    settings = get_settings()
    env = {
        **os.environ,
        "BENCHBED_CACHE": str(settings.cache_dir),
        "BENCHBED_RESULTS": str(settings.results_dir),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from benchbed.cli.app import main; main()",
            "run",
            "--method",
            "tallrec",
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = RunOutcome(read_record(straight.path), straight.path, skipped=False)
    train = stage_info(resumed.record)["train"]
    assert train["resumed"] and train["resumed_at"] == {"epoch": 1, "batch": 3, "steps": 9}, train
    assert train["steps"] == stage_info(straight.record)["train"]["steps"] == 18

    def evals(t: dict) -> list[dict]:  # every validation AUC along the way, without wall-clock seconds
        return [{k: v for k, v in h.items() if k != "seconds"} for h in t["history"]]

    assert evals(train) == evals(stage_info(straight.record)["train"]) and len(evals(train)) == 6
    # the trained LoRA weights equal to the bit, then every metric of every subset
    lora = torch.load(stage_dir / "stage.pt", map_location="cpu", weights_only=False)["lora"]
    ref = torch.load(reference / "stage.pt", map_location="cpu", weights_only=False)["lora"]
    assert lora.keys() == ref.keys() and all(torch.equal(lora[k], ref[k]) for k in ref)
    metrics = resumed.record.to_dict()["metrics"]  # as stored: an empty subset's NaN is null
    assert metrics == straight.record.to_dict()["metrics"] and metrics["all"]["auc"] is not None
    assert resumed.record.counts == straight.record.counts
    assert not failed_path(resumed.path).exists()
