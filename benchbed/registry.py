"""One generic registry for datasets, split protocols, metrics, tasks and methods.

Targets may be objects or lazy ``"module:attr"`` strings, so that listing names never imports torch or
RecBole. Third-party methods join through the ``benchbed.methods`` entry-point group.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from benchbed.errors import BenchbedError

T = TypeVar("T")


class RegistryError(BenchbedError):
    """A name clash or an unknown name (a usage error: exit code 2)."""

    exit_code = 2


def import_target(target: str) -> Any:
    """Resolve ``"package.module:attr"`` to the object it names."""
    module_name, _, attr = target.partition(":")
    if not attr:
        raise RegistryError(f"lazy target {target!r} must look like 'package.module:attr'")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise RegistryError(f"module {module_name!r} has no attribute {attr!r}") from exc


class Registry(Generic[T]):
    """Name -> object, with aliases, lazy import, clash errors and did-you-mean on typos."""

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self._targets: dict[str, T | str] = {}
        self._aliases: dict[str, str] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._entry_point_group = entry_point_group
        self._entry_points_loaded = entry_point_group is None

    def register(
        self, name: str, target: T | str | None = None, *, aliases: tuple[str, ...] = (), **meta: Any
    ) -> Any:
        """Register ``target`` under ``name``; without a target, return a decorator."""
        if target is None:

            def decorator(obj: T) -> T:
                self.register(name, obj, aliases=aliases, **meta)
                return obj

            return decorator
        for key in (name, *aliases):
            if key in self._targets or key in self._aliases:
                raise RegistryError(f"{self.kind} name {key!r} is already registered")
        self._targets[name] = target
        self._meta[name] = dict(meta)
        for alias in aliases:
            self._aliases[alias] = name
        return target

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        assert self._entry_point_group is not None
        for ep in entry_points(group=self._entry_point_group):
            if ep.name not in self._targets and ep.name not in self._aliases:
                self._targets[ep.name] = ep.value
                self._meta[ep.name] = {"plugin": True}

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` or an alias of it; a clear error with suggestions otherwise."""
        self._load_entry_points()
        if name in self._targets:
            return name
        if name in self._aliases:
            return self._aliases[name]
        known = sorted([*self._targets, *self._aliases])
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise RegistryError(f"unknown {self.kind} {name!r}{hint} (known: {', '.join(sorted(self._targets))})")

    def get(self, name: str) -> T:
        """The object for ``name``, importing a lazy target on first use."""
        key = self.canonical(name)
        target = self._targets[key]
        if isinstance(target, str) and ":" in target:
            resolved = import_target(target)
            self._targets[key] = resolved
            return resolved  # type: ignore[no-any-return]
        return target  # type: ignore[return-value]

    def meta(self, name: str) -> dict[str, Any]:
        return self._meta[self.canonical(name)]

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._targets)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        self._load_entry_points()
        return name in self._targets or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


# The project's registries. Each is filled when its package is imported: benchbed.data.catalog (datasets,
# splits), benchbed.metrics, benchbed.tasks, benchbed.methods (plus entry-point plugins).
DATASETS: Registry[Any] = Registry("dataset")
SPLITS: Registry[Callable[..., Any]] = Registry("split protocol")
METRICS: Registry[Any] = Registry("metric")
TASKS: Registry[Any] = Registry("task")
METHODS: Registry[Any] = Registry("method", entry_point_group="benchbed.methods")
