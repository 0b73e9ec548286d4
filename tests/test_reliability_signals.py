"""Signals that end a sweep or a run (issue 25, item 1): SIGTERM (Slurm, CI, ``timeout``) and SIGHUP end
them as SIGINT does: every worker ends, the cells in flight leave a failure record that names the signal,
the exit status is 128 + the signal number, and a re-run finishes the suite with the records an
uninterrupted sweep writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from benchbed.cli.app import app
from benchbed.orchestration.suite import load_suite
from benchbed.orchestration.sweep import cells_of

# pop first (a second), then mf (seconds: RecBole set-up and an epoch; in flight when the signal comes)
RUNS = [
    {"method": "pop", "task": "ctr"},
    {"method": "mf", "task": "ctr", "method_params": {"epochs": 1}},
    {"method": "random", "task": "ctr"},
]


def _suite(path: Path) -> Path:
    body = {"name": "sig", "defaults": {"dataset": "ml-100k", "seed": 0, "device": "cpu"}, "runs": RUNS}
    path.write_text(yaml.safe_dump(body))
    return path


def _ok_records(root: Path) -> dict[str, dict]:
    """Record file name -> what must not depend on the run having been interrupted."""
    out = {}
    for p in sorted(root.rglob("*.json")):
        if p.name.endswith(".failed.json") or p.parent.name == "sweeps":
            continue
        rec = json.loads(p.read_text())
        if rec.get("status") == "ok":
            out[p.name] = {k: rec[k] for k in ("config_hash", "method", "metrics", "counts")}
    return out


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _benchbed(*args: str, results: Path) -> list[str]:
    return [sys.executable, "-m", "benchbed", "--results-dir", str(results), *args]


@pytest.mark.slow
def test_sigterm_ends_a_two_worker_sweep_and_a_rerun_completes_it(tmp_path: Path) -> None:
    suite = _suite(tmp_path / "sig.yaml")
    runner = CliRunner()
    reference = tmp_path / "reference"  # also builds the ml-100k split in the shared cache
    res = runner.invoke(app, ["--results-dir", str(reference), "sweep", str(suite)])
    assert res.exit_code == 0, res.output
    expected = _ok_records(reference)
    assert len(expected) == len(RUNS)

    # mf is in flight once its work dir exists (made just before it trains; removed when it ends)
    mf_key = next(c.key for c in cells_of(load_suite(suite)) if c.config["method"] == "mf")
    mf_work = Path(os.environ["BENCHBED_CACHE"]) / "work" / mf_key
    assert not mf_work.exists()

    results = tmp_path / "results"
    proc = subprocess.Popen(
        _benchbed("sweep", str(suite), "--workers", "2", "--cpus", "1", results=results),
        start_new_session=True,  # its own process group: what is left of it can be counted
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while (
        proc.poll() is None
        and time.monotonic() < deadline
        and not (_ok_records(results) and mf_work.exists())
    ):
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()  # the sweep is still running: mf is in flight
    os.kill(proc.pid, signal.SIGTERM)  # the sweep only, as Slurm and `timeout` send it
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "interrupted by SIGTERM" in err and "Traceback" not in err, err

    deadline = time.monotonic() + 30  # the workers and multiprocessing's resource tracker
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _group_alive(proc.pid), "a process of the sweep's group outlived it"

    # the cell in flight left a failure record naming the signal; nothing was written after the exit
    failures = [json.loads(p.read_text()) for p in results.rglob("*.json")]
    interrupted = [r for r in failures if r.get("status") == "failed"]
    assert interrupted and all(r["error"] == "interrupted by SIGTERM" for r in interrupted), interrupted
    assert "mf" in {r["method"] for r in interrupted}
    snapshot = sorted(p.name for p in results.rglob("*"))
    time.sleep(1)
    assert sorted(p.name for p in results.rglob("*")) == snapshot

    res = runner.invoke(app, ["--results-dir", str(results), "sweep", str(suite)])
    assert res.exit_code == 0, res.output
    assert _ok_records(results) == expected


def test_sigterm_ends_a_run_with_a_failure_record_and_exit_143(tmp_path: Path) -> None:
    """A single run: the record says which signal ended it; ``rescore`` then says the run was interrupted."""
    results = tmp_path / "results"
    args = ("run", "--method", "mf", "--task", "ctr", "-p", "epochs=50", "--device", "cpu")
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        proc = subprocess.Popen(_benchbed(*args, results=results), stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 120
        # the run has started once it announced its split (printed before the method trains)
        while proc.poll() is None and time.monotonic() < deadline and "seed 0" not in log.read_text():
            time.sleep(0.1)
        time.sleep(1.0)
        assert proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    err = log.read_text()
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "error: interrupted by SIGTERM", err
    [record] = [json.loads(p.read_text()) for p in results.rglob("*.json")]
    assert record["status"] == "failed" and record["error"] == "interrupted by SIGTERM"
