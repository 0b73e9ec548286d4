"""Registry (lazy targets, aliases, clashes, did-you-mean, entry points) and RunConfig behaviour."""

from __future__ import annotations

import pytest

from benchbed.config import RunConfig, parse_assignments, stable_hash
from benchbed.errors import ConfigError
from benchbed.registry import Registry, RegistryError


def test_lazy_target_resolves_on_first_get() -> None:
    reg: Registry[object] = Registry("thing")
    reg.register("join", "os.path:join", aliases=("pathjoin",))
    import os.path

    assert reg.get("join") is os.path.join
    assert reg.get("pathjoin") is os.path.join
    assert reg.names() == ["join"]


def test_decorator_registration_and_clash() -> None:
    reg: Registry[object] = Registry("thing")

    @reg.register("alpha", aliases=("a",))
    class Alpha:
        pass

    assert reg.get("a") is Alpha
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("a", object())
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("alpha", object())


def test_unknown_name_suggests_close_match() -> None:
    reg: Registry[object] = Registry("method")
    reg.register("lightgcn", object())
    reg.register("collm", object())
    with pytest.raises(RegistryError, match=r"unknown method 'colm'; did you mean 'collm'"):
        reg.get("colm")
    with pytest.raises(RegistryError, match="known: collm, lightgcn"):
        reg.get("zzzzzz")


def test_bad_lazy_target_is_a_clear_error() -> None:
    reg: Registry[object] = Registry("thing")
    reg.register("broken", "os.path:no_such_attribute")
    with pytest.raises(RegistryError, match="has no attribute 'no_such_attribute'"):
        reg.get("broken")


def test_entry_point_plugins_are_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    import benchbed.registry as registry_module

    fake = [EntryPoint(name="myplugin", value="os.path:basename", group="benchbed.methods")]
    monkeypatch.setattr(
        registry_module, "entry_points", lambda group: fake if group == "benchbed.methods" else []
    )
    reg: Registry[object] = Registry("method", entry_point_group="benchbed.methods")
    reg.register("builtin", object())
    assert reg.names() == ["builtin", "myplugin"]
    import os.path

    assert reg.get("myplugin") is os.path.basename


def test_builtin_method_names_registered() -> None:
    import benchbed.methods  # noqa: F401
    from benchbed.registry import METHODS

    for name in ("random", "pop", "mf", "mf-bpr", "lightgcn", "sasrec", "din", "als", "collm", "tallrec"):
        assert name in METHODS


def test_run_config_rejects_unknown_keys_and_hashes_stably() -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['methd'\]"):
        RunConfig.from_dict({"methd": "pop"}, source="x.yaml")
    with pytest.raises(ConfigError, match="missing key 'method'"):
        RunConfig.from_dict({"dataset": "ml-100k"})
    a = RunConfig.from_dict({"method": "pop", "method_params": {"b": 1, "a": 2}})
    b = RunConfig.from_dict({"method": "pop", "method_params": {"a": 2, "b": 1}})
    assert a.hash() == b.hash()
    assert a.hash() != a.with_updates(seed=1).hash()
    assert stable_hash({"x": [1, 2]}) != stable_hash({"x": [2, 1]})


def test_parse_assignments_types_and_errors() -> None:
    parsed = parse_assignments(["lr=1e-3", "dim=64", "name=mf", "flag=true", "ks=[5, 10]"], "--param")
    assert parsed == {"lr": 0.001, "dim": 64, "name": "mf", "flag": True, "ks": [5, 10]}
    with pytest.raises(ConfigError, match="--param: expected KEY=VALUE, got 'oops'"):
        parse_assignments(["oops"], "--param")
