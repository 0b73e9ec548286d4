"""The run record's JSON Schema, generated from :class:`RunRecord`'s type hints and the descriptions below.

The checked-in copy (``benchbed/results/record.schema.json``) is what other tools validate records against;
``tests/test_report.py`` fails when it and the code drift (a field added, a type changed, a field without a
description). Regenerate with ``python -m benchbed.report.schema``.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Union

from benchbed.results.record import _REQUIRED, READABLE_SCHEMAS, STATUSES, RunRecord

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "results" / "record.schema.json"

DESCRIPTIONS: dict[str, str] = {
    "run_id": "Random id of this run (12 hex digits); two runs of one config have different ids.",
    "created": "When the record was written, ISO 8601 with time zone (UTC).",
    "config": "The RunConfig as given (method, dataset, task, split, *_params, seed, device, dtype, "
    "save_predictions); its hash names the file.",
    "config_hash": "Hash of `config` without save_predictions: the record's file name is "
    "`<method>-<config_hash>-s<seed>.json`.",
    "method": "Method name from the registry (`benchbed methods`), or `recbole:<Model>`.",
    "method_params": "The method's full parameters after defaults: what makes two rows comparable.",
    "params_hash": "Hash of `method_params`: one leaderboard row per (method, params_hash).",
    "dataset": "Catalog name (ml-100k) or a dataset directory as given.",
    "task": "Task name: ctr, topk, generative or item2text.",
    "seed": "The run's seed (0 .. 2**63-1); seeds of one config are aggregated on the board.",
    "status": "`ok`, or `failed` (then `error` says why and there are no metrics).",
    "error": "One-line reason of a failed run; null when ok.",
    "schema_version": "Record format version; readers refuse a newer one.",
    "benchbed_version": "benchbed's package version that wrote the record.",
    "git_sha": "Commit of the benchbed checkout that wrote the record (null outside a git checkout).",
    "backbone": "The LLM backbone (id, kind, revision, parameters, pretrained, dtype, device, LoRA "
    "targets); null for methods without one. `pretrained: false` marks a random-init row (°).",
    "dataset_hash": "Content hash of the dataset's interactions: records on other data never aggregate.",
    "split_protocol": "Split protocol name (temporal-window, leave-one-out, random-per-user, presplit).",
    "split_params": "The split's full parameters after defaults.",
    "split_hash": "Hash of the split itself (which rows are train/valid/test).",
    "task_params": "The task's full parameters after defaults (ks, metrics, candidates, sub_task, ...).",
    "templates": "Prompt template set of a prompt method: {set, hash}; null otherwise.",
    "metrics": "{subset: {metric_key: value}}; subsets all/warm/cold (prompt methods also seen/unseen/"
    "unseen:warm/unseen:cold; item2text per sub-task); null = undefined on this subset.",
    "counts": "{subset: {rows, users, positives, ...}}: what each subset's metrics were computed on.",
    "cost": "What the run cost: train_s, eval_s, prepare_s (seconds), peak_memory_mb, trainable_params, "
    "device, dtype.",
    "info": "Method-specific details: budget, stages, training history, time_capped (a wall-clock cap "
    "stopped training: the numbers depend on machine load).",
    "predictions": "File name of the per-row predictions parquet next to the record; null if not saved.",
    "rescored": "Set by `benchbed rescore --write`: when and what changed.",
    "environment": "Library versions, python, platform, CUDA/cuDNN, GPU, thread counts and the code's "
    "commit (schema 2).",
    "dataset_path": "A directory dataset's resolved absolute path: a label only, identity is dataset_hash "
    "(schema 2).",
    "predictions_check": "{rows, keys_sha256, file_sha256} of the predictions, so rescore can refuse "
    "predictions that are not this record's rows (schema 2).",
}

_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def type_schema(hint: Any) -> dict[str, Any]:
    """A type annotation as a JSON Schema fragment (the subset RunRecord uses)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [type_schema(arg) for arg in typing.get_args(hint)]
        if all(set(o) == {"type"} and isinstance(o["type"], str) for o in options):
            return {"type": [o["type"] for o in options]}
        return {"anyOf": options}
    if hint is Any:
        return {}
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    if origin is dict:
        _, value = typing.get_args(hint) or (str, Any)
        return {"type": "object", "additionalProperties": type_schema(value)}
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        return {"type": "array", "items": type_schema(item)}
    raise TypeError(f"no JSON Schema for {hint!r}")


def record_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a run record, field order as in :class:`RunRecord`."""
    hints = typing.get_type_hints(RunRecord)
    properties: dict[str, Any] = {}
    for f in fields(RunRecord):
        if f.name not in DESCRIPTIONS:
            raise KeyError(f"RunRecord.{f.name} has no description in benchbed/report/schema.py")
        prop = {"description": DESCRIPTIONS[f.name], **type_schema(hints[f.name])}
        if f.default is not MISSING and f.default is not None and not isinstance(f.default, dict):
            prop["default"] = f.default
        properties[f.name] = prop
    properties["status"]["enum"] = list(STATUSES)
    properties["schema_version"]["enum"] = list(READABLE_SCHEMAS)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "benchbed run record",
        "description": "One run's identity, provenance, metrics and cost (benchbed/results/record.py).",
        "type": "object",
        "required": list(_REQUIRED),
        "additionalProperties": False,
        "properties": properties,
    }


def schema_text() -> str:
    return json.dumps(record_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    """``python -m benchbed.report.schema [--check]``: write the checked-in schema, or check it."""
    from benchbed.atomic import write_text_atomic

    if "--check" in argv:
        current = SCHEMA_PATH.read_text(encoding="utf-8") if SCHEMA_PATH.exists() else ""
        if current != schema_text():
            print(f"{SCHEMA_PATH}: out of date; run python -m benchbed.report.schema", file=sys.stderr)
            return 1
        return 0
    write_text_atomic(SCHEMA_PATH, schema_text())
    print(f"written {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
