"""CLI: ``benchbed datasets list | prepare | info``: see what the catalog holds, build and cache splits."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from benchbed.settings import get_settings

datasets_app = typer.Typer(
    help="List, prepare and inspect datasets and their split protocols.", no_args_is_help=True
)
console = Console()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, dict):
        # sorted: a fresh build and a cache hit (whose manifest JSON is key-sorted) print the same line
        return ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(value.items()) if v is not None) or "-"
    return str(value)


@datasets_app.command("list")
def list_datasets() -> None:
    """Catalog datasets: source format, default protocol, whether raw files are present."""
    from benchbed.data.catalog import get_spec
    from benchbed.data.download import find_files
    from benchbed.registry import DATASETS, SPLITS

    table = Table(title="benchbed datasets", box=box.SIMPLE_HEAD, title_justify="left")
    for col in ("name", "source", "default protocol", "raw files", "domain"):
        table.add_column(col, no_wrap=True)
    wide = console.width >= 120  # descriptions only where they fit next to the facts
    if wide:
        table.add_column("description", overflow="fold")
    for name in DATASETS.names():
        spec = get_spec(name)
        _, missing = find_files(spec)
        present = "no: download" if missing and spec.downloads else "no" if missing else "yes"
        if spec.packaged and not missing:
            present = f"yes ({spec.packaged.partition(':')[0]})"
        cells = [name, spec.source, spec.default_split, present, spec.domain]
        table.add_row(*cells, *([spec.description] if wide else []))
    console.print(table)
    console.print(f"split protocols: {', '.join(SPLITS.names())}   raw data dir: {get_settings().data_dir}")


def stats_table(stats: dict[str, Any]) -> Table:
    """The table ``prepare`` prints: sizes, positive rates, warm/cold counts, cache hit or miss."""
    table = Table(title=f"{stats['dataset']} · {stats['protocol']}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    rows: list[tuple[str, Any]] = [
        ("protocol params", stats["params"]),
        ("users / items", f"{_fmt(stats['users'])} / {_fmt(stats['items'])}"),
        ("interactions", stats["interactions"]),
        ("users / items in split", f"{_fmt(stats['split_users'])} / {_fmt(stats['split_items'])}"),
        ("train / valid / test", f"{_fmt(stats['train'])} / {_fmt(stats['valid'])} / {_fmt(stats['test'])}"),
    ]
    if "positive_rate_train" in stats:
        rates = [_fmt(stats[f"positive_rate_{p}"]) for p in ("train", "valid", "test")]
        rows.append(("positive rate train / valid / test", " / ".join(rates)))
    else:
        rows.append(("labels", "implicit (every interaction is a positive)"))
    thr = stats["params"].get("warm_threshold")
    for part in ("valid", "test"):
        rows.append(
            (
                f"{part} warm / cold (threshold {thr})",
                f"{_fmt(stats[f'{part}_warm'])} / {_fmt(stats[f'{part}_cold'])} "
                f"(cold users {_fmt(stats[f'{part}_cold_user'])}, "
                f"cold items {_fmt(stats[f'{part}_cold_item'])}, "
                f"items unseen in train {_fmt(stats[f'{part}_item_unseen'])})",
            )
        )
    dropped = {k: v for k, v in stats.get("protocol_stats", {}).items() if v}
    if dropped:
        rows.append(("protocol notes", dropped))
    notes = {
        k: v for k, v in stats.get("source", {}).items() if k not in ("users", "items", "interactions") and v
    }
    if notes:
        rows.append(("source notes", notes))
    rows.append(("split hash", stats.get("split_hash", "")))
    rows.append(("cache", f"{'hit' if stats.get('cache_hit') else 'miss'} ({stats.get('seconds', 0):.2f} s)"))
    for key, value in rows:
        table.add_row(key, _fmt(value))
    return table


@datasets_app.command("prepare")
def prepare(
    name: Annotated[str, typer.Argument(help="Catalog name (see `datasets list`) or a dataset directory.")],
    split: Annotated[
        str | None, typer.Option("--split", "-s", help="Split protocol; default: the dataset's.")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Split parameter KEY=VALUE (repeatable).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when cached.")] = False,
    download: Annotated[
        bool,
        typer.Option("--download/--no-download", help="Fetch missing raw files from the official source."),
    ] = True,
) -> None:
    """Build (or read from the cache) a dataset's split and print its statistics."""
    from benchbed.config import parse_assignments
    from benchbed.data.prepare import prepare_split

    params = parse_assignments(param or [], "--param")
    quiet = get_settings().verbosity < 0
    with console.status(f"preparing {name} ...", spinner="dots") if not quiet else nullcontext():
        prepared = prepare_split(name, split, params, force=force, download=download)
    console.print(stats_table(prepared.stats))


@datasets_app.command("info")
def info(name: Annotated[str, typer.Argument(help="Catalog name or dataset directory.")]) -> None:
    """Where a dataset's files are, its recipe, its default protocol and parameters."""
    from benchbed.data.catalog import get_spec
    from benchbed.data.download import find_files
    from benchbed.data.splits import Protocol
    from benchbed.registry import SPLITS

    spec = get_spec(name)
    found, missing = find_files(spec)
    protocol = SPLITS.get(spec.default_split)
    assert isinstance(protocol, Protocol)
    table = Table(title=f"dataset {spec.name}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("description", spec.description)
    table.add_row("source format", spec.source)
    table.add_row("domain", spec.domain)
    table.add_row("raw dir", str(spec.raw_dir()))
    for role, names in spec.files.items():
        state = "missing" if role in missing else "absent (optional)"
        state = f"present: {found[role].name}" if role in found else state
        table.add_row(f"file ({role})", f"{' | '.join(names)}  ->  {state}")
    for role, dl in spec.downloads.items():
        table.add_row(f"download ({role})", dl.url)
    table.add_row("recipe", _fmt(spec.recipe) if spec.recipe else "-")
    table.add_row("default protocol", spec.default_split)
    resolved = protocol.resolve(spec.split_defaults(spec.default_split))
    table.add_row("default protocol params", _fmt(resolved))
    table.add_row("split filters", "rating_above, kcore: off unless set (--split-param; data/filters.py)")
    table.add_row(
        "other protocols", ", ".join(n for n in SPLITS.names() if n not in (spec.default_split, "presplit"))
    )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``benchbed datasets ...`` to the root app."""
    app.add_typer(datasets_app, name="datasets")
