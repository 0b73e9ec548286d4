"""``benchbed sweep``: a suite's grid as independent cells, one record each; an interrupted sweep re-run
finishes the rest without re-running the finished ones; a failing cell leaves a failed record and the exit
status counts it; the local (1 and 2 workers), submitit-local and Ray executors; errors before any cell."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from benchbed.cli.app import app
from benchbed.errors import ConfigError
from benchbed.orchestration.executors import NEEDS, require
from benchbed.orchestration.suite import load_suite
from benchbed.orchestration.sweep import SweepOptions, cell_status, cells_of, run_sweep
from benchbed.settings import set_settings

# pop / random: seconds per cell, deterministic
GRID = {"method": ["pop", "random"], "task": ["ctr", "topk"]}


@pytest.fixture
def results(tmp_path: Path, isolated_settings, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A results dir of this test alone (the session's one holds other tests' records)."""
    out = tmp_path / "results"
    monkeypatch.setenv("BENCHBED_RESULTS", str(out))
    set_settings(replace(isolated_settings, results_dir=out))
    return out


def _suite(path: Path, **body) -> Path:
    body.setdefault("defaults", {"dataset": "ml-100k", "seed": 0, "device": "cpu"})
    path.write_text(yaml.safe_dump({"name": path.stem, **body}))
    return path


def _records(results: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(results.rglob("*.json"))}


def _implicit_dir(root: Path) -> Path:
    """A pre-split dataset in RecBole's atomic format without labels: valid for top-K, refused by CTR."""
    root.mkdir()
    header = "user_id:token\titem_id:token\ttimestamp:float\n"
    rows = {"train": [], "valid": [], "test": []}
    for u in range(6):
        for i in range(5):
            rows["train"].append(f"u{u}\ti{(u + i) % 9}\t{100 * u + i}\n")
        rows["valid"].append(f"u{u}\ti{(u + 5) % 9}\t{100 * u + 50}\n")
        rows["test"].append(f"u{u}\ti{(u + 6) % 9}\t{100 * u + 60}\n")
    for part, lines in rows.items():
        (root / f"tiny.{part}.inter").write_text(header + "".join(lines))
    return root


def test_grid_expands_in_a_stable_order(tmp_path: Path) -> None:
    suite = load_suite(_suite(tmp_path / "g.yaml", grid=[GRID, {"method": "pop", "seed": [1, 2]}]))
    labels = [c.label for c in cells_of(suite)]
    assert labels == [
        "pop ml-100k ctr s0",
        "pop ml-100k topk s0",
        "random ml-100k ctr s0",
        "random ml-100k topk s0",
        "pop ml-100k ctr s1",
        "pop ml-100k ctr s2",
    ]
    assert len({c.key for c in cells_of(suite)}) == 6


def test_interrupted_sweep_rerun_finishes_the_rest_and_reruns_none(tmp_path: Path, results: Path) -> None:
    suite = load_suite(_suite(tmp_path / "s.yaml", grid=GRID))
    options = SweepOptions()
    seen: list[str] = []

    def stop_after_two(result) -> None:
        seen.append(result.status)
        if len(seen) == 2:
            raise KeyboardInterrupt  # Ctrl-C between cells

    with pytest.raises(KeyboardInterrupt):
        run_sweep(suite, options, on_result=stop_after_two)
    first = _records(results)
    assert len(first) == 2 and all(r["status"] == "ok" for r in first.values())
    states = [cell_status(c).status for c in cells_of(suite)]
    assert states == ["done", "done", "pending", "pending"]

    report = run_sweep(suite, options)
    assert [r.status for r in report.results] == ["skipped", "skipped", "done", "done"]
    assert report.exit_code == 0
    after = _records(results)
    assert len(after) == 4
    for name, record in first.items():  # the finished cells were not run again
        assert after[name]["run_id"] == record["run_id"]
    assert [cell_status(c).status for c in cells_of(suite)] == ["done"] * 4


def test_failing_cell_leaves_a_failed_record_and_counts_in_the_exit_status(
    tmp_path: Path, results: Path
) -> None:
    implicit = _implicit_dir(tmp_path / "tiny")
    runs = [
        {"method": "pop", "task": "ctr"},
        {"method": "pop", "task": "ctr", "dataset": str(implicit)},  # CTR needs labels: fails in the run
        {"method": "random", "task": "ctr"},
    ]
    path = _suite(tmp_path / "f.yaml", runs=runs)
    runner = CliRunner()
    res = runner.invoke(app, ["sweep", str(path)])
    assert res.exit_code == 1, res.output
    assert "3 cells: 2 ran, 0 already done, 1 failed" in res.output
    records = _records(results)
    failed = [r for r in records.values() if r["status"] == "failed"]
    assert len(records) == 3 and len(failed) == 1
    assert "needs 0/1 labels" in failed[0]["error"]
    status = runner.invoke(app, ["sweep", "--status", str(path)])
    assert status.exit_code == 0 and "2 done, 1 failed, 0 pending" in status.output


