"""One run of a configuration at a time (issue 25, item 2): a file lock per record id and per stage
identity. A second identical run waits for the holder (and then does its own work only if the holder left
no record); with ``--no-wait`` it exits at once naming the holder. The holder here is another process
(POSIX locks do not conflict within one process), killed at the end: the kernel drops its lock."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchbed import locks
from benchbed.cli.run import build_config
from benchbed.llm.stages import run_or_load, stage
from benchbed.orchestration.runner import lock_path
from benchbed.results.store import record_path

ARGS = ("run", "--method", "pop", "--task", "ctr", "--device", "cpu")

HOLDER = """
import sys
from pathlib import Path
from benchbed.locks import hold
with hold(Path(sys.argv[1]), "test"):
    print("held", flush=True)
    sys.stdin.readline()
"""


def _hold(lock_file: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _release(proc: subprocess.Popen[str]) -> None:
    proc.kill()  # not a clean exit: the kernel releases the lock of a dead process
    proc.wait(10)


def _pop_lock(results: Path) -> Path:
    config = build_config(None, {"method": "pop", "task": "ctr", "device": "cpu"}, {}, {}, {})
    return lock_path(record_path(results, config))


def test_no_wait_names_the_holder_and_writes_nothing(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(locks.NO_WAIT_ENV, "")  # --no-wait sets it in this process: undone after the test
    holder = _hold(_pop_lock(cli.results))
    try:
        code, _, err = cli(*ARGS, "--no-wait")
    finally:
        _release(holder)
    assert code == 3, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: pop on ml-100k") and f"pid {holder.pid} on " in last, err
    assert "--no-wait" in last and "Traceback" not in err
    assert not list(cli.results.rglob("*.json"))  # no record, no failure record: it did not run

    code, _, err = cli(*ARGS, "--no-wait")  # the holder died: its lock went with it
    assert code == 0, err


def test_a_second_run_waits_for_the_holder_then_runs(tmp_path: Path) -> None:
    results = tmp_path / "results"
    holder = _hold(_pop_lock(results))
    log = tmp_path / "stderr.txt"
    try:
        with log.open("w") as stderr:
            waiting = subprocess.Popen(
                [sys.executable, "-m", "benchbed", "--results-dir", str(results), *ARGS],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            deadline = time.monotonic() + 60
            while (
                "waiting for" not in log.read_text()
                and waiting.poll() is None
                and time.monotonic() < deadline
            ):
                time.sleep(0.1)
            assert f"waiting for pid {holder.pid}" in log.read_text(), log.read_text()
            time.sleep(0.5)
            assert waiting.poll() is None and not list(results.rglob("*.json"))  # it waits, runs nothing
            _release(holder)
            assert waiting.wait(60) == 0, log.read_text()
    finally:
        if holder.poll() is None:
            _release(holder)
    [record] = [json.loads(p.read_text()) for p in results.rglob("*.json")]
    assert record["status"] == "ok"


def test_a_stage_held_elsewhere_is_not_trained_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    st = stage(tmp_path, "s1", {"k": 1})
    holder = _hold(st.dir.parent / ".locks" / f"{st.dir.name}.lock")
    trained: list[Path] = []

    def train(path: Path) -> tuple[dict, dict]:
        trained.append(path)
        return {}, {}

    try:
        monkeypatch.setenv(locks.NO_WAIT_ENV, "1")
        with pytest.raises(locks.LockBusy, match=f"stage s1 .* is being run by pid {holder.pid}"):
            run_or_load(st, train, lambda blob: None)
    finally:
        _release(holder)
    assert not trained
    run_or_load(st, train, lambda blob: None)
    assert trained == [st.dir] and st.done
