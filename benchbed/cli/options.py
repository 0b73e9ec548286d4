"""Typer options that several commands (run, plan, tune) take with one meaning: declared once here."""

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
