"""Where records live and how they are written and read back.

A record's path is a function of its RunConfig (``<results>/<dataset>/<task>/<method>-<confighash>-s<seed>``),
so re-running a config finds its own earlier result. Predictions are written before the JSON, both atomically:
a record that exists always points at complete predictions, and it carries their row count, a checksum of
their row keys (everything but the predicted columns) and of the file (:func:`predictions_check`), so
``rescore`` can tell predictions that do not belong to it. A run that fails where an ``ok`` record already
is writes ``<id>.failed.json`` beside it (:func:`failed_path`) instead of replacing it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchbed.atomic import write_text_atomic, write_with
from benchbed.config import RunConfig
from benchbed.errors import BenchbedError
from benchbed.results.record import RecordError, RunRecord, read_record

PREDICTIONS_SUFFIX = ".predictions.parquet"
FAILED_SUFFIX = ".failed.json"
# columns a method produced; every other column of a predictions frame is a row key or ground truth
PREDICTED_COLUMNS = ("score", "prob", "ranked")


def slug(text: str) -> str:
    """A file-name-safe form of a dataset name, path or method name (``recbole:BPR`` -> ``recbole-BPR``)."""
    text = Path(text).name if ("/" in text or "\\" in text) else text
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "unnamed"


def record_path(results_dir: Path, config: RunConfig, data_identity: str | None = None) -> Path:
    """``data_identity`` (a directory dataset's content hash) replaces the dataset string in the hash, so the
    same ``--dataset ./foo`` from two places, or after its files changed, is another record."""
    key = config.hash() if data_identity is None else config.with_updates(dataset=data_identity).hash()
    name = f"{slug(config.method)}-{key}-s{config.seed}.json"
    return Path(results_dir) / slug(config.dataset) / slug(config.task) / name


def predictions_path(record_file: Path) -> Path:
    return record_file.with_name(record_file.name.removesuffix(".json") + PREDICTIONS_SUFFIX)


def failed_path(record_file: Path) -> Path:
    """Where a failed re-run of an ``ok`` record is written (the good record stays where it is)."""
    return record_file.with_name(record_file.name.removesuffix(".json") + FAILED_SUFFIX)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def row_keys_sha256(predictions: pd.DataFrame) -> str:
    """A checksum of which rows the predictions are for (user, item, row, template, labels...): every column
    except the predicted ones, in row order."""
    from benchbed.data.schema import frame_hash

    keys = [c for c in predictions.columns if c not in PREDICTED_COLUMNS]
    return frame_hash(predictions[keys].reset_index(drop=True))


def predictions_check(predictions: pd.DataFrame, file: Path | None = None) -> dict[str, object]:
    """What a record stores about its predictions at write time; ``rescore`` compares it."""
    check: dict[str, object] = {"rows": int(len(predictions)), "keys_sha256": row_keys_sha256(predictions)}
    if file is not None:
        check["file_sha256"] = file_sha256(file)
    return check


def write_record(path: Path, record: RunRecord, predictions: pd.DataFrame | None = None) -> Path:
    """Write predictions (if any) then the record, each atomically; returns the record path."""
    path = Path(path)
    if predictions is not None:
        pred_file = predictions_path(path)
        write_with(pred_file, lambda tmp: predictions.to_parquet(tmp, index=False))
        record.predictions = pred_file.name
        record.predictions_check = predictions_check(predictions, pred_file)
    write_text_atomic(path, record.to_json())
    return path


def coverage_problem(record: RunRecord, predictions: pd.DataFrame) -> str | None:
    """Why ``predictions`` are not the rows ``record`` was computed on (None: they are).

    Schema-2 records compare the stored row count and row-key checksum; older ones have only their
    per-subset counts, which :func:`benchbed.cli.run.rescore_command` compares after recomputing.
    """
    check = record.predictions_check
    if not check:
        return None if len(predictions) else "the predictions file has no rows"
    if len(predictions) != check.get("rows"):
        return f"the predictions have {len(predictions)} row(s), the record was computed on {check['rows']}"
    if not any(c in predictions.columns for c in PREDICTED_COLUMNS):
        return "the predictions hold no predicted column (score, prob or ranked)"
    if row_keys_sha256(predictions) != check.get("keys_sha256"):
        return "the predictions' row keys (users, items, labels...) are not those the record was computed on"
    return None


def check_writable(directory: Path, what: str = "results directory") -> None:
    """Fail before any work when ``directory`` cannot take a record (a file in the way, read-only, full).

    Creates the directory and a scratch file in it; the error names the path and what to do.
    """
    directory = Path(directory)
    blocker = next((p for p in (directory, *directory.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise BenchbedError(
            f"{what} {directory}: {blocker} is a file, not a directory; pass another --results-dir "
            "or move the file"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".write-test.", dir=directory)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        hint = "free some space" if exc.errno == errno.ENOSPC else "make it writable or pass another path"
        raise BenchbedError(f"{what} {directory}: not writable ({exc.strerror}); {hint}") from exc


def predictions_file(record_file: Path, record: RunRecord) -> Path:
    if not record.predictions:
        raise RecordError(f"{record_file}: the run saved no predictions (save_predictions was off)")
    return Path(record_file).with_name(record.predictions)


def read_predictions(record_file: Path, record: RunRecord) -> pd.DataFrame:
    if not record.predictions:
        raise RecordError(f"{record_file}: the run saved no predictions (save_predictions was off)")
    pred_file = Path(record_file).with_name(record.predictions)
    if not pred_file.exists():
        raise RecordError(f"{record_file}: predictions file {pred_file.name} is missing")
    try:
        return pd.read_parquet(pred_file)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise RecordError(f"{pred_file}: unreadable parquet ({exc.__class__.__name__})") from exc


@dataclass
class LoadedRecords:
    """Records read from a tree, plus every file that was skipped and why (nothing is dropped silently)."""

    records: list[tuple[Path, RunRecord]]
    skipped: list[tuple[Path, str]]


TUNING_DIR = "tune"  # <results>/tune/ holds grid-search reports (baselines.tune), which are not run records


def _is_record_candidate(root: Path, file: Path) -> bool:
    """Hidden temp files and the tuning reports under ``<root>/tune/`` are not records."""
    rel = file.relative_to(root).parts
    return not file.name.startswith(".") and rel[0] != TUNING_DIR


def load_records(paths: Iterable[Path]) -> LoadedRecords:
    """Read record files and directories (searched recursively for ``*.json``)."""
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*.json") if _is_record_candidate(p, f)))
        elif p.exists():
            files.append(p)
        else:
            raise BenchbedError(f"{p}: no such file or directory")
    out = LoadedRecords([], [])
    for f in files:
        try:
            out.records.append((f, read_record(f)))
        except RecordError as exc:
            out.skipped.append((f, str(exc).removeprefix(f"{f}: ")))
    return out
