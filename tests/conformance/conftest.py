"""Session-scoped micro worlds and fits for the conformance suite: each world's data and tiny backbone is
built once, each method fitted three times once, whatever number of checks reads them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))

from cases import WORLDS, MicroCase, World  # noqa: E402
from suite import Fits, fit_three_times  # noqa: E402

_WORLDS: dict[str, World] = {}
_FITS: dict[tuple[str, str], Fits] = {}


@pytest.fixture
def world(case: MicroCase, tmp_path_factory: pytest.TempPathFactory) -> World:
    if case.world not in _WORLDS:
        _WORLDS[case.world] = WORLDS[case.world](tmp_path_factory.mktemp(f"world-{case.world}"))
    return _WORLDS[case.world]


@pytest.fixture
def fits(case: MicroCase, world: World) -> Fits:
    import torch

    key = (case.method, case.world)
    if key not in _FITS:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # many tiny fits: one thread is faster than two
        try:
            _FITS[key] = fit_three_times(case, world)
        finally:
            torch.set_num_threads(threads)
    return _FITS[key]
