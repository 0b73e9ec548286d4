"""End to end through the real CLI entry on ML-100K: run, skip/force, leaderboard, rescore, check, methods."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from benchbed.config import RunConfig
from benchbed.orchestration.suite import load_baseline, load_suite
from benchbed.results.record import SCHEMA_VERSION, read_record
from benchbed.results.store import predictions_path, record_path

REPO = Path(__file__).resolve().parents[1]


def test_run_records_skip_force_leaderboard_and_rescore(cli) -> None:
    results: Path = cli.results
    code, out, err = cli("run", "--method", "pop", "--task", "topk")
    assert code == 0, err
    path = record_path(results, RunConfig(method="pop", task="topk"))
    rec = read_record(path)
    assert rec.status == "ok" and rec.dataset == "ml-100k" and rec.split_protocol == "temporal-window"
    assert rec.split_hash and rec.dataset_hash and rec.params_hash and rec.schema_version == SCHEMA_VERSION
    assert rec.git_sha is None or re.fullmatch(r"[0-9a-f]{40}", rec.git_sha)
    assert {"train_s", "eval_s", "peak_memory_mb", "trainable_params", "device"} <= set(rec.cost)
    assert set(rec.metrics) == {"all", "warm", "cold"} and "ndcg@10" in rec.metrics["warm"]
    counts = rec.counts
    assert counts["all"]["rows"] == counts["warm"]["rows"] + counts["cold"]["rows"] > 0
    assert predictions_path(path).exists() and rec.predictions == predictions_path(path).name
    assert "ml-100k · topk · temporal-window" in out and "ndcg@10" in out

    code, out, _ = cli("run", "--method", "pop", "--task", "topk")
    assert code == 0 and "found an existing record" in out and read_record(path).run_id == rec.run_id
    code, _, _ = cli("run", "--method", "pop", "--task", "topk", "--force")
    assert code == 0 and read_record(path).run_id != rec.run_id

    code, _, err = cli("run", "--method", "pop")  # defaults: ml-100k, ctr
    assert code == 0, err
    ctr_path = record_path(results, RunConfig(method="pop"))
    assert read_record(ctr_path).metrics["warm"]["auc"] > 0.5

    code, md, err = cli("leaderboard", "--format", "markdown")
    assert code == 0, err
    assert "### ml-100k · ctr · temporal-window" in md and "### ml-100k · topk · temporal-window" in md
    assert "warm/auc" in md and "cold/auc" in md and "warm/ndcg@10" in md
    # pop's row: 1 seed, its significance mark, then its numbers (the marks' columns come first)
    assert re.search(r"\| pop \| 1 \| (best|n\.s\.|worse|no test)[^\n]*\| 0\.\d{4} \|", md)
    # TALLRec's few-shot rows ran on TALLRec's own split: awaiting, so on no board (issue 22)
    assert "TALLRec (256-shot)" not in md
    code, csv_text, _ = cli("leaderboard", "--format", "csv", "--task", "ctr", "--no-references")
    assert code == 0 and csv_text.count("\n") == 2  # header + pop

    code, out, _ = cli("rescore", str(ctr_path))
    assert code == 0 and "0 value(s) differ" in out
    data = json.loads(ctr_path.read_text())
    data["metrics"]["all"]["auc"] = 0.1
    ctr_path.write_text(json.dumps(data))
    code, out, _ = cli("rescore", str(ctr_path), "--write")
    assert code == 1 and "1 value(s) differ" in out  # refused: a rescore is not for editing results
    assert read_record(ctr_path).metrics["all"]["auc"] == 0.1
    code, out, _ = cli("rescore", str(ctr_path), "--write", "--accept-changes")
    assert code == 0 and "1 value(s) differ" in out
    fixed = read_record(ctr_path)
    assert fixed.metrics["all"]["auc"] > 0.5 and fixed.rescored is not None


def test_bad_inputs_are_one_line_errors_and_write_no_record(cli, tmp_path: Path) -> None:
    def one_line_error(code: int, err: str, *needles: str) -> None:
        assert code == 2, err  # usage errors exit 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), err
        for needle in needles:
            assert needle in lines[0], lines[0]

    one_line_error(*cli("run", "--method", "popp")[::2], "unknown method 'popp'", "did you mean 'pop'")
    one_line_error(*cli("run", "--method", "pop", "--param", "bogus=1")[::2], "has no parameter(s) ['bogus']")
    one_line_error(*cli("run", "--method", "icl", "--task", "generative")[::2], "does not support task")
    bad_cfg = tmp_path / "run.yaml"
    bad_cfg.write_text("method: pop\ntaks: ctr\n")
    one_line_error(*cli("run", "--config", str(bad_cfg))[::2], "run.yaml", "unknown key(s) ['taks']")

    # a setup error (the split rejects its parameter) writes nothing
    code, _, err = cli("run", "--method", "random", "--split-param", "warm_threshold=-1")
    assert code == 2 and "warm_threshold" in err
    assert not record_path(
        cli.results, RunConfig(method="random", split_params={"warm_threshold": -1})
    ).exists()
    missing = str(tmp_path / "no-such-model")
    one_line_error(*cli("run", "--method", "tallrec", "--backbone", missing)[::2], "no-such-model")
    assert not cli.results.exists() or not list(cli.results.rglob("*.json"))
    # failures after setup leave a failed record (tests/test_records_trust.py)

    (cli.results / "ml-100k").mkdir(parents=True, exist_ok=True)
    (cli.results / "ml-100k" / "broken.json").write_text("{")
    code, _, err = cli("leaderboard", "--no-references")
    assert code == 0
    assert "broken.json: corrupt JSON" in err


def _suite(tmp_path: Path, runs: list[dict], **extra: object) -> Path:
    path = tmp_path / "suite.yaml"
    doc = {
        "name": "mini",
        "defaults": {"dataset": "ml-100k"},
        "metrics": ["auc", "logloss", "ndcg@10"],
        "runs": runs,
    }
    path.write_text(yaml.safe_dump({**doc, **extra}))
    return path


def test_check_passes_fails_on_planted_regression_and_passes_improvement(cli, tmp_path: Path) -> None:
    runs = [
        {"method": "pop", "task": "ctr"},
        {"method": "random", "task": "topk", "task_params": {"ks": [10]}},
    ]
    suite = _suite(tmp_path, runs)
    code, out, err = cli("check", "--suite", str(suite), "--update-baseline")
    assert code == 0, err
    baseline = tmp_path / "suite.baseline.json"
    data = json.loads(baseline.read_text())
    assert len(data["runs"]) == 2
    assert cli("run", "--method", "pop", "--task", "topk")[0] == 0  # a record that is not in the suite

    def topk_rows(*args: str) -> int:
        code, csv_text, err = cli("leaderboard", "--format", "csv", "--no-references", *args)
        assert code == 0, err
        return sum(1 for line in csv_text.splitlines() if line.startswith("ml-100k,topk,"))

    assert topk_rows() == 2 and topk_rows("--suite", str(suite)) == 1  # pop topk is filtered out
    code, out, _ = cli("check", "--suite", str(suite))  # re-runs both: deterministic, so it passes
    assert code == 0 and "PASS" in out and "0 regressed" in out

    pop_key = RunConfig(method="pop", task="ctr").hash()

    def planted(subset: str, metric: str, delta: float) -> Path:
        d = json.loads(baseline.read_text())
        d["runs"][pop_key]["metrics"][subset][metric] += delta
        p = tmp_path / f"planted-{metric}-{delta}.json"
        p.write_text(json.dumps(d))
        return p

    code, out, _ = cli(
        "check", "--suite", str(suite), "--baseline", str(planted("warm", "auc", 0.05)), "--reuse"
    )
    assert code == 1 and "regression" in out and "FAIL" in out
    code, out, _ = cli(
        "check", "--suite", str(suite), "--baseline", str(planted("warm", "auc", -0.05)), "--reuse"
    )
    assert code == 0 and "better" in out and "PASS" in out
    # lower is better for LogLoss: a baseline that was lower means we got worse
    code, out, _ = cli(
        "check", "--suite", str(suite), "--baseline", str(planted("all", "logloss", -0.05)), "--reuse"
    )
    assert code == 1 and "logloss" in out

    # bad suite / baseline files: one line naming the file
    code, _, err = cli("check", "--suite", str(_suite(tmp_path, runs, tolerence=0.1)))
    assert code == 2 and "suite.yaml: unknown key(s) ['tolerence']" in err
    code, _, err = cli("check", "--suite", str(_suite(tmp_path, [{"method": "popular", "task": "ctr"}])))
    assert code == 2 and "suite.yaml runs[0]" in err and "unknown method 'popular'" in err
    code, _, err = cli(
        "check", "--suite", str(_suite(tmp_path, [*runs, {"method": "random", "task": "ctr"}]))
    )
    assert code == 2 and "suite.baseline.json: does not match suite" in err and "random ml-100k ctr s0" in err


def test_ci_suite_and_its_baseline_agree() -> None:
    suite = load_suite(REPO / "benchmarks" / "ci.yaml")
    baseline = load_baseline(suite.baseline, suite)
    assert {c.method for c in suite.runs} >= {"pop", "random"} and len(baseline) == len(suite.runs)


def test_methods_listing(cli) -> None:
    code, out, _ = cli("methods")
    assert code == 0 and re.search(r"pop\s+│?\s*ctr, topk", out) and "random" in out
    from benchbed.cli.methods import _summary
    from benchbed.methods import BUILTIN_METHODS, get_method_class

    for name in sorted(BUILTIN_METHODS):  # every built-in says what it is, without Sphinx markup
        summary = _summary(get_method_class(name))
        assert summary and "``" not in summary and ":class:" not in summary, name
    code, out, _ = cli("methods", "pop")
    assert code == 0 and "ctr_score" in out and "prior_strength" in out
