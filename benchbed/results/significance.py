"""Is a row's gap to the best real? Paired tests between runs, and the marks a leaderboard prints.

:func:`paired_test` compares two :class:`~benchbed.results.units.Units` of one column: DeLong for AUC (its
units are the rows' structural components), Fisher's randomisation test (default), paired t, Wilcoxon or a
paired bootstrap for every per-unit metric. :func:`comparability_problem` refuses two records that were not
evaluated on the same units (dataset, split, task parameters).

:func:`annotate_boards` marks every row of a board on its sort column: ``best`` (the best row whose
predictions can be tested), ``n.s.`` (not significantly different from the best after the correction),
``worse`` (significantly worse), or ``no test`` (a paper row, a record without predictions, other units), with
the corrected p-value and the 95% CI of row - best. Several seeds: each unit's mean over seeds is tested.
Each board also gets a power note: the smallest difference its test could detect at 80% power at the board's
n, from the observed paired variance, so "n.s." can be read as "too little data" where it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchbed.config import stable_hash
from benchbed.errors import BenchbedError, ConfigError, DataError
from benchbed.results.leaderboard import PRIMARY_COLUMNS, Board, Row, metric_direction
from benchbed.results.record import RunRecord
from benchbed.results.units import Units, align, record_units, seed_mean
from benchbed.stats import canonical_test, default_test
from benchbed.stats.paired import DEFAULT_DRAWS, PairedResult

MARK_BEST, MARK_TIE, MARK_WORSE, MARK_NONE = "best", "n.s.", "worse", "no test"
MARKS = (MARK_BEST, MARK_TIE, MARK_WORSE, MARK_NONE)


def comparability_problem(a: RunRecord, b: RunRecord) -> str | None:
    """Why two records' predictions cannot be paired (None: they can): the same dataset content, split and
    task parameters (which fix the evaluated rows, users and candidates) are required."""
    checks = (
        ("task", a.task, b.task),
        ("dataset", a.dataset_hash or a.dataset, b.dataset_hash or b.dataset),
        ("split protocol", a.split_protocol, b.split_protocol),
        ("split", a.split_hash, b.split_hash),
        ("split parameters", stable_hash(a.split_params), stable_hash(b.split_params)),
        ("task parameters", stable_hash(a.task_params), stable_hash(b.task_params)),
    )
    for what, x, y in checks:
        if x != y:
            if what in ("split parameters", "task parameters"):  # the parameters, not their hashes
                shown = (
                    (a.split_params, b.split_params)
                    if what == "split parameters"
                    else (a.task_params, b.task_params)
                )
                return f"different {what} ({shown[0]} vs {shown[1]})"
            return f"different {what} ({x} vs {y})"
    return None


def paired_test(
    a: Units, b: Units, test: str | None = None, *, draws: int = DEFAULT_DRAWS, seed: int = 0
) -> PairedResult:
    """Test ``a - b`` on their shared units (which must be the same units); ``test`` None: the metric's
    default (DeLong for AUC, randomisation otherwise)."""
    from benchbed.stats import paired
    from benchbed.stats.delong import Components, delong_from_components

    align(a, b)
    name = default_test(a.metric) if test is None else canonical_test(test)
    if a.labels is not None:  # AUC: the units are DeLong components, only DeLong reads them right
        if name != "delong":
            raise ConfigError(
                f"--test {name}: AUC is tested with delong (its rows are not independent units)"
            )
        pos = a.labels == 1
        result = delong_from_components(
            Components(a.values[pos], a.values[~pos]), Components(b.values[pos], b.values[~pos])
        )
        return PairedResult(
            "delong", int(a.keys.size), result.auc_a, result.auc_b, result.difference, result.ci_low,
            result.ci_high, result.p_value, result.z,
        )  # fmt: skip
    if name == "delong":
        raise ConfigError(f"--test delong applies to auc only, not {a.metric!r}")
    if name in ("t", "wilcoxon") and a.weights is not None:
        raise ConfigError(f"--test {name}: {a.metric} is a weighted mean; use randomisation or bootstrap")
    if name == "randomisation":
        return paired.randomisation_test(a.values, b.values, a.weights, draws=draws, seed=seed)
    if name == "bootstrap":
        return paired.bootstrap_test(a.values, b.values, a.weights, draws=draws, seed=seed)
    if name == "t":
        return paired.paired_t_test(a.values, b.values)
    return paired.wilcoxon_test(a.values, b.values, draws=draws, seed=seed)


def difference_se(a: Units, b: Units, result: PairedResult) -> float:
    """Standard error of a - b, for the power note: DeLong's, or the paired per-unit one."""
    from benchbed.stats.power import paired_se

    if a.labels is not None:
        return abs(result.difference / result.statistic) if result.statistic else 0.0
    return paired_se(a.values - b.values, a.weights)


# ------------------------------------------------------------------------------------------------------
# boards
# ------------------------------------------------------------------------------------------------------
RecordIndex = dict[tuple[str, ...], dict[int, tuple[Path, RunRecord]]]


def index_records(records: Sequence[tuple[Path, RunRecord]]) -> RecordIndex:
    """(board identity, method, params hash, data) -> {seed: (path, record)}, the newest record per seed
    (the rule the leaderboard uses to aggregate seeds)."""
    index: RecordIndex = {}
    for path, rec in sorted(records, key=lambda pr: pr[1].created):
        if rec.status != "ok":
            continue
        key = row_key(rec)
        index.setdefault(key, {})[rec.seed] = (path, rec)
    return index


