"""Typed parameters (benchbed.param_sets): one declaration per owner, read as ``self.p``."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass
from typing import Any, ClassVar

import pytest

from benchbed.api import BaseRecommender
from benchbed.methods import BUILTIN_METHODS, get_method_class
from benchbed.param_sets import ParamSet, param
from benchbed.params import Param, ParamError


@dataclass(frozen=True)
class BaseParams(ParamSet):
    dim: int = 8  # a naming convention (COUNT) gives its range
    kind: str = param("a", Param(kind="str", choices=("a", "b")))
    weights: dict[str, Any] = param({"x": 1}, Param(kind="dict", help="per-name weights"))


@dataclass(frozen=True)
class ChildParams(BaseParams):
    kind: str = param("b", Param(kind="str", choices=("a", "b")))  # a changed default keeps its place
    lr: float = 1e-3


class Typed(BaseRecommender):
    name: ClassVar[str] = "typed-example"
    Params: ClassVar[type[ParamSet]] = ChildParams
    p: ChildParams


def test_defaults_and_specs_are_derived_from_the_dataclass_in_field_order() -> None:
    assert list(Typed.defaults.items()) == [("dim", 8), ("kind", "b"), ("weights", {"x": 1}), ("lr", 1e-3)]
    assert set(Typed.param_specs) == {"kind", "weights"}
    method = Typed(dim=3, lr=0.5)
    assert method.p == ChildParams(dim=3, kind="b", weights={"x": 1}, lr=0.5)
    assert method.params == {"dim": 3, "kind": "b", "weights": {"x": 1}, "lr": 0.5}  # identities read this
    with pytest.raises(FrozenInstanceError):
        method.p.dim = 4  # type: ignore[misc]


def test_values_are_checked_against_the_declared_and_conventional_specs() -> None:
    with pytest.raises(ParamError, match=r"parameter kind='c' is invalid; expected one of 'a', 'b'"):
        Typed(kind="c")
    with pytest.raises(ParamError, match=r"parameter dim=0 is invalid; expected an integer >= 1"):
        Typed(dim=0)
    with pytest.raises(ParamError, match=r"has no parameter\(s\) \['dimm'\]"):
        Typed(dimm=3)


def test_a_mutable_default_is_not_shared_between_views() -> None:
    a, b = Typed(), Typed()
    a.p.weights["y"] = 2
    assert a.params["weights"] is a.p.weights  # one value, two ways to read it
    assert b.p.weights == {"x": 1} and Typed.defaults["weights"] == {"x": 1}


def test_declaring_params_and_a_defaults_dict_is_refused() -> None:
    with pytest.raises(TypeError, match="declares Params and defaults/param_specs"):

        class Both(BaseRecommender):  # noqa: F841 (the class statement is what fails)
            Params: ClassVar[type[ParamSet]] = BaseParams
            defaults: ClassVar[dict[str, Any]] = {"dim": 8}


def test_a_plugin_with_a_plain_defaults_dict_gets_an_untyped_view() -> None:
    class Plain(BaseRecommender):
        name: ClassVar[str] = "plain-example"
        defaults: ClassVar[dict[str, Any]] = {"dim": 4, "lr": 0.1, "time-aware": False, "class": 1}

    method = Plain(lr=0.2)
    assert method.params["time-aware"] is False  # a key that is no Python name is a parameter all the same
    assert Plain.Params.typed is False
    assert (method.p.dim, method.p.lr) == (4, 0.2)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(BUILTIN_METHODS))
def test_every_built_in_method_declares_typed_parameters(name: str) -> None:
    cls = get_method_class(name)
    assert cls.Params.typed, f"{name}: declare parameters as a Params dataclass (benchbed.param_sets)"
    assert cls.defaults == cls.Params.default_values()


def test_every_task_declares_typed_parameters_and_its_view_holds_the_normalised_values() -> None:
    import benchbed.tasks  # noqa: F401 (registers the tasks)
    from benchbed.registry import TASKS

    for name in TASKS.names():
        cls = TASKS.get(name)
        assert cls.Params.typed, f"task {name}: declare parameters as a Params dataclass"
    topk = TASKS.get("topk")(ks=[20, 5, 5])
    assert topk.p.ks == [5, 20] == topk.params["ks"]  # sorted once, seen the same through both
