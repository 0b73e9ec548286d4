"""One run: RunConfig -> split -> method -> fit -> task evaluation -> RunRecord on disk.

The record's path is a function of the config (and, for a directory dataset, of its files' content), so a
finished run is found and skipped (``force`` re-runs) -- but only while its data and split hashes are those of
the data now. Setup problems (unknown method, dataset or split, bad parameter, a task the method does not
support, a results directory that cannot be written) raise before anything is written; anything that fails
after that writes a record with ``status: failed`` and the one-line error, then re-raises, so a results tree
always says what was tried. A failure never replaces an ``ok`` record: it goes to ``<id>.failed.json``.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import benchbed
from benchbed import locks, parallel
from benchbed.api import BaseRecommender, RunContext, TaskSetup
from benchbed.config import RunConfig, stable_hash
from benchbed.errors import BenchbedError, ConfigError
from benchbed.methods import build_method
from benchbed.orchestration import preflight
from benchbed.orchestration.embeddings import RegistryEmbeddings, keep_fitted_embeddings
from benchbed.orchestration.failures import NumericalError, numerical_error, one_line
from benchbed.orchestration.machine import (
    check_device_dtype,
    cuda_present,
    git_sha,
    peak_memory_mb,
    resolve_device,
    seed_everything,
)
from benchbed.orchestration.preflight import check_config, check_files_for_split
from benchbed.registry import TASKS
from benchbed.results.environment import collect as collect_environment
from benchbed.results.record import NewerSchemaError, RecordError, RunRecord, read_record
from benchbed.results.store import check_writable, failed_path, record_path, write_record
from benchbed.settings import get_settings
from benchbed.tasks import build_task
from benchbed.tasks.base import Task

if TYPE_CHECKING:
    from benchbed.data.prepare import PreparedSplit, SplitIdentity


@dataclass
class RunOutcome:
    record: RunRecord
    path: Path
    skipped: bool  # True: an earlier successful record for this config was found and returned


def setup(config: RunConfig) -> tuple[BaseRecommender, Task]:
    """Build the method and task, checking they fit together; raises before any work is done."""
    check_device_dtype(config.device, config.dtype)
    method = build_method(config.method, dict(config.method_params), task=config.task)
    task = build_task(config.task, dict(config.task_params))
    check_config(config, method)  # companions' and CF models' parameters, named files, a run that trains
    # a task may also evaluate methods built for another task (generative: ID methods that rank all items)
    if not task.accepts_method(method):
        tasks = ", ".join(sorted(method.tasks))
        raise ConfigError(
            f"method {config.method!r} does not support task {config.task!r} (it supports: {tasks})"
        )
    return method, task


def make_context(
    config: RunConfig, log: Callable[[str], None] | None, setup: TaskSetup | None = None
) -> RunContext:
    """The context a method runs in: ``setup`` is what the task hands it (``Task.method_setup``)."""
    settings = get_settings()
    device, dtype = resolve_device(config.device, config.dtype)
    ctx = RunContext(
        setup=setup or TaskSetup(task=config.task, feedback=TASKS.get(config.task).feedback),
        seed=config.seed,
        device=device,
        dtype=dtype,
        cache_dir=Path(settings.cache_dir),
        work_dir=Path(settings.cache_dir) / "work" / config.hash(),
        verbose=settings.verbosity,
        log=log,
    )
    ctx.embeddings = RegistryEmbeddings(ctx)
    return ctx


def find_existing(config: RunConfig, identity: SplitIdentity | None = None) -> tuple[Path, RunRecord | None]:
    """The record path of ``config`` and its successful record, if one is there *for the same data*.

    Identity is content: a directory dataset's record path hashes its files (not the ``--dataset``
    string), and a record is only returned when its ``dataset_hash`` and ``split_hash`` equal those of
    the split as it is now (``identity``; computed when not given). A record written by a newer schema
    is refused (:class:`NewerSchemaError`): running would overwrite what this benchbed cannot read.
    """
    identity = identity or _identity(config)
    path = record_path(get_settings().results_dir, config, identity.files_hash)
    if not path.exists():
        return path, None
    try:
        record = read_record(path)
    except NewerSchemaError as exc:
        raise BenchbedError(f"{exc}; this benchbed will not overwrite it (move it away to re-run)") from exc
    except RecordError:
        return path, None  # unreadable: run again and overwrite
    if record.status != "ok":
        return path, None
    if (record.dataset_hash, record.split_hash) != (identity.data_hash, identity.split_hash):
        return path, None  # the data or split changed since: a stale result, run again
    return path, record


def _identity(config: RunConfig, task: Task | None = None) -> SplitIdentity:
    """The split's content identity; bad dataset/split names and split parameters raise here (no record)."""
    from benchbed.data.prepare import split_identity

    task = task or build_task(config.task, dict(config.task_params))
    # a task may name the protocol it is defined on (generative: leave-one-out) for runs that give none
    return split_identity(config.dataset, config.split or task.default_split, dict(config.split_params))


