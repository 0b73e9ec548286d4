"""Records say what code made them (issue 22, item 7): the commit and a dirty flag, and a board that mixes
records from different commits says so, as it does for environments."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from benchbed.results import environment
from benchbed.results.record import read_record

REPO = Path(environment.__file__).resolve().parents[2]


def _records(results: Path) -> list[Path]:
    return sorted(p for p in results.rglob("*.json") if not p.name.endswith(".failed.json"))


def test_record_names_its_commit_and_a_board_of_mixed_commits_says_so(cli) -> None:
    for method in ("pop", "random"):
        code, _, err = cli("run", "--method", method)
        assert code == 0, err
    paths = _records(cli.results)
    assert len(paths) == 2
    code_info = (read_record(paths[0]).environment or {})["code"]
    if shutil.which("git") and (REPO / ".git").exists():
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
        assert code_info["git_sha"] == head.strip()
        assert isinstance(code_info["dirty"], bool)
    code, _, err = cli("leaderboard", "--no-references")
    assert code == 0 and "different code" not in err, err

    other: dict[str, Any] = json.loads(paths[1].read_text())
    other["environment"]["code"] = {"git_sha": "0123456789abcdef" * 2 + "01234567", "dirty": False}
    paths[1].write_text(json.dumps(other))
    first: dict[str, Any] = json.loads(paths[0].read_text())
    first["environment"]["code"] = {"git_sha": "fedcba9876543210" * 2 + "76543210", "dirty": True}
    paths[0].write_text(json.dumps(first))
    code, _, err = cli("leaderboard", "--no-references")
    assert code == 0, err
    assert "different code: 2 commits" in err and "0123456789" in err and "fedcba9876" in err
    assert "uncommitted changes" in err


def test_outside_a_git_checkout_the_commit_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    environment.code_identity.cache_clear()
    monkeypatch.setattr(environment, "git_output", lambda *args: None)
    try:
        assert environment.code_identity() == {"git_sha": None, "dirty": None}
    finally:
        environment.code_identity.cache_clear()


def test_code_note_counts_unknown_records_only_beside_known_ones() -> None:
    known = {"code": {"git_sha": "a" * 40, "dirty": False}}
    assert environment.code_note([known, known, None, {}]) is None
    note = environment.code_note([known, {"code": {"git_sha": "b" * 40, "dirty": False}}, None])
    assert note is not None and "2 commits" in note and "1 record(s) predate" in note


def test_dirty_means_any_change_in_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A planted checkout: an edit anywhere in the package, or a new module, makes the code dirty; a file
    outside the package (a record) does not (it looked at benchbed/results/ only before)."""
    if not shutil.which("git"):
        pytest.skip("git is not installed")
    package = tmp_path / "benchbed"
    (package / "results").mkdir(parents=True)
    (package / "methods").mkdir()
    (package / "methods" / "m.py").write_text("x = 1\n")
    (package / "results" / "r.py").write_text("y = 1\n")

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    monkeypatch.setattr(environment, "PACKAGE_DIR", package)

    def dirty() -> bool | None:
        environment.code_identity.cache_clear()
        try:
            return environment.code_identity()["dirty"]
        finally:
            environment.code_identity.cache_clear()

    assert dirty() is False
    (tmp_path / "record.json").write_text("{}")  # outside the package
    assert dirty() is False
    (package / "methods" / "m.py").write_text("x = 2\n")  # outside results/: missed before
    assert dirty() is True
    git("checkout", "--", ".")
    assert dirty() is False
    (package / "methods" / "new.py").write_text("z = 1\n")  # an untracked module is code
    assert dirty() is True
