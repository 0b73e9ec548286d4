"""Attributes that a recipe's ``fit`` sets (the backbone, the task's setup, the stage chain): declared on the
class with their type, ``None`` until ``fit``, and read as that type.

Why a descriptor and not ``X | None`` attributes: a ``None`` read before ``fit`` fails far away (``'NoneType'
object has no attribute 'device'``) and every read needs a narrowing ``assert``; here the read names what is
missing, and mypy sees the fitted type at every use.
"""

from __future__ import annotations

from typing import Generic, TypeVar, overload

T = TypeVar("T")


class Fitted(Generic[T]):
    """``attr = Fitted[Type]("what it is")`` in a class body; ``self.attr = None`` in ``__init__``; ``fit``
    assigns it. Reading it while ``None`` raises a one-line ``RuntimeError`` naming the owner and ``what``."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.slot = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_fitted_{name}"

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Fitted[T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> Fitted[T] | T:
        if obj is None:
            return self
        value = obj.__dict__.get(self.slot)
        if value is None:
            raise RuntimeError(f"{type(obj).__name__}: no {self.what} before fit (call fit first)")
        return value

    def __set__(self, obj: object, value: T | None) -> None:
        obj.__dict__[self.slot] = value
