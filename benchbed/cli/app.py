"""The ``benchbed`` command: global options here, each command group in its own module."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from benchbed.errors import BenchbedError
from benchbed.settings import Settings, set_settings

app = typer.Typer(
    name="benchbed",
    help="Benchmark recommenders that feed collaborative-filtering embeddings into LLMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


@app.callback()
def main_options(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", envvar="BENCHBED_DATA", help="Where raw dataset files live.")
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir", envvar="BENCHBED_CACHE", help="Processed data, splits, embeddings, checkpoints."
        ),
    ] = None,
    results_dir: Annotated[
        Path | None,
        typer.Option("--results-dir", envvar="BENCHBED_RESULTS", help="Where run records are written/read."),
    ] = None,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More output (repeatable).")
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and final tables.")] = False,
) -> None:
    defaults = Settings.from_env()
    settings = Settings(
        data_dir=data_dir or defaults.data_dir,
        cache_dir=cache_dir or defaults.cache_dir,
        results_dir=results_dir or defaults.results_dir,
        verbosity=-1 if quiet else verbose,
    )
    set_settings(settings)
    logging.basicConfig(
        level=logging.DEBUG if verbose > 1 else logging.WARNING, format="%(name)s: %(message)s"
    )


def _register_commands() -> None:
    from benchbed.cli import check, datasets, leaderboard, methods, run, tune

    for module in (datasets, methods, run, leaderboard, check, tune):
        module.register(app)


_register_commands()


def main() -> None:
    """Console-script entry: BenchbedError becomes one line on stderr and its exit code."""
    try:
        rc = app(standalone_mode=False)  # typer.Exit(n) comes back as a return value in this mode
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except BenchbedError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors come through here in non-standalone mode
        # typer >= 0.29 vendors click (typer._click), whose exceptions are not click.ClickException
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        raise


if __name__ == "__main__":
    main()
