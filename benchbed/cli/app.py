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
    # help texts write defaults as "[ml-100k]": plain text, so Rich markup does not eat them as style tags
    rich_markup_mode=None,
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
    from benchbed.cli import check, compare, datasets, leaderboard, methods, report, run, sweep, tune

    for module in (datasets, methods, run, leaderboard, compare, check, tune, sweep, report):
        module.register(app)
    __import__("benchbed.cli.plan", fromlist=["register"]).register(app)  # benchbed plan (issue 24)


_register_commands()


def _fail(message: str, code: int, exc: BaseException) -> None:
    """One line on stderr and exit ``code``; with ``-v`` the traceback first (for a bug report)."""
    from benchbed.settings import get_settings

    if get_settings().verbosity > 0:
        import traceback

        err_console.print("".join(traceback.format_exception(exc)), highlight=False, markup=False)
    from rich.markup import escape

    # escaped: a message may hold brackets (pip install 'benchbed[ray]') that rich would take as markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(code)


def os_error_message(exc: OSError) -> str:
    """An environment fault (read-only dir, full disk, missing file) as one line naming the path."""
    import errno

    where = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    text = str(exc).strip()
    what = exc.strerror or (text.splitlines()[0] if text else type(exc).__name__)
    hints = {
        errno.ENOSPC: "free some space or point --cache-dir / --results-dir elsewhere",
        errno.EDQUOT: "free some space or point --cache-dir / --results-dir elsewhere",
        errno.EACCES: "make it writable or point --cache-dir / --results-dir elsewhere",
        errno.EROFS: "it is on a read-only file system; point --cache-dir / --results-dir elsewhere",
        errno.EPERM: "make it writable or point --cache-dir / --results-dir elsewhere",
        errno.ENOTDIR: "a file is in the way of a directory; move it or choose another path",
    }
    hint = hints.get(exc.errno or -1, "check the path and try again (-v shows the traceback)")
    return f"{where + ': ' if where else ''}{what}; {hint}"


def main() -> None:
    """Console-script entry: BenchbedError becomes one line on stderr and its exit code (2 for usage errors),
    an environment fault (OSError: read-only dir, full disk) one line naming the path; ``-v`` adds the
    traceback. Anything else is a bug and keeps its traceback."""
    from benchbed.orchestration import signals

    signals.install()  # SIGTERM (Slurm, CI, timeout) and SIGHUP end a run as Ctrl-C does: a failure record
    try:
        from benchbed.cli.argv import hoist_global_options

        commands = {c.name for c in app.registered_commands if c.name} | {
            g.name for g in app.registered_groups if g.name
        }
        sys.argv[1:] = hoist_global_options(sys.argv[1:], commands)  # global options after the command too
        rc = app(standalone_mode=False)  # typer.Exit(n) comes back as a return value in this mode
        if rc == 130:  # typer turns Ctrl-C (KeyboardInterrupt) into a silent exit code 130
            err_console.print(f"[bold red]error:[/] {signals.message()}", highlight=False)
            rc = signals.exit_code()  # 128 + signal number: 143 for SIGTERM, 129 for SIGHUP
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except BenchbedError as exc:
        _fail(str(exc), exc.exit_code, exc)
    except OSError as exc:
        _fail(os_error_message(exc), 1, exc)
    except MemoryError as exc:
        _fail("out of memory; try a smaller budget or batch size (-v shows where)", 1, exc)
    except KeyboardInterrupt as exc:
        _fail(signals.message(), signals.exit_code(), exc)
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
