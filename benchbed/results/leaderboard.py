"""Records -> leaderboard tables: a pure function, so every renderer and test sees the same numbers.

Grouping: one board per (dataset, task, split protocol + params, task params); numbers from different
protocols or candidate sets are never put in one table. One row per (method, full params). Columns are
``subset/metric`` (``all/auc``, ``warm/ndcg@10``). A cell is the mean over the row's seeds with the standard
error of the mean (sample std / sqrt(n)) when there are two or more; if any seed lacks the value (metric
undefined, or not computed) the cell has no mean at all, because a mean over a different set of seeds would
not be comparable with its neighbours. With two or more seeds a cell also has a t-based 95% CI
(``Cell.ci95``); rows carry significance marks once :mod:`benchbed.results.significance` annotates them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchbed.config import stable_hash
from benchbed.errors import ConfigError
from benchbed.results.record import RunRecord
from benchbed.results.reference import ReferenceRow

SUBSET_ORDER = ("all", "warm", "cold", "seen", "unseen", "unseen:warm", "unseen:cold")
# what a run cost, from ``record.cost`` (the runner measures them): columns ``cost/<key>``, lower is better;
# not shown unless asked for (``--metrics train_s``), a report shows them always
COST_SUBSET = "cost"
COST_KEYS = ("train_s", "eval_s", "peak_memory_mb", "trainable_params")


@dataclass
class Cell:
    mean: float | None
    sem: float | None  # None with a single seed
    n: int  # seeds that have a value
    total: int  # seeds in the row
    ci95: tuple[float, float] | None = None  # t-based 95% CI of the mean over seeds (two or more)
    # said instead of a number where a number would mislead (``--vs-paper``: "backbone differs")
    text: str | None = None


@dataclass
class Row:
    method: str
    label: str
    params: dict[str, Any]
    params_hash: str
    seeds: list[int]
    cells: dict[str, Cell]
    source: str | None = None  # citation for a paper-reported row; None for our own runs
    note: str | None = None
    # a wall-clock cap stopped training in some seed (``record.info["time_capped"]``, set from
    # ``TrainResult.time_capped``): the numbers depend on machine load, so every rendering marks the row
    time_capped: bool = False
    # the LLM backbone was a random-init preset (``tiny``): the row tests the pipeline, not the method
    random_init: bool = False
    # "<dataset_hash>/<split_hash>" of its records: seeds aggregate only over runs on the same data
    data: str = ""
    # significance against the board's best row on ``Board.mark_column`` (benchbed.results.significance):
    # mark is "best" | "n.s." | "worse" | "no test" (None: not annotated); p_value is corrected
    mark: str | None = None
    mark_note: str = ""  # why "no test"
    p_value: float | None = None
    p_raw: float | None = None
    test: str | None = None
    diff: float | None = None  # this row - the best row
    diff_ci95: tuple[float, float] | None = None

    @property
    def is_reference(self) -> bool:
        return self.source is not None


@dataclass
class Board:
    dataset: str
    task: str
    protocol: str
    split_params: dict[str, Any]
    task_params: dict[str, Any]
    columns: list[str]
    rows: list[Row] = field(default_factory=list)

    # defaults of the protocol / task: the title names only the parameters that differ from them
    split_defaults: dict[str, Any] = field(default_factory=dict)
    task_defaults: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # printed under the table (e.g. the --vs-paper sources)
    # significance marks (benchbed.results.significance.annotate_boards): the tested column, the level, the
    # correction, and per tested column the smallest difference detectable at 80% power
    mark_column: str | None = None
    alpha: float | None = None
    correction: str | None = None
    power_notes: list[str] = field(default_factory=list)
    # ``cost/<key>`` columns some row has a value for (cells in ``Row.cells``; see :func:`select_columns`)
    cost_columns: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        def fmt(name: str, params: dict[str, Any], defaults: dict[str, Any]) -> str:
            diff = {k: v for k, v in params.items() if k not in defaults or defaults[k] != v}
            return f"{name} ({', '.join(f'{k}={v}' for k, v in sorted(diff.items()))})" if diff else name

        task = fmt(self.task, self.task_params, self.task_defaults)
        return f"{self.dataset} · {task} · {fmt(self.protocol, self.split_params, self.split_defaults)}"


def metric_direction(column: str) -> bool:
    """True when higher is better for a column (``warm/auc``) or key (``logloss``); unknown keys: higher."""
    from benchbed.metrics import higher_is_better

    subset, _, key = column.rpartition("/")
    if subset == COST_SUBSET or (not subset and key in COST_KEYS):
        return False  # seconds, megabytes, parameters: less is better
    try:
        return higher_is_better(key)
    except Exception:  # a custom key that the registry does not know
        return True


METRIC_ORDER = (
    "auc",
    "uauc",
    "gauc",
    "ndcg",
    "logloss",
    "hr",
    "ndcg",
    "recall",
    "recall_min",
    "mrr",
    "precision",
)
PRIMARY_COLUMNS = ("all/auc", "all/ndcg@10", "all/hr@10", "all/sc")  # default sort, when present


def metric_sort_key(key: str) -> tuple[int, int, str]:
    """Known metrics in a fixed order (CTR first, then ranking by cut-off), unknown ones after, by name."""
    base, sep, cut = key.partition("@")
    if sep:
        rank = METRIC_ORDER.index(base, 5) if base in METRIC_ORDER[5:] else len(METRIC_ORDER)
        return (rank, int(cut) if cut.isdigit() else 0, key)
    return (METRIC_ORDER.index(base) if base in METRIC_ORDER[:5] else len(METRIC_ORDER), 0, key)


def _column_sort_key(column: str) -> tuple[int, str, tuple[int, int, str]]:
    subset, _, key = column.rpartition("/")
    rank = SUBSET_ORDER.index(subset) if subset in SUBSET_ORDER else len(SUBSET_ORDER)
    return (rank, subset, metric_sort_key(key))


def _columns(values: Iterable[dict[str, dict[str, Any]]]) -> list[str]:
    found = {
        f"{subset}/{key}" for metrics in values for subset, by_metric in metrics.items() for key in by_metric
    }
    return sorted(found, key=_column_sort_key)


def aggregate(values: Sequence[float | None]) -> Cell:
    """Mean ± standard error over seeds; no mean unless every seed has a finite value."""
    total = len(values)
    present = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if total == 0 or len(present) < total:
        return Cell(None, None, len(present), total)
    mean = sum(present) / total
    sem, ci95 = None, None
    if total >= 2:
        from benchbed.stats.power import t_interval

        var = sum((v - mean) ** 2 for v in present) / (total - 1)
        sem = math.sqrt(var / total)
        ci95 = t_interval(present)
    return Cell(mean, sem, total, total, ci95)


def _record_group(record: RunRecord) -> tuple[str, str, str, str, str]:
    return (
        record.dataset,
        record.task,
        record.split_protocol or "?",
        stable_hash(record.split_params),
        stable_hash(record.task_params),
    )


def _labels(rows: list[Row]) -> None:
    """Label rows by method name; where one method appears with several param sets, add the differences."""
    by_method: dict[str, list[Row]] = {}
    for row in rows:
        by_method.setdefault(row.method, []).append(row)
    for group in by_method.values():
        if len(group) == 1:
            group[0].label = group[0].method
            continue
        keys = sorted({k for r in group for k in r.params})
        differing = [k for k in keys if len({repr(r.params.get(k)) for r in group}) > 1]
        same_params = len({r.params_hash for r in group}) < len(group)  # the same run on other data
        for r in group:
            diff = ", ".join(f"{k}={r.params.get(k)}" for k in differing)
            if same_params:
                data, _, split = r.data.partition("/")
                tag = f"[data {data[:6] or '?'}/{split[:6] or '?'}]"
                r.label = f"{r.method} ({diff}) {tag}" if diff else f"{r.method} {tag}"
            else:
                r.label = f"{r.method} ({diff})" if diff else f"{r.method} [{r.params_hash[:6]}]"


def build_leaderboard(
    records: Iterable[RunRecord],
    references: Iterable[ReferenceRow] = (),
    *,
    dataset: str | None = None,
    task: str | None = None,
    sort: str | None = None,
    include_reference_only: bool = False,
    defaults: Callable[[str, str, str], tuple[dict[str, Any], dict[str, Any]]] | None = None,
) -> list[Board]:
    """Group successful records into boards, aggregate seeds, add matching paper rows, sort.

    Failed records are not rows (the CLI lists them as skipped). ``sort`` is a column (``warm/auc``), a
    metric key (``auc`` = ``all/auc``), ``method`` or ``seeds``; default: the board's first column.
    Our rows come first, then paper rows, each sorted the same way. Paper rows join a board only when
    dataset, task, protocol, the task parameters the block names and the split parameters all match
    (:meth:`ReferenceRow.matches`; split parameters against the dataset's defaults, so ``defaults`` matters
    here too); with ``include_reference_only`` the others get boards of their own.
    ``defaults(dataset, task, protocol) -> (split defaults, task defaults)`` shortens board titles (the CLI
    passes :func:`registry_defaults`); records always keep the full parameters.
    """
    groups = _groups(records, dataset, task)
    refs = [r for r in references if (not dataset or dataset in r.datasets) and (not task or task in r.tasks)]
    boards: list[Board] = []
    used: set[int] = set()

    def order(key: GroupKey) -> tuple[str, ...]:
        first = groups[key][0]  # boards in a readable order: by name, then by their parameters
        return (*key[:3], json.dumps(first.split_params, sort_keys=True, default=str), key[4])

    for key in sorted(groups, key=order):
        boards.append(_record_board(key, groups[key], refs, used, defaults))
    if include_reference_only:
        boards += _reference_only_boards(refs, used)
    if defaults is not None:
        for board in boards:
            board.split_defaults, board.task_defaults = defaults(board.dataset, board.task, board.protocol)
    if sort and boards and not any(_has_column(b, sort) for b in boards):
        resolve_column(boards[0], sort)  # raises with the list of columns
    for board in boards:
        sort_board(board, sort if sort and _has_column(board, sort) else None)
    return boards


GroupKey = tuple[str, str, str, str, str]


def _groups(
    records: Iterable[RunRecord], dataset: str | None, task: str | None
) -> dict[GroupKey, list[RunRecord]]:
    """Successful records by (dataset, task, protocol, split parameters, task parameters)."""
    groups: dict[GroupKey, list[RunRecord]] = {}
    for rec in records:
        if rec.status != "ok":
            continue
        if (dataset and rec.dataset != dataset) or (task and rec.task != task):
            continue
        groups.setdefault(_record_group(rec), []).append(rec)
    return groups


def _record_board(
    key: GroupKey,
    recs: list[RunRecord],
    refs: list[ReferenceRow],
    used: set[int],
    defaults: Callable[[str, str, str], tuple[dict[str, Any], dict[str, Any]]] | None,
) -> Board:
    """The board of one group of records with the paper rows that match it (their indices go to ``used``)."""
    first = recs[0]
    board = Board(first.dataset, first.task, key[2], dict(first.split_params), dict(first.task_params), [])
    if defaults is not None:  # known here so that paper rows join only boards at the paper's split
        board.split_defaults, board.task_defaults = defaults(board.dataset, board.task, board.protocol)
    matched = [
        (i, r)
        for i, r in enumerate(refs)
        if r.matches(
            board.dataset,
            board.task,
            board.protocol,
            board.task_params,
            split_params=board.split_params,
            split_defaults=board.split_defaults,
        )
    ]
    used.update(i for i, _ in matched)
    _fill(board, recs, [r for _, r in matched])
    return board


def _reference_only_boards(refs: list[ReferenceRow], used: set[int]) -> list[Board]:
    """Boards of the paper rows no record's board took (``include_reference_only``)."""
    leftover: dict[tuple[str, str, str, str], list[ReferenceRow]] = {}
    for i, ref in enumerate(refs):
        if i not in used:
            sub = json.dumps(ref.task_params, sort_keys=True)  # sequential / straightforward apart
            leftover.setdefault((ref.datasets[0], ref.tasks[0], ref.protocols[0], sub), []).append(ref)
    boards = []
    for (ds, tk, proto, sub), rows in sorted(leftover.items()):
        board = Board(ds, tk, proto, {}, json.loads(sub), [])
        _fill(board, [], rows)
        boards.append(board)
    return boards


