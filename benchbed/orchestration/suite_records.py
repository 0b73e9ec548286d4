"""Which records a suite's runs produced, by what the runs state rather than by config hash.

A record is named by the hash of the RunConfig *as given* (``config_hash``), so a suite that now spells out
``device: cpu`` or a parameter at its default value hashes differently from the ``benchbed run`` that
produced the record (issue 21: ``leaderboard --suite benchmarks/openp5.yaml`` found nothing on a fresh
clone). Here a record belongs to a suite run when method, dataset, task and seed agree and every option that
either side states explicitly has the same effective value on both: the suite's value (or the current
default when it states none) against what the record ran with (its resolved parameters, ``cost.device``).
Options neither side states are not compared: both took the default of their day, so a default that changed
since does not hide the records.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from benchbed.config import RunConfig
from benchbed.results.record import RunRecord


def _current_defaults(config: RunConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """(method defaults on the task, task defaults) from the registries; {} when unknown."""
    method: dict[str, Any] = {}
    task: dict[str, Any] = {}
    try:
        from benchbed.methods import method_defaults

        method = method_defaults(config.method, config.task)
    except Exception:  # a method from a plugin that is not installed: compare stated options only
        pass
    try:
        from benchbed.tasks import build_task

        task = dict(build_task(config.task, {}).params)
    except Exception:
        pass
    return method, task


def _params_agree(
    stated: dict[str, Any],
    defaults: dict[str, Any],
    record_given: dict[str, Any],
    record_used: dict[str, Any],
) -> bool:
    _missing = object()
    for key in set(stated) | set(record_given):
        ours = stated.get(key, defaults.get(key, _missing))
        theirs = record_used.get(key, record_given.get(key, _missing))
        if ours is _missing or theirs is _missing or ours != theirs:
            return False
    return True


def _effective(record: RunRecord, key: str) -> Any:
    """What a record ran on: ``cost.device`` / ``cost.dtype`` (set by the runner), else its config's."""
    return record.cost.get(key) or (record.backbone or {}).get(key) or record.config.get(key)


def produced_by(
    config: RunConfig, record: RunRecord, defaults: tuple[dict[str, Any], dict[str, Any]]
) -> bool:
    """Whether ``record`` is the result of the suite run ``config`` (see the module docstring)."""
    given = record.config
    if (record.method, record.dataset, record.task, record.seed) != (
        config.method,
        config.dataset,
        config.task,
        config.seed,
    ):
        return False
    if config.split is not None and config.split != record.split_protocol:
        return False
    for key in ("device", "dtype"):
        wanted = getattr(config, key)
        if wanted is not None and wanted != given.get(key) and wanted != _effective(record, key):
            return False
    method_defaults, task_defaults = defaults
    return (
        _params_agree(
            config.method_params, method_defaults, given.get("method_params") or {}, record.method_params
        )
        and _params_agree(
            config.task_params, task_defaults, given.get("task_params") or {}, record.task_params
        )
        and _params_agree(config.split_params, {}, given.get("split_params") or {}, record.split_params)
    )


def suite_records(runs: Sequence[RunConfig], records: Iterable[RunRecord]) -> list[RunRecord]:
    """The records any of ``runs`` produced, in their input order."""
    resolved = [(config, _current_defaults(config)) for config in runs]
    return [rec for rec in records if any(produced_by(c, rec, d) for c, d in resolved)]
