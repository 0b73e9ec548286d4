"""Typer options that several commands take with one meaning (``run``, ``tune``): declared once here."""

from __future__ import annotations

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
