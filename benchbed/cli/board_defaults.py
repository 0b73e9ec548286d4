"""Registry defaults for leaderboard titles, looked up here in the CLI layer (the leaderboard builder is
pure and gets them as a callable, so ``results/`` imports neither tasks nor data)."""

from __future__ import annotations

from typing import Any


def registry_defaults(dataset: str, task: str, protocol: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The split protocol's defaults for this dataset and the task's defaults, from the registries ({} when
    unknown), so a board's title can show only what a run changed."""
    split_defaults: dict[str, Any] = {}
    task_defaults: dict[str, Any] = {}
    try:
        from benchbed.data.catalog import get_spec
        from benchbed.registry import SPLITS

        proto: Any = SPLITS.get(protocol)
        split_defaults = proto.resolve(get_spec(dataset).split_defaults(protocol))
    except Exception:  # a dataset directory that is gone, a protocol from a plugin not installed, ...
        pass
    try:
        from benchbed.tasks import build_task

        task_defaults = dict(build_task(task, {}).params)
    except Exception:
        pass
    return split_defaults, task_defaults