def test_bad_input_is_one_line_before_any_cell(tmp_path: Path, results: Path) -> None:
    runner = CliRunner()
    ok = _suite(tmp_path / "ok.yaml", grid=GRID)

    def error(args: list[str]) -> str:
        res = runner.invoke(app, ["sweep", *args])
        assert res.exit_code != 0
        return str(res.exception)

    unknown = _suite(tmp_path / "u.yaml", grid={"method": ["pop", "nosuchmethod"]})
    assert "nosuchmethod" in error([str(unknown)])
    bad_param = _suite(
        tmp_path / "p.yaml", runs=[{"method": "pop"}, {"method": "mf", "method_params": {"x": 1}}]
    )
    assert "cell 1 (mf ml-100k ctr x=1 s0)" in error([str(bad_param)])
    assert "--partition, --mem-gb: Slurm options, but the executor is 'local'" in error(
        [str(ok), "--mem-gb", "8", "--partition", "gpu"]
    )
    assert "--address is for --executor ray" in error([str(ok), "--address", "auto"])
    assert "--executor 'dask'" in error([str(ok), "--executor", "dask"])
    bad_grid = _suite(tmp_path / "b.yaml", grid={"methods": ["pop"]})
    assert "unknown grid key(s) ['methods']" in error([str(bad_grid)])
    assert not _records(results)  # no cell started


@pytest.mark.parametrize("executor", sorted(NEEDS))
def test_missing_executor_names_its_extra(executor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both packages are installed with the test extra, so the missing one is simulated: a ``None`` entry
    in ``sys.modules`` makes its import fail as an absent package's does."""
    module, extra = NEEDS[executor]
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigError) as info:
        require(module, extra, executor)
    message = str(info.value)
    assert f"needs {module} (not installed)" in message
    assert f"pip install 'benchbed[{extra}]'" in message and "\n" not in message


@pytest.mark.slow
def test_local_workers_and_submitit_local_executor(tmp_path: Path, results: Path) -> None:
    """Two worker processes, then submitit's LocalExecutor (the Slurm code path, as a job array) on
    another results dir: same cells, same metrics; a second invocation skips every cell."""
    pytest.importorskip("submitit")
    path = _suite(tmp_path / "w.yaml", grid={"method": ["pop", "random"], "task": "ctr"})
    runner = CliRunner()
    res = runner.invoke(app, ["sweep", str(path), "--workers", "2", "--cpus", "1"])
    assert res.exit_code == 0, res.output
    local = _records(results)
    slurm_dir = tmp_path / "slurm-results"
    args = ["--results-dir", str(slurm_dir), "sweep", str(path), "--executor", "slurm", "--cluster", "local"]
    res = runner.invoke(app, [*args, "--cpus", "1", "--time-min", "10"])
    assert res.exit_code == 0, res.output
    assert "2 cells: 2 ran" in res.output
    via_submitit = _records(slurm_dir)
    assert sorted(local) == sorted(via_submitit)
    for name, record in local.items():
        assert via_submitit[name]["metrics"] == record["metrics"]
    assert list((slurm_dir / "sweeps" / "submitit").glob("*_log.out"))  # submitit ran the jobs
    again = runner.invoke(app, [*args])
    assert again.exit_code == 0 and "0 ran, 2 already done" in again.output


@pytest.mark.slow
@pytest.mark.xdist_group("one-at-a-time")  # a local Ray instance: never beside a launch (tests/conftest.py)
def test_ray_executor_on_a_local_instance(tmp_path: Path, results: Path) -> None:
    try:
        require("ray", "ray", "ray")
    except ConfigError as exc:
        pytest.skip(f"Ray cannot be imported here: {exc}")
    path = _suite(tmp_path / "r.yaml", grid={"method": ["pop", "random"], "task": "ctr"})
    report = run_sweep(load_suite(path), SweepOptions(executor="ray", resources={"cpus": 1}))
    assert [r.status for r in report.results] == ["done", "done"]
    import ray

    assert not ray.is_initialized()  # the instance the sweep started is shut down
    assert len(_records(results)) == 2
