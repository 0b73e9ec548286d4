"""Shared fixtures: every test session gets its own cache and results dirs (never the user's)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchbed.settings import Settings, set_settings


@pytest.fixture(scope="session")
def session_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("benchbed")
    dirs = {"data": root / "data", "cache": root / "cache", "results": root / "results"}
    for d in dirs.values():
        d.mkdir()
    return dirs


@pytest.fixture(autouse=True)
def isolated_settings(session_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Point benchbed at the session's dirs; the cache is shared across tests so ml-100k is built once."""
    monkeypatch.setenv("BENCHBED_DATA", str(session_dirs["data"]))
    monkeypatch.setenv("BENCHBED_CACHE", str(session_dirs["cache"]))
    monkeypatch.setenv("BENCHBED_RESULTS", str(session_dirs["results"]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    settings = Settings.from_env()
    set_settings(settings)
    return settings


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules of many tiny fits: one thread is faster than two there, and a module asks for it with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:  # pragma: no cover
        pass


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """``benchbed <args>`` in-process through the console entry (``benchbed.cli.app.main``, which turns errors
    into exit codes) with results under this test's tmp dir -> (exit code, stdout, stderr)."""
    import sys

    from benchbed.cli.app import main

    monkeypatch.setenv("COLUMNS", "200")
    results = tmp_path / "results"

    def invoke(*args: str, results_dir: Path | None = None) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["benchbed", "--results-dir", str(results_dir or results), *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    invoke.results = results  # type: ignore[attr-defined]
    return invoke
