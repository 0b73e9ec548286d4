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
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchbed.atomic import write_text_atomic, write_with
from benchbed.config import RunConfig
from benchbed.errors import BenchbedError
from benchbed.results.record import RecordError, RunRecord, read_record

PREDICTIONS_SUFFIX = ".predictions.parquet"
FAILED_SUFFIX = ".failed.json"
# columns a method produced; every other column of a predictions frame is a row key or ground truth
PREDICTED_COLUMNS = ("score", "prob", "ranked")
# what makes a frame predictions at all: item-to-text rows hold the generated text (and its per-row scores,
# which rescore aggregates); their row-key checksum keeps counting it as a key, as it always has
OUTPUT_COLUMNS = (*PREDICTED_COLUMNS, "generated")
# the parquet metadata key under which predictions carry the identity of the run that made them
IDENTITY_KEY = b"benchbed.run"


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


def row_keys_sha256(predictions: pd.DataFrame, *, as_read: bool = False) -> str:
    """A checksum of which rows the predictions are for (user, item, row, template, labels...): every column
    except the predicted ones, in row order.

    A list cell (item-to-text attributes) comes back from parquet as an array, which prints otherwise, so it
    is hashed as the list it was written as. Records written before that rule hashed the cells as they were
    (top-K positives were arrays on both sides); ``as_read=True`` gives that checksum, which
    :func:`coverage_problem` accepts too, so committed records stay verifiable."""
    from benchbed.data.schema import frame_hash

    keys = predictions[[c for c in predictions.columns if c not in PREDICTED_COLUMNS]].reset_index(drop=True)
    if not as_read:
        for col in keys.columns:
            if keys[col].dtype == object:
                keys[col] = [v.tolist() if isinstance(v, np.ndarray) else v for v in keys[col]]
    return frame_hash(keys)


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
        write_with(pred_file, lambda tmp: write_predictions(tmp, predictions, run_identity(record)))
        record.predictions = pred_file.name
        record.predictions_check = {**predictions_check(predictions, pred_file), "run": run_identity(record)}
    write_text_atomic(path, record.to_json())
    return path


def run_identity(record: RunRecord) -> dict[str, str]:
    """Which run made a predictions file: its id, config hash and method."""
    return {"run_id": record.run_id, "config_hash": record.config_hash, "method": record.method}


def write_predictions(path: Path, predictions: pd.DataFrame, identity: dict[str, str]) -> None:
    """Parquet with the run's identity in the file's metadata, so predictions copied from another run
    (another method on the same rows) are told apart from this run's whatever their rows say."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(predictions, preserve_index=False)
    meta = {**(table.schema.metadata or {}), IDENTITY_KEY: json.dumps(identity, sort_keys=True).encode()}
    pq.write_table(table.replace_schema_metadata(meta), path)


def predictions_identity(path: Path) -> dict[str, str] | None:
    """The run identity a predictions file carries (None: written before identities, or by other tools)."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
        raw = meta.get(IDENTITY_KEY)
        value = json.loads(raw) if raw else None
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise RecordError(f"{path}: unreadable parquet ({exc.__class__.__name__})") from exc
    return value if isinstance(value, dict) else None


def identity_problem(record: RunRecord, record_file: Path) -> str | None:
    """Why the predictions beside ``record`` were not made by its run (None: they were, or cannot be told)."""
    expected = (record.predictions_check or {}).get("run")
    found = predictions_identity(predictions_file(record_file, record))
    # a record written before identities, or a file rewritten without them (pandas drops the metadata): only
    # the row checks apply, and the file's changed sha256 asks for --accept-changes
    if expected is None or found is None:
        return None
    if found != expected:
        return (
            f"the predictions were made by another run (method {found.get('method')!r}, "
            f"run {found.get('run_id')}), "
            f"not this record's (method {expected.get('method')!r}, run {expected.get('run_id')})"
        )
    return None


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
    if not any(c in predictions.columns for c in OUTPUT_COLUMNS):
        return "the predictions hold no predicted column (score, prob, ranked or generated)"
    stored = check.get("keys_sha256")
    if stored not in (row_keys_sha256(predictions), row_keys_sha256(predictions, as_read=True)):
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


def no_predictions_reason(record_file: Path, record: RunRecord) -> str:
    """Why a record has no predictions: a run that did not finish saves none; else the option was off."""
    if record.status != "ok":
        return (
            f"{record_file}: the run did not finish ({record.error or record.status}), so it saved no "
            "predictions; re-run the config"
        )
    if not record.config.get("save_predictions", True):
        return f"{record_file}: the run saved no predictions (save_predictions was off)"
    return f"{record_file}: the record names no predictions file"


def predictions_file(record_file: Path, record: RunRecord) -> Path:
    if not record.predictions:
        raise RecordError(no_predictions_reason(record_file, record))
    return Path(record_file).with_name(record.predictions)


def read_predictions(record_file: Path, record: RunRecord) -> pd.DataFrame:
    if not record.predictions:
        raise RecordError(no_predictions_reason(record_file, record))
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
