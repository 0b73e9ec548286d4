"""One parameter-checking mechanism: nonsense values are one-line usage errors before any work, no record."""

from __future__ import annotations

import pytest

import benchbed.data.catalog  # noqa: F401  (registers the split protocols)
from benchbed.data.splits import COMMON_DEFAULTS
from benchbed.errors import ConfigError
from benchbed.methods import BUILTIN_METHODS, build_method, get_method_class, method_defaults
from benchbed.params import Param, ParamError, check_value, infer, resolve, specs_for
from benchbed.registry import SPLITS, TASKS
from benchbed.tasks import build_task


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--method", "mf", "--task", "ctr", "-p", "dim=0"], "dim=0"),
        (["--method", "mf", "--task", "ctr", "-p", "epochs=0"], "epochs=0"),
        (["--method", "mf", "--task", "ctr", "-p", "batch_size=0"], "batch_size=0"),
        (["--method", "mf", "--task", "ctr", "-p", "lr=-1"], "lr=-1"),
        (["--method", "mf", "--task", "ctr", "-p", "dim=abc"], "dim='abc'"),
        (["--method", "pop", "--task", "ctr", "--dtype", "float13"], "--dtype 'float13'"),
        (["--method", "pop", "--task", "ctr", "--device", "gpu0"], "--device 'gpu0'"),
        (["--method", "pop", "--task", "ctr", "--task-param", "max_rows=0"], "max_rows=0"),
        (["--method", "pop", "--task", "topk", "--task-param", "ks=[0]"], "ks=[0]"),
        (["--method", "collm", "--task", "ctr", "-p", "lora_dropout=1.5"], "lora_dropout=1.5"),
    ],
)
def test_nonsense_parameters_are_usage_errors_without_a_record(cli, args: list[str], needle: str) -> None:
    code, _, err = cli("run", *args)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], err
    assert "expected" in lines[0]
    assert not cli.results.exists() or not list(cli.results.rglob("*.json"))


def test_cuda_without_a_gpu_is_a_usage_error(cli) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    code, _, err = cli("run", "--method", "pop", "--device", "cuda")
    assert code == 2 and "no CUDA GPU" in err and len(err.strip().splitlines()) == 1


def test_every_registered_default_satisfies_its_own_spec() -> None:
    """The conventions must never reject a shipped default (else every plain run would fail)."""
    builtin = sorted(BUILTIN_METHODS)  # the package's own (plugins registered by other tests vary by run)
    owners = [(n, get_method_class(n).defaults, get_method_class(n).param_specs) for n in builtin]
    owners += [(n, TASKS.get(n).defaults, TASKS.get(n).param_specs) for n in TASKS.names()]
    owners += [(n, {**COMMON_DEFAULTS, **SPLITS.get(n).defaults}, None) for n in SPLITS.names()]
    for owner, defaults, explicit in owners:
        for key, spec in specs_for(defaults, explicit).items():
            check_value(owner, key, defaults[key], spec)
    for name in builtin:
        cls = get_method_class(name)
        for task, overrides in cls.task_defaults.items():
            resolve(f"method {name!r} on {task}", cls.defaults, overrides, cls.param_specs)


def test_conventions_and_inference() -> None:
    assert infer("lr", 1e-3).min == 0 and infer("lr", 1e-3).exclusive_min
    assert infer("epochs", 100).kind == "int" and infer("epochs", 100).min == 1
    assert infer("pretrain_epochs", "auto").auto and infer("pretrain_epochs", "auto").min == 0
    assert infer("max_train_rows", "auto").min == 0  # budget caps: 0 means no cap
    assert infer("max_rows", None).nullable and infer("max_rows", None).min == 1
    assert infer("hidden", [600]).kind == "list" and infer("hidden", [600]).item_kind == "int"
    assert infer("score", "yes").kind == "str"
    for bad in (True, 1.5, "3", None):
        with pytest.raises(ParamError):
            check_value("m", "epochs", bad, infer("epochs", 10))
    check_value("m", "lr", 1, infer("lr", 1e-3))  # an int for a float parameter is fine (not converted)
    with pytest.raises(ParamError, match="nan"):
        check_value("m", "lr", float("nan"), infer("lr", 1e-3))
    with pytest.raises(ParamError, match="one of 'a', 'b'"):
        check_value("m", "mode", "c", Param(kind="str", choices=("a", "b")))
    with pytest.raises(ParamError, match="has no parameter"):
        resolve("method 'x'", {"lr": 1e-3}, {"lrr": 1})


def test_split_and_task_parameters_use_the_same_mechanism() -> None:
    with pytest.raises(ParamError, match="split 'leave-one-out': parameter min_interactions=-1"):
        SPLITS.get("leave-one-out").resolve({"min_interactions": -1})
    with pytest.raises(ParamError, match="task 'topk': parameter batch_size=0"):
        build_task("topk", {"batch_size": 0})
    assert isinstance(ParamError("x"), ConfigError) and ParamError.exit_code == 2


def test_task_defaults_merge_under_user_params() -> None:
    """``task_defaults`` apply on their task only, and what the user gives wins over them."""
    with_task = [n for n in sorted(BUILTIN_METHODS) if get_method_class(n).task_defaults]
    if not with_task:
        pytest.skip("no method declares task_defaults yet")
    name = with_task[0]
    cls = get_method_class(name)
    task, overrides = next(iter(cls.task_defaults.items()))
    key, value = next(iter(overrides.items()))
    assert build_method(name, {}, task=task).params[key] == value
    assert method_defaults(name, task)[key] == value
    other = "topk" if task != "topk" else "ctr"
    assert build_method(name, {}, task=other).params[key] == cls.defaults[key]
    user_value = cls.defaults[key]
    assert build_method(name, {key: user_value}, task=task).params[key] == user_value
