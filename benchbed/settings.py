"""Where benchbed reads raw data, keeps its cache and writes results (CLI globals and env variables)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _default_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "benchbed"


@dataclass
class Settings:
    data_dir: Path
    cache_dir: Path
    results_dir: Path
    verbosity: int = 0  # -1 quiet, 0 normal, 1+ verbose

    @classmethod
    def from_env(cls) -> Settings:
        home = _default_home()
        return cls(
            data_dir=Path(os.environ.get("BENCHBED_DATA", home / "data")),
            cache_dir=Path(os.environ.get("BENCHBED_CACHE", home / "cache")),
            results_dir=Path(os.environ.get("BENCHBED_RESULTS", "results")),
        )


_current: Settings | None = None


def get_settings() -> Settings:
    """The settings in force: set by the CLI callback, else from the environment."""
    global _current
    if _current is None:
        _current = Settings.from_env()
    return _current


def set_settings(settings: Settings) -> None:
    global _current
    _current = settings