def _holds_ok_record(path: Path) -> bool:
    try:
        return read_record(path).status == "ok"
    except RecordError:
        return False


def _remove_empty_dirs(*dirs: Path) -> None:
    """Scratch directories a run made and left empty (the run's work dir, RecBole's work root)."""
    for d in dirs:
        try:
            d.rmdir()
        except OSError:  # not empty, absent or in use: leave it
            pass


def run_companions(
    config: RunConfig, *, progress: bool = True, log: Callable[[str], None] | None = None
) -> list[RunOutcome]:
    """Run (or reuse the records of) the methods a method compares itself with.

    ``BaseRecommender.companions() -> [(method, params), ...]`` (CoLLM: its CF model and tallrec, whose
    stage it shares); each runs first with the same dataset, split, task and seed, so the leaderboard
    printed after the run holds the comparison. Existing records are reused, never forced.
    """
    method = build_method(config.method, dict(config.method_params), task=config.task)
    return [
        execute(config.with_updates(method=name, method_params=dict(params)), progress=progress, log=log)
        for name, params in method.companions()
    ]


def execute(
    config: RunConfig, *, force: bool = False, progress: bool = True, log: Callable[[str], None] | None = None
) -> RunOutcome:
    """Run ``config`` (or find its record) and return the record, where it is and whether it was skipped.

    Setup (method, task, device, dataset, split and their parameters) is checked before anything is
    written; so is that the results directory can take the record. A run that then fails or is interrupted
    writes its failure record, but beside an existing ``ok`` record (``<id>.failed.json``), never over it.
    """
    method, task = setup(config)
    identity = _identity(config, task)
    if preflight.files_named(method):  # files named by parameters against the split, before any companion
        from benchbed.data.prepare import prepare_split

        prepared = identity.prepared or prepare_split(
            config.dataset, config.split or task.default_split, dict(config.split_params)
        )
        check_files_for_split(config, method, prepared.split)
    run_companions(config, progress=progress, log=log)
    path = record_path(get_settings().results_dir, config, identity.files_hash)
    # one run of a configuration at a time: a second one waits here (or, with --no-wait, says who holds it),
    # then finds the first one's record. Data parallel: the main process decides for every rank.
    lock = (
        locks.hold(
            lock_path(path),
            f"{config.method} on {config.dataset} ({path.name})",
            on_wait=_say_waiting,
            optional=True,  # a results tree that takes no lock takes no record: check_writable says so
        )
        if parallel.world().is_main
        else contextlib.nullcontext()
    )
    with lock:
        return _execute_held(config, method, task, identity, force=force, progress=progress, log=log)


def lock_path(record_file: Path) -> Path:
    """The lock of a record id: in a hidden ``.locks`` folder beside the record (not a record itself)."""
    return record_file.parent / ".locks" / (record_file.name.removesuffix(".json") + ".lock")


def _say_waiting(message: str) -> None:
    if get_settings().verbosity >= 0:
        from rich.console import Console

        Console(stderr=True).print(message, highlight=False, markup=False)


def _execute_held(
    config: RunConfig,
    method: BaseRecommender,
    task: Task,
    identity: SplitIdentity,
    *,
    force: bool,
    progress: bool,
    log: Callable[[str], None] | None,
) -> RunOutcome:
    """:func:`execute` once this process holds the record's lock."""
    path, existing = find_existing(config, identity)
    # data parallel (accelerate launch): the main process decides, so every rank runs or skips alike
    existing = parallel.from_main(existing)
    if existing is not None and not force:
        return RunOutcome(existing, path, skipped=True)
    check_writable(path.parent)
    if log is None and progress and get_settings().verbosity >= 0 and parallel.world().is_main:
        from rich.console import Console

        console = Console(stderr=True)
        log = lambda message: console.print(message, highlight=False)  # noqa: E731
    ctx = make_context(config, log)  # its task setup is filled in once the split is known
    seed_everything(config.seed)
    record = _new_record(config, method, task, ctx, identity)
    predictions = None
    try:
        predictions = _run_stages(config, method, task, ctx, record, identity.prepared)
        record.status = "ok"
    except BaseException as exc:
        numerical = _record_failure(config, method, ctx, record, path, exc)
        if numerical is not None:
            raise numerical from numerical.__cause__
        raise
    finally:
        _remove_empty_dirs(ctx.work_dir, ctx.work_dir.parent, ctx.cache_dir / "recbole" / "work")
    record.info["parallel"] = parallel.world().info(method.params)  # world size, launcher, effective batch
    if parallel.world().is_main:  # one record per run, whatever the number of processes
        write_record(path, record, predictions if config.save_predictions else None)
        failed_path(path).unlink(missing_ok=True)  # an earlier failed re-run is superseded
    ctx.say(f"record written to {path}")
    return RunOutcome(record, path, skipped=False)


