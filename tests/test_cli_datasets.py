"""`benchbed datasets list | prepare | info` via CliRunner, and the exit code of a missing dataset."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchbed.cli.app import app, main
from benchbed.errors import ConfigError

runner = CliRunner()


def test_list_shows_catalog_and_presence(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from benchbed.cli import datasets

    # the module's console fixes its width when it is made, at import, from COLUMNS if set then (a
    # pytest-xdist worker has COLUMNS=80 in its environment): a wide console of this test's own
    monkeypatch.setattr(datasets, "console", Console(width=200))
    result = runner.invoke(app, ["datasets", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("ml-100k", "ml-1m", "amazon-book", "amazon-beauty", "amazon-clothing"):
        assert name in result.output
    row = next(line for line in result.output.splitlines() if "ml-100k" in line)
    assert "recbole-atomic" in row and "temporal-window" in row and "yes" in row
    row = next(line for line in result.output.splitlines() if "ml-1m" in line)
    assert "movielens-raw" in row and "no" in row


def test_prepare_prints_stats_then_hits_cache() -> None:
    args = ["datasets", "prepare", "ml-100k", "--split", "leave-one-out"]
    first = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert first.exit_code == 0, first.output
    assert "98,114 / 943 / 943" in first.output and "943 / 1,682" in first.output
    second = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert second.exit_code == 0 and "hit" in second.output
    params = runner.invoke(
        app, [*args, "--param", "warm_threshold=1", "-p", "history_len=5"], env={"COLUMNS": "200"}
    )
    assert params.exit_code == 0, params.output
    assert "threshold 1" in params.output and "history_len=5" in params.output


def test_prepare_bad_param_is_a_config_error() -> None:
    result = runner.invoke(app, ["datasets", "prepare", "ml-100k", "--param", "warm_threshold"])
    assert isinstance(result.exception, ConfigError) and "KEY=VALUE" in str(result.exception)


def test_info_names_files_and_protocol_params() -> None:
    result = runner.invoke(app, ["datasets", "info", "ml-1m"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "ratings.dat" in result.output and "missing" in result.output
    assert "month_origin=2000-04" in result.output and "label_rule=rating>=4" in result.output


def test_missing_dataset_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BENCHBED_OFFLINE", "1")
    raw, cache = tmp_path / "raw", tmp_path / "cache"
    argv = ["benchbed", "--data-dir", str(raw), "--cache-dir", str(cache), "datasets", "prepare", "ml-1m"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "ratings.dat" in err and str(raw / "ml-1m") in err
    assert not raw.exists() and not cache.exists()
