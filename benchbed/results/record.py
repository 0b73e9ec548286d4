"""The run record: everything needed to trust, compare and re-derive one result, as versioned JSON.

A record is written for every run, failed ones included, so a leaderboard can say what ran and what broke.
Readers check ``schema_version`` first: a record from a newer benchbed is refused with a clear message rather
than misread (and never overwritten: :class:`NewerSchemaError`). Every field is type-checked on read, so a
hand-edited ``"seed": "abc"`` is one skipped file on the leaderboard, not a crash.

Schema 2 (this issue's "records you can trust") added ``environment`` (library versions, threads, GPU),
``dataset_path`` (a directory dataset's resolved path, a label only: identity is ``dataset_hash``) and
``predictions_check`` (row count, row-key checksum and file checksum of the predictions, so ``rescore``
can refuse predictions that do not cover the record's rows). Schema-1 records are read as they are.
"""

from __future__ import annotations

import json
import math
import types
import typing
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Union

from benchbed.errors import BenchbedError

SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)  # 1: before environment / dataset_path / predictions_check
STATUSES = ("ok", "failed")


class RecordError(BenchbedError):
    """A record file that cannot be read as a run record (corrupt JSON, unknown schema, missing field)."""


class NewerSchemaError(RecordError):
    """A record of a newer benchbed: readable by that one, so this one must neither misread nor replace it."""


@dataclass
class RunRecord:
    """One run's identity, provenance, metrics and cost (see DESIGN.md "Core contracts").

    ``metrics`` is ``{subset: {flat_metric_key: value}}`` (subsets ``all``/``warm``/``cold``, for prompt
    methods also ``seen``/``unseen``/``unseen:warm``/``unseen:cold``); ``counts`` is ``{subset: {"rows": n,
    "users": n}}``. ``config`` is the RunConfig as given (its hash names the file); ``method_params`` and
    ``task_params`` are the full parameter sets after defaults, which is what makes two rows comparable.
    """

    run_id: str
    created: str
    config: dict[str, Any]
    config_hash: str
    method: str
    method_params: dict[str, Any]
    params_hash: str
    dataset: str
    task: str
    seed: int
    status: str = "ok"
    error: str | None = None
    schema_version: int = SCHEMA_VERSION
    benchbed_version: str = ""
    git_sha: str | None = None
    backbone: dict[str, Any] | None = None
    dataset_hash: str | None = None
    split_protocol: str | None = None
    split_params: dict[str, Any] = field(default_factory=dict)
    split_hash: str | None = None
    task_params: dict[str, Any] = field(default_factory=dict)
    templates: dict[str, Any] | None = None  # {"set": name, "hash": h} from the method, if it uses prompts
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    predictions: str | None = None  # file name of the per-row predictions parquet, next to the record
    rescored: dict[str, Any] | None = None  # set by `benchbed rescore --write`
    # schema 2
    environment: dict[str, Any] | None = None  # benchbed.results.environment.collect()
    dataset_path: str | None = None  # a directory dataset's resolved absolute path (a label, not identity)
    # {"rows": n, "keys_sha256": ..., "file_sha256": ...}: benchbed.results.store.predictions_check
    predictions_check: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["metrics"] = {s: {k: _json_float(v) for k, v in m.items()} for s, m in self.metrics.items()}
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, raw: Any, source: str = "record") -> RunRecord:
        """Validate and build; every problem is a one-line ``RecordError`` naming ``source``."""
        if not isinstance(raw, dict):
            raise RecordError(f"{source}: expected a JSON object, got {type(raw).__name__}")
        version = raw.get("schema_version")
        if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
            raise NewerSchemaError(
                f"{source}: unknown schema_version {version} (newer than this benchbed reads, "
                f"{SCHEMA_VERSION}); upgrade benchbed to read it"
            )
        if version not in READABLE_SCHEMAS or isinstance(version, bool):
            raise RecordError(
                f"{source}: unknown schema_version {version!r} (this benchbed reads {SCHEMA_VERSION})"
            )
        unknown, missing = unknown_and_missing(raw, {f.name for f in fields(cls)}, _REQUIRED)
        if unknown:
            raise RecordError(f"{source}: unknown field(s) {unknown}")
        if missing:
            raise RecordError(f"{source}: missing field(s) {missing}")
        if raw.get("status", "ok") not in STATUSES:
            raise RecordError(f"{source}: status must be one of {list(STATUSES)}, got {raw['status']!r}")
        metrics = raw.get("metrics", {})
        if not isinstance(metrics, dict) or not all(isinstance(v, dict) for v in metrics.values()):
            raise RecordError(f"{source}: 'metrics' must map subset -> {{metric: value}}")
        for subset, values in metrics.items():
            for key, value in values.items():
                if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
                    raise RecordError(f"{source}: metrics[{subset!r}][{key!r}] is not a number: {value!r}")
        for f in fields(cls):
            if f.name in raw and not _has_type(raw[f.name], _FIELD_TYPES[f.name]):
                raise RecordError(
                    f"{source}: field {f.name!r} must be {_describe(_FIELD_TYPES[f.name])}, "
                    f"got {raw[f.name]!r:.60}"
                )
        return cls(**raw)


def unknown_and_missing(
    given: Mapping[str, Any], known: Collection[str], required: Iterable[str]
) -> tuple[list[str], list[str]]:
    """The keys of ``given`` that are not ``known`` (sorted) and the ``required`` keys it lacks (in order)."""
    return sorted(set(given) - set(known)), [k for k in required if k not in given]


_REQUIRED = (
    "run_id",
    "created",
    "config",
    "config_hash",
    "method",
    "method_params",
    "params_hash",
    "dataset",
    "task",
    "seed",
)


_FIELD_TYPES: dict[str, Any] = typing.get_type_hints(RunRecord)
_NAMES = {str: "a string", int: "an integer", float: "a number", dict: "an object", list: "a list"}


def _has_type(value: Any, hint: Any) -> bool:
    """``value`` (parsed JSON) fits the field annotation ``hint``: scalars exactly, mappings one level deep
    (metrics' numbers get their own check above), which is what the leaderboard and the runner rely on."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_has_type(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    base = origin or hint
    if base is dict and isinstance(value, dict):  # one level down: counts/metrics map subset -> mapping
        args = typing.get_args(hint)
        inner = args[1] if len(args) == 2 else Any
        return all(isinstance(k, str) for k in value) and (
            typing.get_origin(inner) is not dict or all(isinstance(v, dict) for v in value.values())
        )
    if base is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, base)


def _describe(hint: Any) -> str:
    args = typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)
    names = [_NAMES.get(typing.get_origin(a) or a, "null") for a in args]
    return " or ".join(dict.fromkeys(names))


def _json_float(value: float | None) -> float | None:
    """NaN (an undefined metric) is stored as null: JSON has no NaN and null reads as an empty cell."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def read_record(path: Path) -> RunRecord:
    """Load one record file with a one-line error on unreadable JSON or a schema mismatch."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RecordError(f"{path}: no such record") from exc
    except OSError as exc:  # a directory named *.json, no permission
        raise RecordError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordError(
            f"{path}: corrupt JSON ({exc.__class__.__name__}: {str(exc).splitlines()[0]})"
        ) from exc
    return RunRecord.from_dict(raw, source=str(path))