def _new_record(
    config: RunConfig, method: BaseRecommender, task: Task, ctx: RunContext, identity: SplitIdentity
) -> RunRecord:
    """The run's record before any work: ``failed`` until the stages finish."""
    return RunRecord(
        run_id=uuid.uuid4().hex[:12],
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        config=asdict(config),
        config_hash=config.hash(),
        method=config.method,
        method_params=dict(method.params),
        params_hash=stable_hash(method.params),
        dataset=config.dataset,
        task=config.task,
        seed=config.seed,
        status="failed",
        benchbed_version=benchbed.__version__,
        git_sha=git_sha(),
        task_params=dict(task.params),
        cost={"device": ctx.device, "dtype": ctx.dtype},
        environment=collect_environment(),
        dataset_path=identity.path,
    )


def _record_failure(
    config: RunConfig,
    method: BaseRecommender,
    ctx: RunContext,
    record: RunRecord,
    path: Path,
    exc: BaseException,
) -> NumericalError | None:
    """Write the failure record (beside an ``ok`` one, never over it); the numerical error to raise
    instead of ``exc`` when the arithmetic failed (a singular matrix, an overflow: it names the parameter)."""
    numerical = numerical_error(config, method, exc)
    if numerical is not None:
        exc = numerical
    record.status, record.error = "failed", one_line(exc) or "interrupted"
    record.cost["peak_memory_mb"] = peak_memory_mb(ctx.device)
    record.info["parallel"] = parallel.world().info(method.params)
    target = failed_path(path) if _holds_ok_record(path) else path
    try:
        if parallel.world().is_main:
            write_record(target, record)
        ctx.say(f"[red]run failed[/]: {record.error} (record: {target})")
    except OSError as write_exc:  # the original error matters more; say why nothing was written
        ctx.say(f"[red]run failed[/]: {record.error} (no failure record: {target}: {write_exc.strerror})")
    return numerical


def _run_stages(
    config: RunConfig,
    method: BaseRecommender,
    task: Task,
    ctx: RunContext,
    record: RunRecord,
    prepared: PreparedSplit | None = None,
) -> Any:
    from benchbed.data.prepare import prepare_split

    if cuda_present(ctx.device):
        import torch

        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    # a task may name the protocol it is defined on (generative: leave-one-out) for runs that give none
    split_name = config.split or task.default_split
    if prepared is None:  # built already when find_existing needed its hashes
        prepared = prepare_split(config.dataset, split_name, dict(config.split_params))
    split = prepared.split
    record.dataset_hash = split.data.content_hash()
    record.split_protocol = split.protocol
    record.split_params = dict(split.params)
    record.split_hash = split.key
    record.cost["prepare_s"] = round(time.perf_counter() - start, 3)
    ctx.say(
        f"[bold]{config.method}[/] on {config.dataset} · {config.task} · {split.protocol} "
        f"(split {record.split_hash}, {'cached' if prepared.cache_hit else 'built'}) · seed {config.seed} · "
        f"{ctx.device}/{ctx.dtype}"
    )
    task.check_split(split)
    task.check_method(method, split)
    ctx.setup = task.method_setup(split)  # declared hand-over: task name, positives, protocol setup
    ctx.work_dir.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    method.fit(split, ctx)
    record.cost["train_s"] = round(time.perf_counter() - start, 3)
    # an ID baseline's embeddings serve LLM methods later (collm asks for those of its mf companion)
    if keep_fitted_embeddings(split, config.method, method, ctx, record.cost["train_s"]):
        ctx.say(f"{config.method}: embeddings kept in the cache for LLM methods")
    record.backbone = dict(method.backbone_info) or None
    record.templates = method.template_info
    record.cost["trainable_params"] = int(method.trainable_parameters())

    start = time.perf_counter()
    result = task.evaluate(method, split, ctx, stage="test")
    record.cost["eval_s"] = round(time.perf_counter() - start, 3)
    record.cost["peak_memory_mb"] = peak_memory_mb(ctx.device)
    record.metrics = {s: {k: float(v) for k, v in m.items()} for s, m in result.metrics.items()}
    record.counts = result.counts
    record.info = {**result.info, "split_cache_hit": prepared.cache_hit}
    method_info = method.record_info()  # e.g. an LLM method's budget and stages
    if method_info:
        record.info["method"] = method_info
        if method_info.get("time_capped"):  # a wall-clock cap fired: the leaderboard marks the row
            record.info["time_capped"] = True
    return result.predictions


def run(config: RunConfig, *, force: bool = False, progress: bool = True) -> RunRecord:
    """Run one config and return its record (the existing one when already done, unless ``force``)."""
    return execute(config, force=force, progress=progress).record