RANDOM_INIT_IDS = (
    "tiny",
    "tiny-gpt2",
)  # benchbed.llm.backbone.loader.RANDOM_INIT_PRESETS (results sit below llm)


def random_init_backbone(backbone: dict[str, Any] | None) -> bool:
    """Whether a record's LLM backbone had random weights (records before ``pretrained`` existed: by id)."""
    if not backbone or "id" not in backbone:
        return False
    if "pretrained" in backbone:
        return not bool(backbone["pretrained"])
    return backbone.get("kind") == "preset" and backbone.get("id") in RANDOM_INIT_IDS


def _has_column(board: Board, name: str) -> bool:
    return (
        name in ("method", "seeds")
        or name in board.columns
        or f"all/{name}" in board.columns
        or name in board.cost_columns
        or f"{COST_SUBSET}/{name}" in board.cost_columns
    )


def _fill(board: Board, records: list[RunRecord], refs: list[ReferenceRow]) -> None:
    """Our rows (one per method + params, seeds aggregated), then the paper rows; sets the columns."""
    by_row: dict[tuple[str, str, str], dict[int, RunRecord]] = {}
    for rec in sorted(records, key=lambda r: r.created):
        # one value per seed: a seed run twice (e.g. --force after a code change) counts once, the newest;
        # runs on other data (a directory dataset edited, another preprocessing) are another row
        data = f"{rec.dataset_hash or ''}/{rec.split_hash or ''}"
        by_row.setdefault((rec.method, rec.params_hash, data), {})[rec.seed] = rec
    board.columns = _columns([rec.metrics for rec in records] + [ref.metrics for ref in refs])
    for (method, params_hash, data), per_seed in sorted(by_row.items()):
        seeds = sorted(per_seed)
        cells = {}
        for column in board.columns:
            subset, _, key = column.rpartition("/")
            cells[column] = aggregate([per_seed[s].metrics.get(subset, {}).get(key) for s in seeds])
        for key in COST_KEYS:
            values = [per_seed[s].cost.get(key) for s in seeds]
            if any(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                cells[f"{COST_SUBSET}/{key}"] = aggregate([_number(v) for v in values])
        params = dict(per_seed[seeds[0]].method_params)
        capped = any(bool(per_seed[s].info.get("time_capped")) for s in seeds)
        rand = any(random_init_backbone(per_seed[s].backbone) for s in seeds)
        row = Row(method, method, params, params_hash, seeds, cells, time_capped=capped, random_init=rand)
        row.data = data
        board.rows.append(row)
    _labels(board.rows)
    board.cost_columns = [
        f"{COST_SUBSET}/{k}" for k in COST_KEYS if any(f"{COST_SUBSET}/{k}" in r.cells for r in board.rows)
    ]
    for ref in refs:
        cells = {c: Cell(v, None, 1, 1) for c in board.columns if (v := ref.value(c)) is not None}
        board.rows.append(
            Row(
                ref.method_id or ref.method,
                ref.method,
                dict(ref.params),
                "",
                [],
                cells,
                ref.citation,
                ref.note,
            )
        )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def resolve_column(board: Board, name: str) -> str:
    """``auc`` -> ``all/auc``; a full ``subset/metric`` column is returned as is."""
    if name in board.columns or name in ("method", "seeds"):
        return name
    if f"all/{name}" in board.columns:
        return f"all/{name}"
    if name in board.cost_columns or f"{COST_SUBSET}/{name}" in board.cost_columns:
        return name if name in board.cost_columns else f"{COST_SUBSET}/{name}"
    raise ConfigError(
        f"--sort: no column {name!r} in {board.title!r}; columns: method, seeds, {', '.join(board.columns)}"
    )


def sort_board(board: Board, sort: str | None) -> None:
    """Sort ours and paper rows separately, best first by the column's direction; empty cells last."""
    if not board.columns and sort is None:
        return
    if sort:
        column = resolve_column(board, sort)
    else:
        primary = [c for c in PRIMARY_COLUMNS if c in board.columns]
        column = primary[0] if primary else (board.columns[0] if board.columns else "method")

    def key(row: Row) -> tuple[int, Any, str]:
        if column == "method":
            return (0, row.label.lower(), row.label)
        if column == "seeds":
            return (0, -len(row.seeds), row.label)
        cell = row.cells.get(column)
        if cell is None or cell.mean is None:
            return (1, 0.0, row.label)
        value = -cell.mean if metric_direction(column) else cell.mean
        return (0, value, row.label)

    ours = sorted((r for r in board.rows if not r.is_reference), key=key)
    papers = sorted((r for r in board.rows if r.is_reference), key=key)
    board.rows = ours + papers


def select_columns(
    boards: list[Board], metrics: list[str] | None = None, subsets: list[str] | None = None
) -> None:
    """Keep only columns whose metric key is in ``metrics`` and subset in ``subsets`` (None: all). Cost
    columns join only when named: ``metrics`` holding ``train_s``, or ``subsets`` holding ``cost``."""
    for board in boards:
        keep = []
        for column in dict.fromkeys(board.columns + board.cost_columns):
            subset, _, key = column.rpartition("/")
            if subset == COST_SUBSET:
                named = metrics is not None and key in metrics
                whole = subsets is not None and COST_SUBSET in subsets and (metrics is None or key in metrics)
                if named or whole:
                    keep.append(column)
            elif (metrics is None or key in metrics) and (subsets is None or subset in subsets):
                keep.append(column)
        board.columns = keep


def known_metric_keys(boards: Sequence[Board]) -> list[str]:
    """Every metric key on these boards plus the cost keys: what ``--metrics`` may name."""
    keys = {c.rpartition("/")[2] for b in boards for c in b.columns}
    return sorted(keys, key=metric_sort_key) + [k for k in COST_KEYS if k not in keys]
