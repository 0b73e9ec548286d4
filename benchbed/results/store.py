"""Where records live and how they are written and read back.

A record's path is a function of its RunConfig (``<results>/<dataset>/<task>/<method>-<confighash>-s<seed>``),
so re-running a config finds its own earlier result. Predictions are written before the JSON, both atomically:
a record that exists always points at complete predictions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchbed.atomic import write_text_atomic, write_with
from benchbed.config import RunConfig
from benchbed.errors import BenchbedError
from benchbed.results.record import RecordError, RunRecord, read_record

PREDICTIONS_SUFFIX = ".predictions.parquet"


def slug(text: str) -> str:
    """A file-name-safe form of a dataset name, path or method name (``recbole:BPR`` -> ``recbole-BPR``)."""
    text = Path(text).name if ("/" in text or "\\" in text) else text
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "unnamed"


def record_path(results_dir: Path, config: RunConfig) -> Path:
    name = f"{slug(config.method)}-{config.hash()}-s{config.seed}.json"
    return Path(results_dir) / slug(config.dataset) / slug(config.task) / name


def predictions_path(record_file: Path) -> Path:
    return record_file.with_name(record_file.name.removesuffix(".json") + PREDICTIONS_SUFFIX)


def write_record(path: Path, record: RunRecord, predictions: pd.DataFrame | None = None) -> Path:
    """Write predictions (if any) then the record, each atomically; returns the record path."""
    path = Path(path)
    if predictions is not None:
        pred_file = predictions_path(path)
        write_with(pred_file, lambda tmp: predictions.to_parquet(tmp, index=False))
        record.predictions = pred_file.name
    write_text_atomic(path, record.to_json())
    return path


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
