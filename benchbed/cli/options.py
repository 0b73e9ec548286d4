"""Typer options that several commands take with one meaning (run, plan, tune; leaderboard, report): declared
once here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

MethodParams = Annotated[
    list[str] | None, typer.Option("--param", "-p", help="Method param KEY=VALUE (repeatable).")
]
SplitParams = Annotated[
    list[str] | None, typer.Option("--split-param", help="Split param KEY=VALUE (repeatable).")
]
TaskParams = Annotated[
    list[str] | None, typer.Option("--task-param", help="Task param KEY=VALUE (repeatable).")
]
Seed = Annotated[int | None, typer.Option("--seed", "-s", help="Seed [0].")]
ConfigFile = Annotated[Path | None, typer.Option("--config", "-c", help="YAML file of RunConfig keys.")]


def task_names() -> str:
    """Every registered task for help texts (from the registry, so a new task is listed without an edit)."""
    import benchbed.tasks  # noqa: F401 - registers the built-in tasks
    from benchbed.registry import TASKS

    return " | ".join(sorted(TASKS))


Task = Annotated[str | None, typer.Option("--task", "-t", help=f"{task_names()} [ctr].")]
Tuning = Annotated[str | None, typer.Option("--tuning", help="collm: default | t1 | t2 | t3.")]
RecordPaths = Annotated[
    list[Path] | None, typer.Argument(help="Record files or directories [the results dir].")
]
ReferencesFile = Annotated[
    Path | None, typer.Option("--references", help="Paper numbers file [benchbed's reference.yaml].")
]
