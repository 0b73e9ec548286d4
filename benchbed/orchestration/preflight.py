"""Checks of a run's configuration that need more than one parameter's spec, done before any work.

``benchbed.params`` checks each parameter against its declared range or choice set when a method is built.
What it cannot see is checked here, in the same up-front pass (``runner.setup``: ``run``, and ``sweep`` for
every cell before the first starts), so that nothing trains before a mistake is found:

- the parameters of the methods a method runs first (its companions) and of the ID model whose embeddings it
  reads (``cf_model``/``cf_params``, ``id_model``/``id_params``, collm's ``cf``/``cf_params``): a CF model
  that exports nothing, or a bad key in its parameters, used to surface after a companion had trained;
- files named by parameters (collm's ``--cf file.npz``): opened and checked (a zip of arrays, the keys
  ``user`` and ``item``, 2-D, the same width, finite; rows against the split: :func:`check_files_for_split`);
- a configuration that trains nothing (every ``*_epochs`` 0) unless the method declares it zero-shot
  (``zero_shot = True``, or its ``variant`` in ``zero_shot_variants``).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchbed.errors import BenchbedError
from benchbed.params import ParamError

if TYPE_CHECKING:
    from benchbed.api import BaseRecommender
    from benchbed.config import RunConfig
    from benchbed.data.schema import Split

# (model parameter, its parameters' parameter) pairs through which a method names an ID model it trains
CF_SOURCES = (("cf_model", "cf_params"), ("id_model", "id_params"), ("cf", "cf_params"))
EPOCHS = re.compile(r"(.+_)?epochs")
NPZ_KEYS = ("user", "item")


def check_config(config: RunConfig, method: BaseRecommender) -> None:
    """Everything about ``method`` built from ``config`` that can fail before work starts (see module doc)."""
    owner = f"method {config.method!r}"
    check_trains_something(owner, method)
    check_cf_sources(owner, config, method)
    for path in files_named(method):
        read_embedding_file(owner, path)
    for name, params in method.companions():
        from benchbed.methods import build_method

        try:
            companion = build_method(name, dict(params), task=config.task)
        except BenchbedError as exc:
            raise ParamError(f"{owner}: its companion run {name!r} is invalid: {exc}") from exc
        check_cf_sources(f"{owner}'s companion {name!r}", config, companion)


def check_trains_something(owner: str, method: BaseRecommender) -> None:
    """Refuse a configuration whose every epoch count is 0 (it would record an untrained model as ``ok``),
    unless the method declares this configuration zero-shot."""
    params = method.params
    epochs = {k: v for k, v in params.items() if EPOCHS.fullmatch(k)}
    if not epochs or any(not (isinstance(v, int) and v == 0) for v in epochs.values()):
        return  # "auto" is resolved from the budget, which trains
    if getattr(method, "zero_shot", False):
        return
    if params.get("variant") in getattr(method, "zero_shot_variants", ()):
        return
    keys = ", ".join(f"{k}=0" for k in sorted(epochs))
    raise ParamError(
        f"{owner}: {keys} trains nothing, and this configuration is not a zero-shot variant of the method; "
        "give at least one stage epochs >= 1"
    )


def check_cf_sources(owner: str, config: RunConfig, method: BaseRecommender) -> None:
    """The ID model a method reads embeddings of exists, exports embeddings, and takes the given params."""
    from benchbed.embeddings.store import EXPORTABLE, FEEDBACK_TASK
    from benchbed.methods import build_method
    from benchbed.registry import TASKS

    params = method.params
    for model_key, params_key in CF_SOURCES:
        model = params.get(model_key)
        if not isinstance(model, str) or model.endswith(".npz") or model.startswith("recbole:"):
            continue
        given = params.get(params_key)
        if given is not None and not isinstance(given, dict):  # a spec declared elsewhere may let it through
            raise ParamError(f"{owner}: parameter {params_key}={given!r} is invalid; expected a mapping")
        if model_key != "cf" and model not in EXPORTABLE:
            raise ParamError(
                f"{owner}: parameter {model_key}={model!r} is invalid; expected a method that exports ID "
                f"embeddings: {', '.join(EXPORTABLE)}"
            )
        # the ID model as the embedding source builds it: for the task of the run's feedback
        task = (
            config.task
            if model_key == "cf"
            else FEEDBACK_TASK.get(TASKS.get(config.task).feedback, config.task)
        )
        try:
            build_method(model, dict(given or {}), task=task)
        except BenchbedError as exc:
            raise ParamError(
                f"{owner}: parameter {params_key} does not fit {model_key}={model!r}: {exc}"
            ) from exc


def files_named(method: BaseRecommender) -> list[Path]:
    """The embedding files a method's parameters name (collm's ``cf``)."""
    value = method.params.get("cf")
    return [Path(value)] if isinstance(value, str) and value.endswith(".npz") else []


def read_embedding_file(owner: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``user``/``item`` arrays of an ``.npz`` file, or a one-line error naming the file and the problem."""
    where = f"{owner}: cf file {path}"
    if not path.is_file():
        raise ParamError(f"{where} not found")
    if not zipfile.is_zipfile(path):
        raise ParamError(
            f"{where} is not a readable .npz archive (empty, truncated, or not written by numpy.savez); "
            "expected arrays 'user' and 'item'"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in NPZ_KEYS if k not in z.files]
            if missing:
                raise ParamError(f"{where} lacks array(s) {missing}; it has {sorted(z.files)}")
            user, item = np.asarray(z["user"]), np.asarray(z["item"])
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ParamError(f"{where} cannot be read ({type(exc).__name__}: {exc})") from exc
    for key, arr in (("user", user), ("item", item)):
        if arr.ndim != 2 or 0 in arr.shape:
            raise ParamError(
                f"{where}: array {key!r} has shape {arr.shape}; expected (rows, dims), non-empty"
            )
        if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
            raise ParamError(f"{where}: array {key!r} holds {arr.dtype}; expected real numbers")
        if not np.isfinite(arr).all():
            raise ParamError(f"{where}: array {key!r} holds NaN or inf")
    if user.shape[1] != item.shape[1]:
        raise ParamError(f"{where}: 'user' has {user.shape[1]} dims but 'item' has {item.shape[1]}")
    return user, item


def check_files_for_split(config: RunConfig, method: BaseRecommender, split: Split) -> None:
    """Rows of the files a method's parameters name against the split's users and items."""
    owner = f"method {config.method!r}"
    for path in files_named(method):
        user, item = read_embedding_file(owner, path)
        if user.shape[0] != split.n_users or item.shape[0] != split.n_items:
            raise ParamError(
                f"{owner}: cf file {path} has {user.shape[0]} users x {item.shape[0]} items, but the "
                f"split of {config.dataset!r} has {split.n_users} x {split.n_items}; export them for it"
            )
