"""What one dataset is: its raw files, where they come from, its loader and its default split.

Its own module, below the catalog (which lists the entries) and the source loaders (which read them), so a
loader that looks at a spec does not import the catalog that may look at the loader.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchbed.errors import DataError
from benchbed.settings import get_settings


@dataclass(frozen=True)
class Download:
    """Where a raw file comes from; ``extract`` maps zip members to file names in the raw dir."""

    url: str
    sha256: str | None = None
    size: int | None = None
    extract: dict[str, str] | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """One catalog entry. ``files`` maps a role to the accepted file names (first present wins)."""

    name: str
    source: str  # raw format, shown in `benchbed datasets list`
    loader: str  # "module:function" (spec, files: dict[role, Path]) -> InteractionData
    files: dict[str, tuple[str, ...]]
    default_split: str
    recipe: dict[str, Any] = field(default_factory=dict)
    split_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    domain: str = "items"
    downloads: dict[str, Download] = field(default_factory=dict)
    packaged: str | None = None  # "package:relative/dir" read in place (ml-100k in RecBole's wheel)
    directory: Path | None = None  # set for datasets given as a path
    options: dict[str, Any] = field(default_factory=dict)  # source-specific (atomic name, Amazon category)
    optional_files: tuple[str, ...] = ()  # roles that may be absent
    description: str = ""
    raw_name: str | None = None  # read the raw files of another entry (one download, two recipes)

    def raw_dir(self) -> Path:
        """Where the raw files are looked up."""
        if self.directory is not None:
            return self.directory
        if self.packaged:
            package, _, rel = self.packaged.partition(":")
            spec = importlib.util.find_spec(package)  # does not import RecBole (and torch)
            if spec is None or not spec.submodule_search_locations:
                raise DataError(f"dataset {self.name!r}: package {package!r} is not installed")
            return Path(list(spec.submodule_search_locations)[0]) / rel
        return get_settings().data_dir / (self.raw_name or self.name)

    def split_defaults(self, protocol: str) -> dict[str, Any]:
        return dict(self.split_params.get(protocol, {}))
