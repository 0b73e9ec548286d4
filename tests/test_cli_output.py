"""Clean output: help shows defaults, global options work after the sub-command, no library deprecation
warnings in a normal LLM run, and random-init rows are marked on the board."""

from __future__ import annotations

import warnings
from pathlib import Path

from benchbed.cli.argv import hoist_global_options


def test_run_help_shows_bracketed_defaults(cli) -> None:
    code, out, _ = cli("run", "--help")
    assert code == 0
    assert "[ml-100k]" in out and "[ctr]" in out and "[the dataset's default]" in out


def test_global_options_after_the_subcommand(cli, tmp_path: Path) -> None:
    after = tmp_path / "after"
    code, _, err = cli("run", "--method", "random", "--results-dir", str(after), "-q")
    assert code == 0, err
    assert list(after.rglob("random-*.json"))
    before = tmp_path / "before"
    code, _, err = cli("--results-dir", str(before), "run", "--method", "random")
    assert code == 0, err
    assert [p.name for p in before.rglob("random-*.json")] == [p.name for p in after.rglob("random-*.json")]


def test_hoisting_keeps_everything_else() -> None:
    cmds = {"run", "leaderboard"}
    assert hoist_global_options(["run", "-m", "pop", "--cache-dir=C", "-vv"], cmds) == [
        "--cache-dir=C",
        "-vv",
        "run",
        "-m",
        "pop",
    ]
    assert hoist_global_options(["run", "--", "--results-dir", "x"], cmds) == [
        "run",
        "--",
        "--results-dir",
        "x",
    ]
    assert hoist_global_options(["--results-dir", "R", "run"], cmds) == ["--results-dir", "R", "run"]
    assert hoist_global_options(["run", "--results-dir"], cmds) == [
        "run",
        "--results-dir",
    ]  # click reports it


def test_llm_run_prints_no_library_deprecation_warning_and_marks_random_init(cli, tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = cli(
            "run",
            "--method",
            "tallrec",
            "-p",
            "max_train_rows=64",
            "-p",
            "max_valid_rows=32",
            "-p",
            "epochs=1",
            "--task-param",
            "max_rows=64",
        )
    assert code == 0, err
    library = [w for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))]
    library = [w for w in library if "site-packages" in str(w.filename)]
    assert not library, [f"{w.filename}:{w.lineno} {w.message}" for w in library]
    assert "FutureWarning" not in err and "DeprecationWarning" not in err
    assert "tallrec °" in out and "random-init tiny backbone" in out
    assert "for paper-scale figures" in out  # the run says what a paper-scale figure needs
