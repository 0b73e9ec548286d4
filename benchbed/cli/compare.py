"""CLI: ``benchbed compare A B``: is A's difference from B real? Paired tests on their saved predictions.

A and B are record files or row labels of a leaderboard (``mf``, ``collm (cf=lightgcn)``); a label stands for
all of its row's seeds, whose per-unit values are averaged before the test. Both must have been evaluated on
the same units (dataset, split, task parameters), else the command refuses and names what differs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from benchbed.errors import ConfigError
from benchbed.results.record import RunRecord

BoardKey = tuple[str, ...]


@dataclass
class Side:
    """One side of the comparison: its name and its runs (one per seed) on one board."""

    name: str
    board: BoardKey
    runs: list[tuple[Path, RunRecord]]


def _is_file(spec: str) -> bool:
    return spec.endswith(".json") or Path(spec).is_file()


def _candidates(
    spec: str, records: list[tuple[Path, RunRecord]], dataset: str | None, task: str | None, split: str | None
) -> list[Side]:
    """Every (board, runs) a spec can stand for: one for a record file, one per board holding the label."""
    from benchbed.results.leaderboard import build_leaderboard
    from benchbed.results.record import read_record
    from benchbed.results.significance import board_row_key, index_records, row_key

    if _is_file(spec):
        path = Path(spec)
        record = read_record(path)
        if record.status != "ok":
            raise ConfigError(f"{path}: a failed run ({record.error}); nothing to compare")
        return [Side(str(path), row_key(record)[:5], [(path, record)])]
    index = index_records(records)
    found = []
    from benchbed.cli.board_defaults import registry_defaults

    boards = build_leaderboard(
        [r for _, r in records], dataset=dataset, task=task, defaults=registry_defaults
    )
    for board in boards:
        if split is not None and board.protocol != split:
            continue
        for row in board.rows:
            if row.label == spec:
                key = board_row_key(board, row)
                runs = [index[key][s] for s in sorted(index.get(key, {}))]
                found.append(Side(f"{spec} [{board.title}]", key[:5], runs))
    return found


def resolve_pair(
    a: str,
    b: str,
    records: list[tuple[Path, RunRecord]],
    dataset: str | None = None,
    task: str | None = None,
    split: str | None = None,
) -> tuple[Side, Side]:
    """The two sides on one common board; a label that is on no board, or that leaves two boards possible,
    is a one-line usage error."""
    side_a = _candidates(a, records, dataset, task, split)
    side_b = _candidates(b, records, dataset, task, split)
    for spec, sides in ((a, side_a), (b, side_b)):
        if not sides:
            labels = sorted({r.method for _, r in records})
            raise ConfigError(
                f"{spec!r}: no record file and no leaderboard row with this label (methods with records: "
                f"{', '.join(labels[:12])}{', ...' if len(labels) > 12 else ''}; a row's label is as "
                "`benchbed leaderboard` prints it)"
            )
    pairs = [(x, y) for x in side_a for y in side_b if x.board == y.board]
    if len(pairs) > 1:
        titles = "; ".join(x.name for x, _ in pairs)
        raise ConfigError(
            f"{a!r} and {b!r} match rows on {len(pairs)} boards ({titles}); "
            "pass --task / --split / --dataset or record files"
        )
    if not pairs:
        from benchbed.results.significance import comparability_problem

        problem = comparability_problem(side_a[0].runs[0][1], side_b[0].runs[0][1])
        raise ConfigError(
            f"{a!r} and {b!r} were not evaluated on the same units: "
            f"{problem or 'they are on different boards'}; a paired test needs the same rows"
        )
    return pairs[0]


def _columns(side_a: Side, side_b: Side, metrics: list[str] | None) -> list[str]:
    """``subset/metric`` columns to test: the named ones (``auc`` = ``all/auc``), else every ``all`` metric
    both sides have."""
    have_a = {f"{s}/{k}" for _, r in side_a.runs for s, v in r.metrics.items() for k in v}
    have_b = {f"{s}/{k}" for _, r in side_b.runs for s, v in r.metrics.items() for k in v}
    shared = have_a & have_b
    if metrics is None:
        from benchbed.results.leaderboard import metric_sort_key

        keys = sorted({c.split("/", 1)[1] for c in shared if c.startswith("all/")}, key=metric_sort_key)
        return [f"all/{k}" for k in keys]
    out = []
    for name in metrics:
        column = name if "/" in name else f"all/{name}"
        if column not in shared:
            known = ", ".join(sorted(c.removeprefix("all/") for c in shared if c.startswith("all/")))
            raise ConfigError(f"--metric: {name!r} is not a metric both runs report; choose from {known}")
        out.append(column)
    return out


def _compare(
    side_a: Side, side_b: Side, columns: list[str], test: str | None, draws: int, seed: int, explicit: bool
) -> list[dict[str, Any]]:
    from benchbed.results.significance import comparability_problem, paired_test
    from benchbed.results.units import record_predictions, record_units, seed_mean
    from benchbed.stats import canonical_test

    for path, rec in side_b.runs + side_a.runs[1:]:
        problem = comparability_problem(side_a.runs[0][1], rec)
        if problem is not None:
            raise ConfigError(
                f"{path}: {problem} from {side_a.runs[0][0]}; a paired test needs the same rows"
            )
    wanted = None if test is None else canonical_test(test)
    predictions = {id(rec): record_predictions(path, rec) for path, rec in side_a.runs + side_b.runs}
    out = []
    for column in columns:
        units = [
            seed_mean([record_units(p, r, column, predictions[id(r)]) for p, r in side.runs])
            for side in (side_a, side_b)
        ]
        try:
            result = paired_test(units[0], units[1], wanted, draws=draws, seed=seed)
        except ConfigError:
            if explicit or wanted is None:
                raise
            result = paired_test(units[0], units[1], None, draws=draws, seed=seed)  # the metric's own test
        out.append(
            {
                "metric": column,
                "test": result.test,
                "n": result.n,
                "unit": units[0].kind,
                "a": result.a,
                "b": result.b,
                "difference": result.difference,
                "ci_low": result.ci_low,
                "ci_high": result.ci_high,
                "p_value": result.p_value,
                "seeds_a": [r.seed for _, r in side_a.runs],
                "seeds_b": [r.seed for _, r in side_b.runs],
            }
        )
    return out


def _p_text(p: float) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def compare_command(
    a: Annotated[str, typer.Argument(help="A record file, or a row label of a leaderboard (all its seeds).")],
    b: Annotated[str, typer.Argument(help="The same for the run A is compared with.")],
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", "-m", help="Metric or subset/metric (repeatable) [every 'all' metric]."),
    ] = None,
    test: Annotated[
        str | None,
        typer.Option(
            "--test",
            help="delong | randomisation | t | wilcoxon | bootstrap [delong for auc, else randomisation].",
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text | json [text].")] = "text",
    draws: Annotated[int, typer.Option("--draws", help="Randomisation / bootstrap draws [10000].")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the draws [0].")] = 0,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Labels: only this dataset.")] = None,
    task: Annotated[str | None, typer.Option("--task", "-t", help="Labels: only this task.")] = None,
    split: Annotated[
        str | None, typer.Option("--split", help="Labels: only this split protocol (leave-one-out, ...).")
    ] = None,
) -> None:
    """Paired significance test of A - B per metric: difference, 95% CI and p-value (no correction across
    metrics). AUC: DeLong; per-user / per-row / per-item metrics: Fisher's randomisation test by default."""
    from benchbed.results.store import load_records
    from benchbed.settings import get_settings
    from benchbed.stats import canonical_test

    if fmt not in ("text", "json"):
        raise ConfigError(f"--format: expected text or json, got {fmt!r}")
    if draws < 100:
        raise ConfigError(f"--draws: expected at least 100, got {draws}")
    if test is not None:
        canonical_test(test)  # an unknown name fails before any file is read
    metrics = [m.strip() for item in (metric or []) for m in item.split(",") if m.strip()] or None
    records: list[tuple[Path, RunRecord]] = []
    if not (_is_file(a) and _is_file(b)):
        results = Path(get_settings().results_dir)
        records = load_records([results] if results.exists() else []).records
    side_a, side_b = resolve_pair(a, b, records, dataset, task, split)
    columns = _columns(side_a, side_b, metrics)
    rows = _compare(side_a, side_b, columns, test, draws, seed, explicit=metrics is not None)
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2, allow_nan=False, default=lambda x: None))
        return
    _print_rows(side_a, side_b, rows, test, draws, seed)


