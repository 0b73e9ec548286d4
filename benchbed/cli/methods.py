"""CLI: ``benchbed methods``: what can be run, on which tasks, with which parameters."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table


def _summary(cls: Any) -> str:
    """First docstring line, without Sphinx markup (``x`` and :class:`x` print as x)."""
    doc = (cls.__doc__ or "").strip()
    line = doc.splitlines()[0] if doc else ""
    return re.sub(r":\w+:`([^`]*)`", r"\1", line).replace("``", "")


def task_sources(cls: Any) -> dict[str, str]:
    """Where each task's defaults come from (``task_defaults_source``), for every task that has some."""
    sources = getattr(cls, "task_defaults_source", {}) or {}
    return {
        task: sources.get(task, "the method's task_defaults") for task in getattr(cls, "task_defaults", {})
    }


def parameter_table(cls: Any) -> Table:
    """Parameter, its default, one column per task whose defaults differ (blank = the default applies), and
    what it accepts (``benchbed.params``: the same check ``benchbed run`` applies)."""
    from benchbed.params import describe

    defaults = getattr(cls, "defaults", {})
    per_task = getattr(cls, "task_defaults", {}) or {}
    accepts = describe(defaults, getattr(cls, "param_specs", None))
    table = Table()
    table.add_column("parameter")
    table.add_column("default")
    for task in per_task:
        table.add_column(f"on {task}")
    table.add_column("accepts")
    for key, value in sorted(defaults.items()):
        cells = [
            repr(per_task[t][key]) if key in per_task[t] and per_task[t][key] != value else ""
            for t in per_task
        ]
        table.add_row(key, repr(value), *cells, accepts.get(key, ""))
    return table


def card_lines(cls: Any) -> list[str]:
    """The method's card (``benchbed.cards``) as ``label: text`` lines; none when it has no card."""
    from benchbed.cards import card_of

    card = card_of(cls)
    return [f"{label}: {text}" for label, text in card.facts().items()] if card else []


def readme_table() -> str:
    """README's method table, from the cards of the built-in methods (plugins left out) that have one
    (README is checked against it by tests/conformance/test_cards.py)."""
    from benchbed.cards import card_of, markdown_table
    from benchbed.methods import BUILTIN_METHODS, get_method_class

    # the built-ins only: plugins (and methods a test registers) are not the package's table
    rows = [(n, card_of(get_method_class(n))) for n in sorted(BUILTIN_METHODS)]
    return markdown_table([(n, c) for n, c in rows if c is not None])


def methods_command(
    name: Annotated[str | None, typer.Argument(help="Show one method's parameters and defaults.")] = None,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print README's method table (from the method cards).")
    ] = False,
) -> None:
    """List registered methods (built-in and plugins) with their tasks; with NAME, its card and parameters."""
    import benchbed.methods  # noqa: F401 - registers the built-ins
    from benchbed.methods import get_method_class
    from benchbed.registry import METHODS

    console = Console()
    if markdown:
        print(readme_table())
        return
    if name is not None:
        cls = get_method_class(name)
        console.print(f"[bold]{name}[/]: {_summary(cls)}", highlight=False)
        for line in card_lines(cls):
            console.print(line, highlight=False, soft_wrap=True)
        console.print(parameter_table(cls))
        console.print(f"tasks: {', '.join(sorted(getattr(cls, 'tasks', ()))) or '-'}")
        for task, source in task_sources(cls).items():
            console.print(f"on {task}: defaults from {source}", highlight=False, soft_wrap=True)
        return
    table = Table(title="methods (benchbed run --method NAME; recbole:<Model> for any RecBole model)")
    for col in ("method", "tasks", "injection", "description"):
        table.add_column(col)
    for method in METHODS.names():
        try:
            cls = METHODS.get(method)
        except Exception as exc:  # a method whose module or dependency is missing stays listed, with why
            table.add_row(
                method,
                "",
                "",
                f"[red]unavailable[/]: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            )
            continue
        plugin = " (plugin)" if METHODS.meta(method).get("plugin") else ""
        card = getattr(cls, "card", None)
        injection = card.injection if card is not None else ""
        table.add_row(method + plugin, ", ".join(sorted(getattr(cls, "tasks", ()))), injection, _summary(cls))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("methods")(methods_command)
