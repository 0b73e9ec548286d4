"""Records you can trust (issue 14): one test per failure class, each reproducing it through the real CLI.

The method under test in the failure cases is ``trust-pop``: the real ``pop`` baseline plus a class-level
switch that makes ``fit`` raise what the test sets (an interrupt, a full disk), registered in ``METHODS``
here. It fails the way a long run does, after setup and inside fit, without patching any benchbed code.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest

from benchbed.api import RunContext
from benchbed.config import RunConfig
from benchbed.data.schema import Split
from benchbed.methods.reference import PopRecommender
from benchbed.registry import METHODS
from benchbed.results.record import read_record
from benchbed.results.store import failed_path, predictions_path

RECBOLE_ML100K = Path(__import__("recbole").__file__).parent / "dataset_example" / "ml-100k"


class TrustPop(PopRecommender):
    """``pop`` whose ``fit`` raises ``fail`` (when set) after fitting: an interrupt or a fault mid-run."""

    name: ClassVar[str] = "trust-pop"
    fail: ClassVar[BaseException | None] = None
    fits: ClassVar[int] = 0

    def fit(self, split: Split, ctx: RunContext) -> None:
        type(self).fits += 1
        super().fit(split, ctx)
        if type(self).fail is not None:
            raise type(self).fail


if "trust-pop" not in METHODS:
    METHODS.register("trust-pop", TrustPop)


@pytest.fixture(autouse=True)
def _reset_trust_pop() -> None:
    TrustPop.fail = None


def one_line(err: str, code: int, expected_code: int, *needles: str, progress: bool = False) -> str:
    """The error is one line (the last of stderr; with ``progress`` the run's log lines may precede it)."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == expected_code, err
    assert lines and (progress or len(lines) == 1) and "Traceback" not in err, err
    assert lines[-1].startswith("error:"), err
    for needle in needles:
        assert needle in lines[-1], lines[-1]
    return lines[-1]


def records_under(root: Path) -> list[Path]:
    return sorted(root.rglob("*.json")) if root.exists() else []


# --- 1. a failed or interrupted re-run never destroys the good record ------------------------------------
def test_interrupted_force_rerun_keeps_the_good_record_and_its_predictions(cli) -> None:
    code, _, err = cli("run", "--method", "trust-pop")
    assert code == 0, err
    [path] = [p for p in records_under(cli.results) if not p.name.endswith(".failed.json")]
    good = read_record(path)
    pred_bytes = predictions_path(path).read_bytes()

    TrustPop.fail = KeyboardInterrupt()
    code, _, err = cli("run", "--method", "trust-pop", "--force")
    one_line(err, code, 130, "interrupted", progress=True)
    kept = read_record(path)
    assert kept.status == "ok" and kept.run_id == good.run_id and kept.metrics == good.metrics
    assert predictions_path(path).read_bytes() == pred_bytes  # not orphaned, not replaced
    failure = read_record(failed_path(path))
    assert failure.status == "failed" and failure.error == "KeyboardInterrupt"

    code, out, _ = cli("run", "--method", "trust-pop")  # the good record is still found
    assert code == 0 and "found an existing record" in out
    code, _, err = cli("leaderboard", "--no-references", "--format", "csv")
    assert code == 0 and "trust-pop" in _ and "failed run: KeyboardInterrupt" in err

    TrustPop.fail = None
    code, _, err = cli("run", "--method", "trust-pop", "--force")
    assert code == 0, err
    assert read_record(path).run_id != good.run_id and not failed_path(path).exists()

    # a record written by a newer benchbed is never overwritten, even with --force
    newer = json.loads(path.read_text())
    newer["schema_version"] = 99
    path.write_text(json.dumps(newer))
    code, _, err = cli("run", "--method", "trust-pop", "--force")
    one_line(err, code, 1, "schema_version 99 (newer than this benchbed", "will not overwrite", progress=True)
    assert json.loads(path.read_text())["schema_version"] == 99


# --- 2. rescore --write checks its input ------------------------------------------------------------------
def test_rescore_refuses_empty_and_tampered_predictions(cli) -> None:
    code, _, err = cli("run", "--method", "pop")
    assert code == 0, err
    [path] = records_under(cli.results)
    pred = predictions_path(path)
    original, record = pd.read_parquet(pred), read_record(path)
    assert record.predictions_check and record.predictions_check["rows"] == len(original) > 0

    original.iloc[:0].to_parquet(pred, index=False)  # an empty predictions file
    code, _, err = cli("rescore", str(path), "--write", "--accept-changes")
    one_line(err, code, 1, "0 row(s)", f"computed on {len(original)}")
    assert read_record(path).metrics == record.metrics

    tampered = original.copy()
    tampered["score"] = tampered["prob"] = tampered["label"].astype(float)  # perfect scores: AUC 1.0
    tampered.to_parquet(pred, index=False)
    code, out, err = cli("rescore", str(path), "--write")
    one_line(err, code, 1, "would change", "predictions file was edited", "--accept-changes")
    assert "sha256 differs" in out and read_record(path).metrics == record.metrics

    relabeled = original.copy()
    relabeled["label"] = 1 - relabeled["label"]  # other ground truth: not the record's rows
    relabeled.to_parquet(pred, index=False)
    code, _, err = cli("rescore", str(path), "--write", "--accept-changes")
    one_line(err, code, 1, "row keys")

    original.to_parquet(pred, index=False)
    code, out, err = cli("rescore", str(path), "--write")
    assert code == 0 and "0 value(s) differ" in out, err


# --- 3. identity is content --------------------------------------------------------------------------------
def _write_atomic(directory: Path, users: int) -> Path:
    """A RecBole atomic dataset in the real format: ml-100k's interactions of its first ``users`` users."""
    directory.mkdir(parents=True, exist_ok=True)
    inter = pd.read_csv(RECBOLE_ML100K / "ml-100k.inter", sep="\t")
    keep = sorted(inter["user_id:token"].unique())[:users]
    inter[inter["user_id:token"].isin(keep)].to_csv(directory / "foo.inter", sep="\t", index=False)
    return directory


def test_directory_dataset_edited_in_place_or_elsewhere_is_not_the_old_record(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for where in ("a", "b"):
        _write_atomic(tmp_path / where / "foo", users=40 if where == "a" else 60)
    monkeypatch.chdir(tmp_path / "a")
    code, _, err = cli("run", "--method", "pop", "--task", "topk", "--dataset", "./foo")
    assert code == 0, err
    [first] = records_under(cli.results)
    rec_a = read_record(first)
    assert rec_a.dataset_path == str((tmp_path / "a" / "foo").resolve())

    monkeypatch.chdir(tmp_path / "b")  # the same --dataset string, other files
    code, out, err = cli("run", "--method", "pop", "--task", "topk", "--dataset", "./foo")
    assert code == 0 and "found an existing record" not in out, err
    rec_b = read_record(next(p for p in records_under(cli.results) if p != first))
    assert rec_b.dataset_hash != rec_a.dataset_hash and rec_b.counts != rec_a.counts

    monkeypatch.chdir(tmp_path / "a")
    code, out, _ = cli("run", "--method", "pop", "--task", "topk", "--dataset", "./foo")
    assert code == 0 and "found an existing record" in out  # unchanged files: the first record is found
    _write_atomic(tmp_path / "a" / "foo", users=50)  # files replaced in place
    code, out, err = cli("run", "--method", "pop", "--task", "topk", "--dataset", "./foo")
    assert code == 0 and "found an existing record" not in out, err
    hashes = {read_record(p).dataset_hash for p in records_under(cli.results)}
    assert len(hashes) == 3


def test_altered_cached_split_is_verified_and_rebuilt(caplog: pytest.LogCaptureFixture) -> None:
    from benchbed.data.prepare import prepare_split

    first = prepare_split("ml-100k", "temporal-window", {"history_len": 7})
    again = prepare_split("ml-100k", "temporal-window", {"history_len": 7})
    assert again.cache_hit and again.split.hash == first.split.hash
    from benchbed.settings import get_settings

    entry = next((get_settings().cache_dir / "splits").glob(f"*-{first.stats['split_key']}"))
    test = pd.read_parquet(entry / "test.parquet")
    test["label"] = 1 - test["label"]  # a valid parquet with other content
    test.to_parquet(entry / "test.parquet", index=False)
    with caplog.at_level(logging.WARNING, logger="benchbed.data.cache"):
        rebuilt = prepare_split("ml-100k", "temporal-window", {"history_len": 7})
    assert not rebuilt.cache_hit and "not intact" in caplog.text and "test.parquet" in caplog.text
    assert rebuilt.split.hash == first.split.hash
    assert (rebuilt.split.test["label"].to_numpy() == first.split.test["label"].to_numpy()).all()


# --- 4. no traceback for bad input or an environment fault -----------------------------------------------
def test_malformed_record_beside_good_ones_is_skipped(cli) -> None:
    code, _, err = cli("run", "--method", "pop")
    assert code == 0, err
    [path] = records_under(cli.results)
    changes = {
        "seed.json": {"seed": "abc"},
        "backbone.json": {"backbone": [1]},
        "counts.json": {"counts": {"all": 3}},
    }
    for name, change in changes.items():
        bad = json.loads(path.read_text())
        bad.update(change)
        (path.parent / name).write_text(json.dumps(bad))
    (path.parent / "binary.json").write_bytes(b"\x89PNG\x00\xff")
    code, csv_text, err = cli("leaderboard", "--no-references", "--format", "csv")
    assert code == 0 and "Traceback" not in err, err
    assert "seed.json: field 'seed' must be an integer, got 'abc'" in err
    assert "backbone.json: field 'backbone' must be an object or null" in err and "binary.json" in err
    assert "counts.json: field 'counts' must be an object" in err
    header, row = csv_text.strip().split("\n")  # one board row: the good record, once
    assert ",pop," in row and row.startswith("ml-100k,ctr,")


def test_bad_config_files_are_usage_errors_without_records(cli, tmp_path: Path) -> None:
    cases = {
        "seed.yaml": ("method: pop\nseed: abc\n", "'seed' must be an integer"),
        "list.yaml": ("method: [pop]\n", "'method' must be a method name"),
        "big.yaml": (f"method: pop\nseed: {2**70}\n", "'seed' must be an integer in [0, 2**63-1]"),
        "binary.yaml": (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not a UTF-8 text file"),
    }
    for name, (content, needle) in cases.items():
        file = tmp_path / name
        file.write_bytes(content if isinstance(content, bytes) else content.encode())
        code, _, err = cli("run", "--config", str(file))
        one_line(err, code, 2, name, needle)
    assert records_under(cli.results) == []


def test_setup_typos_leave_no_record(cli) -> None:
    cases = [
        (("--dataset", "ml-100kk"), "unknown dataset 'ml-100kk'"),
        (("--split", "temporal-windw"), "unknown split protocol"),
        (("--split-param", "warm_threshold=-1"), "warm_threshold"),
        (("--dataset", ""), "'dataset' must be a catalog name or a dataset directory"),
    ]
    import torch

    if not torch.cuda.is_available():
        cases.append((("--device", "cuda"), "no CUDA GPU"))
    for args, needle in cases:
        code, _, err = cli("run", "--method", "pop", *args)
        one_line(err, code, 2, needle)
    assert records_under(cli.results) == []


def test_out_of_range_timestamp_is_one_line_without_a_record(cli, tmp_path: Path) -> None:
    data = _write_atomic(tmp_path / "ts" / "foo", users=20)
    inter = data / "foo.inter"
    lines = len(inter.read_text().splitlines())
    inter.write_text(inter.read_text() + "1\t1\t5\t1e30\n")
    code, _, err = cli("run", "--method", "pop", "--task", "topk", "--dataset", str(data))
    one_line(err, code, 1, f"foo.inter line {lines + 1}", "'timestamp' = '1e30' is out of range")
    assert records_under(cli.results) == []


def _read_only(directory: Path) -> bool:
    """Make ``directory`` unwritable, for root too (immutable attribute) where chattr works."""
    directory.mkdir(parents=True, exist_ok=True)
    if shutil.which("chattr"):
        done = subprocess.run(["chattr", "+i", str(directory)], check=False, capture_output=True)
        if done.returncode == 0:
            return True
    directory.chmod(0o555)
    probe = directory / ".probe"
    try:
        probe.touch()
    except OSError:
        return True
    probe.unlink()
    return False


def _writable(directory: Path) -> None:
    if shutil.which("chattr"):
        subprocess.run(["chattr", "-i", str(directory)], check=False, capture_output=True)
    directory.chmod(0o755)


def test_read_only_cache_is_one_line(cli, tmp_path: Path) -> None:
    cache = tmp_path / "ro-cache"
    if not _read_only(cache):
        pytest.skip("cannot make a directory read-only here (root without chattr)")
    try:
        code, _, err = cli("--cache-dir", str(cache), "run", "--method", "pop", "--task", "topk")
        one_line(err, code, 1, str(cache), "--cache-dir")
    finally:
        _writable(cache)
    assert records_under(cli.results) == []


def test_results_path_that_is_a_file_fails_before_training(cli, tmp_path: Path) -> None:
    blocker = tmp_path / "results-file"
    blocker.write_text("not a directory\n")
    fits = TrustPop.fits
    code, _, err = cli("run", "--method", "trust-pop", "--task", "topk", results_dir=blocker / "res")
    one_line(err, code, 1, str(blocker), "is a file")
    assert TrustPop.fits == fits  # nothing was trained


def test_full_disk_is_one_line_and_verbose_shows_the_traceback(cli, tmp_path: Path) -> None:
    where = str(tmp_path / "scratch" / "stage.pt")
    TrustPop.fail = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), where)
    code, _, err = cli("run", "--method", "trust-pop", "--task", "topk")
    one_line(err, code, 1, where, "No space left on device", "free some space", progress=True)
    [failure] = records_under(cli.results)
    assert read_record(failure).status == "failed" and "No space left" in (read_record(failure).error or "")
    code, _, err = cli("-v", "run", "--method", "trust-pop", "--task", "topk")
    assert code == 1 and "Traceback" in err and err.strip().splitlines()[-1].startswith("error:")


# --- 5. environment in every record -------------------------------------------------------------------------
def test_records_carry_their_environment_and_boards_say_when_it_differs(cli) -> None:
    code, _, err = cli("run", "--method", "pop")
    assert code == 0, err
    code, _, err = cli("run", "--method", "random")
    assert code == 0, err
    paths = records_under(cli.results)
    env = read_record(paths[0]).environment
    assert env is not None
    for key in ("python", "torch", "transformers", "peft", "recbole", "numpy", "pandas", "scikit-learn"):
        assert env[key], key
    assert {"implicit", "sentence-transformers", "cuda", "cudnn", "gpu"} <= set(env)
    assert env["threads"]["torch"] >= 1
    code, _, err = cli("leaderboard", "--no-references")
    assert code == 0 and "different environments" not in err
    other: dict[str, Any] = json.loads(paths[1].read_text())
    other["environment"]["torch"] = "0.0.1"
    paths[1].write_text(json.dumps(other))
    code, _, err = cli("leaderboard", "--no-references")
    assert code == 0 and "different environments" in err and "0.0.1" in err

    suite = paths[0].parents[3] / "env-suite.yaml"  # check: the baseline's environment against the runs'
    suite.write_text("name: env\nmetrics: [auc]\nruns:\n  - {method: pop, task: ctr}\n")
    code, _, err = cli("check", "--suite", str(suite), "--update-baseline")
    assert code == 0, err
    code, out, err = cli("check", "--suite", str(suite), "--reuse")
    assert code == 0 and "PASS" in out and "different environments" not in out, err
    baseline = suite.with_name("env-suite.baseline.json")
    data = json.loads(baseline.read_text())
    data["environment"]["transformers"] = "4.0.0"
    baseline.write_text(json.dumps(data))
    code, out, _ = cli("check", "--suite", str(suite), "--reuse")
    assert code == 0 and "baseline and runs come from different environments" in out and "4.0.0" in out


# --- 6. small ones ------------------------------------------------------------------------------------------
def test_movies_dat_short_or_undecodable_line_names_its_line(tmp_path: Path) -> None:
    from benchbed.data.sources.movielens import read_movies, read_ratings
    from benchbed.errors import DataError

    movies = tmp_path / "movies.dat"
    movies.write_bytes(b"1::Toy Story (1995)::Animation|Comedy\n2::Jumanji (1995)\n")
    with pytest.raises(DataError, match=r"movies\.dat line 2: expected 3 '::'-separated fields"):
        read_movies(movies)
    movies.write_bytes("1::Toy Story (1995)::Animation\n2::Caf\u00e9 \u2019 (1995)::Drama\n".encode())
    with pytest.raises(DataError, match=r"movies\.dat line 2: control character"):
        read_movies(movies)  # UTF-8 bytes read as latin-1: C1 control characters
    movies.write_bytes(b"1::Toy Story (1995)::Animation\n2::Mis\xe9rables (1995)::Drama\n\n\n")
    assert read_movies(movies)["title"].tolist() == ["Toy Story (1995)", "Mis\u00e9rables (1995)"]
    ratings = tmp_path / "ratings.dat"
    ratings.write_text("1::1::5::978300760\n1::2::3::978302109\n\n")
    assert len(read_ratings(ratings)) == 2


def test_atomic_file_ending_in_blank_lines_loads_and_runs_leave_no_scratch(cli, tmp_path: Path) -> None:
    from benchbed.data.sources.recbole_atomic import read_inter
    from benchbed.settings import get_settings

    data = _write_atomic(tmp_path / "blank" / "foo", users=30)
    inter = data / "foo.inter"
    rows = len(pd.read_csv(inter, sep="\t"))
    inter.write_text(inter.read_text() + "\n\n")
    assert len(read_inter(inter)[0]) == rows
    args = ("run", "--method", "recbole:BPR", "--task", "topk", "--dataset", str(data), "-p", "epochs=1")
    cache = get_settings().cache_dir
    scratch = cache / "recbole" / "work"
    before = set(scratch.iterdir()) if scratch.exists() else set()  # the session cache is shared by tests
    code, _, err = cli(*args)
    assert code == 0, err
    config = RunConfig(method="recbole:BPR", dataset=str(data), task="topk", method_params={"epochs": 1})
    assert not (cache / "work" / config.hash()).exists()
    assert not scratch.exists() or set(scratch.iterdir()) <= before  # this run left nothing behind
