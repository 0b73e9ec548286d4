"""Parameters checked before any work (issue 25, item 3): every parameter of every method, task and split
protocol has a declared range, choice set or form; a configuration that trains nothing is refused unless
it is a declared zero-shot variant; files named by parameters are opened and checked in the same up-front
pass, before any companion or stage runs (planted files: wrong shape, missing key, NaN, not a zip)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import benchbed.methods  # noqa: F401 - registers the methods
import benchbed.tasks  # noqa: F401 - registers the tasks
from benchbed.data.splits import COMMON_DEFAULTS, COMMON_SPECS, PROTOCOLS
from benchbed.methods import BUILTIN_METHODS, get_method_class
from benchbed.params import ParamError, check_value, specs_for
from benchbed.registry import TASKS


def _owners() -> list[tuple[str, dict, dict]]:
    out = []
    # the package's methods (the conformance suite registers a deliberately undeclared plugin of its own)
    for name in sorted(BUILTIN_METHODS):
        cls = get_method_class(name)
        for task, extra in [(None, {}), *cls.task_defaults.items()]:
            out.append(
                (
                    f"method {name}" + (f" ({task})" if task else ""),
                    {**cls.defaults, **extra},
                    cls.param_specs,
                )
            )
    for name in sorted(TASKS):
        cls = TASKS.get(name)
        out.append((f"task {name}", dict(cls.defaults), cls.param_specs))
    for proto in PROTOCOLS:
        out.append((f"split {proto.name}", {**COMMON_DEFAULTS, **proto.defaults}, COMMON_SPECS))
    return out


def test_every_parameter_declares_its_range_or_choices_and_its_default_fits() -> None:
    undeclared, bad_defaults = [], []
    for owner, defaults, explicit in _owners():
        for key, spec in specs_for(defaults, explicit).items():
            if not spec.declared:
                undeclared.append(f"{owner}: {key} ({spec.expected()})")
            try:
                check_value(owner, key, defaults[key], spec)
            except ParamError as exc:
                bad_defaults.append(str(exc))
    assert not undeclared, "declare a range, choice set or pattern for:\n" + "\n".join(undeclared)
    assert not bad_defaults, "\n".join(bad_defaults)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("-m", "collm", "-t", "ctr", "-p", "max_title_chars=-5"), "max_title_chars=-5"),
        (("-m", "tallrec", "-t", "ctr", "-p", "max_title_chars=null"), "max_title_chars=None"),
        (("-m", "cllm4rec", "-t", "topk", "-p", "max_content_docs=0"), "max_content_docs=0"),
        (
            ("-m", "cllm4rec", "-t", "topk", "-p", "variant=llm-scratch")
            + ("-p", "warmup_epochs=0", "-p", "pretrain_epochs=0", "-p", "finetune_epochs=0"),
            "trains nothing",
        ),
        (("-m", "embedproj", "-t", "generative", "-p", "stage=3"), "stage=3"),
        (("-m", "embedproj", "-t", "generative", "-p", "cf_model=bogus"), "cf_model='bogus'"),
        (("-m", "embedproj", "-t", "generative", "-p", "cf_params={epochs: 2}"), "cf_params does not fit"),
        (("-m", "i2t-mlp1", "-t", "item2text", "-p", "cf_params=notamapping"), "cf_params='notamapping'"),
        (("-m", "collm", "-t", "ctr", "-p", "cf=bogus"), "cf='bogus'"),
        (("-m", "collm", "-t", "ctr", "-p", "cf_params={bogus: 1}"), "cf_params does not fit"),
        (("-m", "collm", "-t", "ctr", "-p", "tallrec_lr=1"), "no parameter"),
        (("-m", "rarec", "-t", "topk", "-p", "id_model=pop"), "'pop'"),
        (("-m", "pop", "-t", "topk", "--task-param", "exclude=everything"), "exclude='everything'"),
        (("-m", "pop", "-t", "ctr", "--task-param", "metrics=[auc, acc]"), "metrics="),
        (("-m", "pop", "-t", "ctr", "--split", "temporal-window", "--split-param", "by=week"), "by='week'"),
    ],
)
def test_bad_parameters_are_one_line_usage_errors_before_any_work(
    cli, args: tuple[str, ...], needle: str
) -> None:
    code, _, err = cli("run", *args, "--device", "cpu")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and needle in lines[0], err
    assert not list(cli.results.rglob("*.json"))  # no companion record, no failed record: nothing ran


def _planted(tmp_path: Path, name: str, **arrays: np.ndarray) -> Path:
    path = tmp_path / f"{name}.npz"
    np.savez(path, **arrays)
    return path


def test_cf_files_are_checked_before_the_companion_trains(cli, tmp_path: Path) -> None:
    ok = np.zeros((4, 3), dtype=np.float32)
    cases = {
        _planted(tmp_path, "incomplete", user=ok): "lacks array(s) ['item']",
        _planted(tmp_path, "flat", user=np.zeros(4), item=ok): "has shape (4,)",
        _planted(tmp_path, "nan", user=np.full((4, 3), np.nan), item=ok): "NaN or inf",
        _planted(tmp_path, "widths", user=np.zeros((4, 2)), item=ok): "has 2 dims but 'item' has 3",
        _planted(tmp_path, "rows", user=ok, item=ok): "has 4 users x 4 items, but the split",
        tmp_path / "missing.npz": "not found",
    }
    (tmp_path / "text.npz").write_text("not a zip")
    cases[tmp_path / "text.npz"] = "is not a readable .npz archive"
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(
        _planted(tmp_path, "whole", user=np.ones((943, 3)), item=np.ones((1682, 3))).read_bytes()[:-200]
    )
    cases[truncated] = "truncated.npz"
    for path, needle in cases.items():
        code, _, err = cli("run", "-m", "collm", "-t", "ctr", "--cf", str(path), "--device", "cpu")
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and needle in lines[0] and str(path) in lines[0], (path, err)
    assert not list(cli.results.rglob("*.json"))  # tallrec, the companion, never started