def row_key(rec: RunRecord) -> tuple[str, ...]:
    return (
        rec.dataset,
        rec.task,
        rec.split_protocol or "?",
        stable_hash(rec.split_params),
        stable_hash(rec.task_params),
        rec.method,
        rec.params_hash,
        f"{rec.dataset_hash or ''}/{rec.split_hash or ''}",
    )


def board_row_key(board: Board, row: Row) -> tuple[str, ...]:
    return (
        board.dataset,
        board.task,
        board.protocol,
        stable_hash(board.split_params),
        stable_hash(board.task_params),
        row.method,
        row.params_hash,
        row.data,
    )


def mark_column(board: Board, sort: str | None = None) -> str | None:
    """The column the marks test: the sort column when it is a metric of the board, else the default sort
    column (``all/auc``, ``all/ndcg@10``, ``all/hr@10``, else the first)."""
    if sort:
        for name in (sort, f"all/{sort}"):
            if name in board.columns:
                return name
    primary = [c for c in PRIMARY_COLUMNS if c in board.columns]
    return primary[0] if primary else (board.columns[0] if board.columns else None)


def _row_units(row: Row, seeds: dict[int, tuple[Path, RunRecord]], column: str) -> tuple[Units | None, str]:
    """The row's per-unit values (mean over its seeds), or None and why not."""
    if not seeds or sorted(seeds) != sorted(row.seeds):
        return None, "records not found"
    runs = []
    for _, (path, rec) in sorted(seeds.items()):
        if not rec.predictions:
            return None, "no predictions saved"
        try:
            runs.append(record_units(path, rec, column, verify_keys=False))
        except BenchbedError as exc:
            return None, str(exc).removeprefix(f"{path}: ")
    try:
        return seed_mean(runs), ""
    except DataError as exc:
        return None, str(exc)


def annotate_boards(
    boards: Sequence[Board],
    records: Sequence[tuple[Path, RunRecord]],
    *,
    alpha: float = 0.05,
    correction: str = "holm",
    sort: str | None = None,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> None:
    """Mark every row of every board against the board's best testable row (see the module docstring)."""
    from benchbed.stats.multiple import adjust

    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha: expected a level in (0, 1), got {alpha}")
    adjust([], correction)  # an unknown correction fails before any work
    index = index_records(records)
    for board in boards:
        column = mark_column(board, sort)
        board.mark_column, board.alpha, board.correction = column, alpha, correction
        for row in board.rows:
            row.mark, row.mark_note = MARK_NONE, "paper-reported" if row.is_reference else ""
        if column is None:
            continue
        units = _board_units(board, index, column)
        if not units:
            continue
        higher = metric_direction(column)
        best = max(units, key=lambda i: units[i].mean if higher else -units[i].mean)
        board.rows[best].mark = MARK_BEST
        tested = _tests_against_best(board, units, best, draws, seed)
        if not tested:
            continue
        adjusted = adjust([r.p_value for _, r, _ in tested], correction)
        for (i, result, _), p in zip(tested, adjusted, strict=True):
            row = board.rows[i]
            row.mark = MARK_WORSE if p < alpha else MARK_TIE
            row.p_value, row.p_raw, row.test = float(p), result.p_value, result.test
            row.diff, row.diff_ci95 = result.difference, (result.ci_low, result.ci_high)
        board.rows[best].test = tested[0][1].test
        _power_note(board, column, units[best], tested, alpha)


def _board_units(board: Board, index: RecordIndex, column: str) -> dict[int, Units]:
    """Per-unit values of each testable row (by row index); the others get a note saying why not."""
    units: dict[int, Units] = {}
    for i, row in enumerate(board.rows):
        if row.is_reference:
            continue
        cell = row.cells.get(column)
        if cell is None or cell.mean is None:
            row.mark_note = "no value"
            continue
        found, why = _row_units(row, index.get(board_row_key(board, row), {}), column)
        if found is None:
            row.mark_note = why
        else:
            units[i] = found
    return units


def _tests_against_best(
    board: Board, units: dict[int, Units], best: int, draws: int, seed: int
) -> list[tuple[int, PairedResult, float]]:
    """The paired test of every other testable row against the best, with the difference's s.e."""
    tested: list[tuple[int, PairedResult, float]] = []
    for i, u in units.items():
        if i == best:
            continue
        try:
            result = paired_test(u, units[best], draws=draws, seed=seed)
        except DataError as exc:
            board.rows[i].mark_note = str(exc)
            continue
        tested.append((i, result, difference_se(u, units[best], result)))
    return tested


def _power_note(
    board: Board, column: str, unit: Units, tested: list[tuple[int, PairedResult, float]], alpha: float
) -> None:
    """What the tests could detect: the minimum detectable difference at 80% power, middle and range."""
    from benchbed.stats.power import minimum_detectable_difference

    mdds = [minimum_detectable_difference(se, alpha) for _, _, se in tested if math.isfinite(se)]
    n_text = f"{unit.keys.size} {unit.kind}"
    if mdds:
        lo, mid, hi = float(np.min(mdds)), float(np.median(mdds)), float(np.max(mdds))
        spread = f" (rows: {lo:.4f}-{hi:.4f})" if len(mdds) > 1 else ""
        board.power_notes.append(
            f"{column}: {tested[0][1].test} test on {n_text}; the smallest difference from the best it "
            f"detects at 80% power (alpha {alpha:g}) is {mid:.4f}{spread}: gaps below that can read "
            "n.s. for want of data"
        )
