"""`benchbed tune`: a grid on the validation set, the best trial recorded as JSON under results/tune/."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from benchbed.cli.app import app
from benchbed.errors import ConfigError
from benchbed.orchestration.tune import parse_grid
from benchbed.settings import get_settings

runner = CliRunner()


def test_parse_grid() -> None:
    assert parse_grid(["lr=1e-2,1e-3", "dim=64,256"]) == {"lr": [0.01, 0.001], "dim": [64, 256]}
    assert parse_grid(["hidden=[64,64],[128]"]) == {"hidden": [[64, 64], [128]]}
    for bad in (["lr"], ["lr="], ["lr=1", "lr=2"], []):
        with pytest.raises(ConfigError):
            parse_grid(bad)


@pytest.mark.slow
def test_tune_cli_records_best_of_grid() -> None:
    args = [
        "tune",
        "--method",
        "mf",
        "--dataset",
        "ml-100k",
        "--task",
        "ctr",
        "--grid",
        "lr=1e-2,1e-4",
        "dim=8",
    ]
    result = runner.invoke(app, [*args, "--param", "epochs=1"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    files = list((get_settings().results_dir / "tune").glob("mf-ml-100k-ctr-*.json"))
    assert len(files) == 1
    record = json.loads(files[0].read_text())
    assert (
        record["metric"] == "auc"
        and record["stage"] == "valid"
        and record["split_protocol"] == "temporal-window"
    )
    assert [t["params"] for t in record["trials"]] == [{"lr": 0.01, "dim": 8}, {"lr": 0.0001, "dim": 8}]
    best = max(record["trials"], key=lambda t: t["value"])
    assert record["best"]["params"] == best["params"] and record["best"]["method_params"]["epochs"] == 1
    assert all(t["epochs_run"] == 1 and t["resolved_params"]["epochs"] == 1 for t in record["trials"])
    assert "best:" in result.output and "--param lr=" in result.output

    bad = runner.invoke(app, ["tune", "--method", "mf", "--grid", "lr=1e-2", "--param", "lr=1e-3"])
    assert bad.exit_code != 0 and isinstance(bad.exception, ConfigError)
