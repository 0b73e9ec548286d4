"""The regression check's comparison rule, including metrics undefined on a subset (NaN)."""

from __future__ import annotations

from pathlib import Path

import yaml

from benchbed.orchestration.suite import compare, load_suite


def test_undefined_then_and_now_passes_and_a_lost_value_regresses(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "runs": [{"method": "pop", "task": "ctr"}]}))
    suite = load_suite(path)
    key = suite.run_key(suite.runs[0])
    nan = float("nan")
    baseline = {key: {"warm": {"auc": nan, "uauc": nan, "ndcg": 0.5}, "all": {"auc": 0.7, "logloss": 0.6}}}
    current = {key: {"warm": {"auc": nan, "uauc": 0.6, "ndcg": nan}, "all": {"auc": 0.69, "logloss": 0.5}}}
    status = {(c.subset, c.metric): c.status for c in compare(suite, baseline, current)}
    assert status[("warm", "auc")] == "pass"  # undefined both times
    assert status[("warm", "uauc")] == "better"  # now defined
    assert status[("warm", "ndcg")] == "missing"  # a value the baseline had is gone
    assert status[("all", "auc")] == "regression"  # AUC fell by more than the tolerance
    assert status[("all", "logloss")] == "better"  # lower is better
