"""Every suite in benchmarks/ parses, every run in it is accepted, and it either ships a baseline that lists
exactly its runs or ``benchbed check`` says in one line how to create one, before it trains anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchbed.data.catalog import get_spec, is_path_like
from benchbed.data.prepare import _protocol
from benchbed.data.splits import Protocol
from benchbed.orchestration.runner import setup
from benchbed.orchestration.suite import load_baseline, load_suite
from benchbed.registry import SPLITS

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SUITES = sorted(BENCHMARKS.glob("*.yaml"))


def test_the_suites_are_found() -> None:
    assert len(SUITES) >= 9 and BENCHMARKS / "cllm4rec.yaml" in SUITES


@pytest.mark.parametrize("path", SUITES, ids=[p.stem for p in SUITES])
def test_a_suite_parses_and_ships_its_baseline_or_says_how_to_make_it(
    path: Path,
    cli,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    suite = load_suite(path)
    # a hub backbone (vicuna-7b) is checked by name only, never fetched; offline it must be in the HF cache
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    for config in suite.runs:  # method, task and their parameters; the split's parameters; no training
        setup(config)
        if is_path_like(config.dataset):  # a directory dataset (data/lastfm): its protocol by name
            by_name = SPLITS.get(config.split or "presplit")
            assert isinstance(by_name, Protocol)
            by_name.resolve(dict(config.split_params))
            continue
        spec = get_spec(config.dataset)
        protocol = _protocol(spec, config.split or spec.default_split)
        protocol.resolve({**spec.split_defaults(protocol.name), **dict(config.split_params)})
    if suite.baseline.exists():
        assert set(load_baseline(suite.baseline, suite)) == {suite.run_key(c) for c in suite.runs}
        return
    code, out, err = cli("check", "--suite", str(path))
    assert code == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"`benchbed check --suite {path} --update-baseline`" in lines[0]
    assert f"{len(suite.runs)} run(s)" in lines[0]
    assert not list(Path(cli.results).rglob("*.json"))  # nothing ran


def test_an_explicit_baseline_path_is_named_in_the_command(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "mine.json"
    code, _, err = cli("check", "--suite", str(BENCHMARKS / "ci.yaml"), "--baseline", str(missing))
    assert code == 2
    assert f"--baseline {missing} --update-baseline`" in err
