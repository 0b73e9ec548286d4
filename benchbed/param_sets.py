"""Typed parameters: an owner (a method, a task) declares its parameters once, as the fields of a frozen
dataclass, and reads them as attributes (``self.p.lr``) that mypy checks (peft's typed configs).

Why a dataclass and not the plain ``defaults`` dict it replaces: a misspelt ``self.params["lr_cei"]`` is a
``KeyError`` at the end of a long fit, a misspelt ``self.p.lr_cei`` is a mypy error before any run; and the
type of each value is written once, beside its default and the paper it comes from.

The dataclass is the declaration; everything else is derived from it by :func:`declare` (called from
``BaseRecommender.__init_subclass__`` and ``Task.__init_subclass__``): the class's ``defaults`` (field
defaults, in field order) and ``param_specs`` (the ``Param`` given to :func:`param`). So the checks of
``benchbed.params``, ``benchbed methods NAME``, the planner and the run record see exactly the keys and
values they saw before. The raw dict ``self.params`` stays what stage identities and records are built
from, so no stage key and no config hash moves; ``self.p`` is a read-only view of the same values.

An owner that still declares a plain ``defaults`` dict (a plugin written before this module) gets an untyped
view made from that dict, so ``self.p`` exists on every method.
"""

from __future__ import annotations

import copy
import dataclasses
import keyword
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Literal, TypeAlias, TypeVar

from benchbed.params import Param

T = TypeVar("T")
S = TypeVar("S", bound="ParamSet")
SPEC = "benchbed.param"  # the field-metadata key holding a field's Param


def param(default: T, spec: Param | None = None) -> T:
    """A parameter field: its default and, where the naming conventions of ``benchbed.params`` do not
    already say which values are valid, its ``Param``. A mutable default (dict, list) is copied per view."""
    metadata = {SPEC: spec} if spec is not None else {}
    if isinstance(default, (dict, list)):
        frozen = copy.deepcopy(default)
        return field(default_factory=lambda: copy.deepcopy(frozen), metadata=metadata)  # type: ignore[return-value]
    return field(default=default, metadata=metadata)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class ParamSet:
    """Base of every owner's parameter dataclass (``class Params(ParamSet)``); has no fields itself."""

    typed: ClassVar[bool] = True  # False for a view made from a plain ``defaults`` dict

    @classmethod
    def default_values(cls) -> dict[str, Any]:
        """``{name: default}`` in field order: the owner's ``defaults``."""
        return {f.name: _default_of(f) for f in fields(cls)}

    @classmethod
    def declared_specs(cls) -> dict[str, Param]:
        """``{name: Param}`` for the fields that declare one: the owner's ``param_specs``."""
        return {f.name: f.metadata[SPEC] for f in fields(cls) if SPEC in f.metadata}

    @classmethod
    def view(cls: type[S], params: Mapping[str, Any]) -> S:
        """The typed view of resolved (already checked) parameters; keys outside the fields are ignored."""
        return cls(**{f.name: params[f.name] for f in fields(cls) if f.name in params})

    @classmethod
    def from_defaults(cls, owner: str, defaults: Mapping[str, Any]) -> type[ParamSet]:
        """An untyped view class for an owner that declares a plain ``defaults`` dict."""
        # a key that is no Python name (RecBole's "time-aware") stays a parameter, read from ``params`` only
        names = [key for key in defaults if key.isidentifier() and not keyword.iskeyword(key)]
        made: type[ParamSet] = dataclasses.make_dataclass(
            f"{owner}Params",
            [(key, Any, field(default=None)) for key in names],
            bases=(cls,),
            frozen=True,
        )
        made.typed = False
        return made


def _default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    raise TypeError(f"parameter {f.name!r} has no default: every parameter needs one")


def declare(owner: type) -> None:
    """Derive ``defaults``/``param_specs`` of ``owner`` from the ``Params`` it defines, or make an untyped
    ``Params`` for an owner that defines ``defaults``/``param_specs`` as dicts. Declaring both is refused:
    two declarations of one parameter would drift apart."""
    own = owner.__dict__
    if "Params" in own:
        if "defaults" in own or "param_specs" in own:
            raise TypeError(
                f"{owner.__name__} declares Params and defaults/param_specs: declare them in Params only"
            )
        params_cls: type[ParamSet] = own["Params"]
        owner.defaults = params_cls.default_values()  # type: ignore[attr-defined]
        owner.param_specs = params_cls.declared_specs()  # type: ignore[attr-defined]
    elif "defaults" in own:
        owner.Params = ParamSet.from_defaults(owner.__name__, own["defaults"])  # type: ignore[attr-defined]


# the types of parameters whose default "auto" lets the method derive the value (benchbed.llm.budget)
AutoInt: TypeAlias = "int | Literal['auto']"
AutoNumber: TypeAlias = "float | Literal['auto']"
AutoCap: TypeAlias = "int | Literal['auto'] | None"  # a cap: a number, "auto" (the budget's) or None (no cap)