def _print_rows(
    side_a: Side, side_b: Side, rows: list[dict[str, Any]], test: str | None, draws: int, seed: int
) -> None:
    """The comparison as a terminal table, numbers never cut (a pipe or file gets 200 columns)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=None if Console().is_terminal else 200)  # a pipe or file: never cut numbers
    seeds = (len(side_a.runs), len(side_b.runs))
    table = Table(
        title=escape(f"A = {side_a.name} ({seeds[0]} seed(s))\nB = {side_b.name} ({seeds[1]} seed(s))"),
        title_justify="left",
    )
    for col in ("metric", "test", "n", "A", "B", "A - B", "95% CI", "p"):
        table.add_column(col, justify="left" if col in ("metric", "test") else "right", no_wrap=True)
    for r in rows:
        ci = f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]" if math.isfinite(r["ci_low"]) else ""
        table.add_row(
            r["metric"], r["test"], f"{r['n']} {r['unit']}", f"{r['a']:.4f}", f"{r['b']:.4f}",
            f"{r['difference']:+.4f}", ci, _p_text(r["p_value"]),
        )  # fmt: skip
    console.print(table)
    console.print(
        "[dim]p: two-sided, per metric (no correction across metrics); AUC by DeLong, the rest by "
        f"{'the named test' if test else 'Fisher randomisation'} on per-unit values "
        f"({draws} draws, seed {seed})[/]"
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("compare")(compare_command)
