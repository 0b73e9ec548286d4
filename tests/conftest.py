"""Shared fixtures: every test session gets its own cache and results dirs (never the user's).

Speed (issue 23: the whole suite under 10 minutes on a 2-core CI machine): whatever several tests would build
or train *identically* is built once per session through :class:`SessionCache` (fixture ``session_cache``):

- ``session_cache.get(key, build)`` calls ``build()`` the first time a key is asked for and hands back the
  same object afterwards (a saved tiny backbone's path, a planted split, a fitted tiny method that tests only
  read);
- ``session_cache.dir(name)`` is one folder per name for the whole session: give it as
  ``RunContext.cache_dir`` to fits that should share their trained stages (the stage kit keys every stage by
  everything that trained it, so a fit finds a stage only where an identical one was trained before).

The key must name everything that determines the thing built (sizes, seeds, parameters); two different
builds under one key are a test bug, caught by ``get``'s ``check`` argument where it is given. A test that
mutates what it got, or asserts that a stage is *trained* (not loaded), builds its own instead.

Under pytest-xdist (pyproject's addopts: two workers) each worker is its own session with its own tmp dirs:
a thing that tests of several modules share is built once per worker, and nothing is written to a path
that both workers share.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from benchbed.settings import Settings, set_settings

T = TypeVar("T")


class SessionCache:
    """Built-once things of one test session (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._built: dict[str, tuple[Any, Any]] = {}

    def dir(self, name: str) -> Path:
        """One folder per ``name`` for the whole session (created on first use)."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def get(self, key: str, build: Callable[[], T], check: Any = None) -> T:
        """``build()`` once per session and ``key``; ``check`` (any comparable value, e.g. the parameters
        the build reads) must be the same on every call, or the key names two different things."""
        if key in self._built:
            value, first = self._built[key]
            if first != check:
                raise AssertionError(f"session_cache key {key!r}: asked with {check!r}, built with {first!r}")
            return value  # type: ignore[no-any-return]
        value = build()
        self._built[key] = (value, check)
        return value


@pytest.fixture(scope="session")
def session_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("benchbed")
    dirs = {"data": root / "data", "cache": root / "cache", "results": root / "results"}
    for d in dirs.values():
        d.mkdir()
    return dirs


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> SessionCache:
    """What several tests build identically, built once per session (see the module docstring)."""
    return SessionCache(tmp_path_factory.mktemp("session-cache"))


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
    # pyproject's addopts run the suite on two pytest-xdist workers (CI has 2 cores): one torch thread per
    # worker then, so the two do not fight over the cores; in one process (``-n 0``), two threads
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    threads = 1 if worker else 2
    if worker:
        os.environ["OMP_NUM_THREADS"] = "1"  # the controller's "2" is inherited: override it
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover
        pass


# The heaviest units of work, heaviest first (CPU seconds of the module, its subprocesses included, measured
# in a full `pytest` run with two workers, 2026-12-07): handed out first, so that the short modules fill the
# end of the run instead of one long module running alone on one worker at the end. A module missing from
# this list only starts later; nothing fails.
HEAVY_MODULES = (
    "test_distributed.py",  # ~195 with test_fsdp.py and the Ray test (one group): two-process launches
    "test_gpu_check.py",  # ~155: every LLM method through benchmarks/gpu_check.py in bf16
    "test_stage_identity_conformance.py",  # ~87
    "test_method_ilm.py",  # ~77: five planted ILM variants
    "test_method_rarec.py",  # ~76: the real MiniLM towers
    "test_minilm_ctr.py",  # ~52
    "test_task_item2text.py",  # ~44
    "test_plan.py",  # ~30
)
# Tests that must not run beside each other (run one after another on one worker): the two-process
# ``accelerate launch`` runs bind torch.distributed's default port, and Ray starts a local instance.
EXCLUSIVE_GROUP = "one-at-a-time"


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``--dist loadgroup`` (pyproject's addopts) each test module is one unit of work for one worker,
    so a module-scoped fixture that trains something is built once, not once per worker; tests marked
    ``xdist_group(EXCLUSIVE_GROUP)`` share one unit. The heavy modules go first (``HEAVY_MODULES``):
    pytest-xdist hands units out in collection order (``--no-loadscope-reorder`` keeps it)."""
    rank = {name: r for r, name in enumerate(HEAVY_MODULES)}

    def module_rank(item: pytest.Item) -> int:
        return rank.get(item.path.name, len(HEAVY_MODULES))

    items.sort(key=module_rank)  # stable: collection order within a module and among the rest
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.path.stem))  # shown as "<test id>@<stem>"


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
