"""The one exception type the CLI turns into a one-line message and a non-zero exit."""

from __future__ import annotations


class BenchbedError(Exception):
    """A user-facing error: one line naming the file, field or option and what was expected."""

    exit_code = 1


class DataError(BenchbedError):
    """Raw data that cannot be read as the source format says (file, line, field)."""


class MissingDataError(BenchbedError):
    """Raw files are absent and could not be downloaded (offline). Exit code 2, as the CLI contract says."""

    exit_code = 2


class ConfigError(BenchbedError):
    """An unknown option, key or value in a config, suite or command line: a usage error, exit code 2."""

    exit_code = 2
