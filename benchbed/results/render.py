"""Leaderboard boards -> text: rich tables for the terminal, Markdown, CSV and LaTeX (booktabs).

Renderers only format; every number comes from :mod:`benchbed.results.leaderboard`. Each board's heading
names its dataset, task and protocol, so no number is printed without the protocol that produced it. Paper
rows carry a dagger and their source; rows whose training a wall-clock cap stopped (``info.time_capped`` in
a record: the numbers depend on how busy the machine was) carry a double dagger on every rendering (CSV: a
``time_capped`` column); an empty cell means the value is missing for some seed.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import replace

from rich import box
from rich.table import Table

from benchbed.results.leaderboard import Board, Cell, Row

DAGGER = "†"
DDAGGER = "‡"
TIME_CAP_NOTE = f"{DDAGGER} stopped by a wall-clock cap: depends on machine load"
RANDOM_MARK = "°"
RANDOM_INIT_NOTE = (
    f"{RANDOM_MARK} random-init tiny backbone: tests the pipeline, not the method "
    "(paper-scale: --backbone <pretrained LLM> on a GPU)"
)
FORMATS = ("rich", "markdown", "csv", "latex")


def fmt_value(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def fmt_cell(cell: Cell | None, digits: int = 4, pm: str = " ± ") -> str:
    if cell is None or cell.mean is None:
        return ""
    text = fmt_value(cell.mean, digits)
    if cell.sem is not None:
        text += f"{pm}{fmt_value(cell.sem, digits)}"
    return text


def _label(row: Row) -> str:
    marks = (
        (RANDOM_MARK if row.random_init else "")
        + (DDAGGER if row.time_capped else "")
        + (DAGGER if row.is_reference else "")
    )
    return f"{row.label} {marks}" if marks else row.label


def _seeds(row: Row) -> str:
    return "" if row.is_reference else str(len(row.seeds))


def _footnotes(board: Board) -> list[str]:
    sources = sorted({r.source for r in board.rows if r.source})
    notes = [f"{DAGGER} paper-reported: " + "; ".join(sources)] if sources else []
    if any(r.time_capped for r in board.rows):
        notes.append(TIME_CAP_NOTE)
    if any(r.random_init for r in board.rows):
        notes.append(RANDOM_INIT_NOTE)
    return notes + list(board.notes)


# ------------------------------------------------------------------------------------------------------
# --vs-paper: ours, the paper's and the difference per cell
# ------------------------------------------------------------------------------------------------------
PAPER_SUFFIX, DIFF_SUFFIX = " paper", " Δ"


def paper_pairs(board: Board) -> list[tuple[Row | None, Row | None]]:
    """(our row, paper row) pairs of one board: a paper row pairs with each of our rows of its benchbed
    method (``methods`` in reference.yaml) whose parameters include the row's ``params`` (CoLLM-MF =
    ``collm`` with ``cf: mf``); a paper row without one stays alone (the table shows what is missing), our
    rows without a paper row come first with ``None``."""
    ours = [r for r in board.rows if not r.is_reference]
    papers = [r for r in board.rows if r.is_reference]
    pairs: list[tuple[Row | None, Row | None]] = []
    paired: set[int] = set()
    for paper in papers:
        found = [
            o
            for o in ours
            if o.method == paper.method and all(o.params.get(k) == v for k, v in paper.params.items())
        ]
        pairs += [(o, paper) for o in found] or [(None, paper)]
        paired.update(id(o) for o in found)
    return [(o, None) for o in ours if id(o) not in paired] + pairs


def vs_paper_boards(boards: Sequence[Board]) -> list[Board]:
    """Boards for ``leaderboard --vs-paper``: one row per (ours, paper) pair and, for every column the paper
    reports, three columns: ours (mean ± s.e.), the paper's, and ours − paper. Boards without paper rows
    are left out (there is nothing to compare)."""
    out = []
    for board in boards:
        everything = paper_pairs(board)
        pairs = [(o, p) for o, p in everything if p is not None]
        unpaired = [o.label for o, p in everything if p is None and o is not None]
        papers = [p for _, p in pairs if p is not None]
        if not papers:
            continue
        reported = [c for c in board.columns if any(p.cells.get(c) is not None for p in papers)]
        columns = [x for c in reported for x in (c, c + PAPER_SUFFIX, c + DIFF_SUFFIX)]
        rows = []
        for ours, paper in pairs:
            cells: dict[str, Cell] = {}
            for c in reported:
                mine = ours.cells.get(c) if ours else None
                theirs = paper.cells.get(c) if paper else None
                if mine is not None:
                    cells[c] = mine
                if theirs is not None:
                    cells[c + PAPER_SUFFIX] = theirs
                if (
                    mine is not None
                    and theirs is not None
                    and mine.mean is not None
                    and theirs.mean is not None
                ):
                    cells[c + DIFF_SUFFIX] = Cell(mine.mean - theirs.mean, None, mine.n, mine.total)
            label = f"{ours.label if ours else '—'} | {paper.label if paper else '—'}"
            base = ours or paper
            assert base is not None
            rows.append(
                Row(
                    base.method,
                    label,
                    dict(base.params),
                    ours.params_hash if ours else "",
                    list(ours.seeds) if ours else [],
                    cells,
                    time_capped=bool(ours and ours.time_capped),
                    random_init=bool(ours and ours.random_init),
                )
            )
        sources = sorted({p.source for p in papers if p.source})
        notes = [f"ours | paper row; '{PAPER_SUFFIX.strip()}' = paper-reported ({'; '.join(sources)})"]
        notes.append(f"'{DIFF_SUFFIX.strip()}' = ours − paper; empty: no run of ours or no paper figure")
        if unpaired:
            notes.append(f"not in the paper's table (plain leaderboard shows them): {', '.join(unpaired)}")
        out.append(replace(board, columns=columns, rows=rows, notes=notes + list(board.notes)))
    return out


def _fit_columns(board: Board, digits: int, max_width: int | None) -> list[str]:
    """The leading metric columns that fit in ``max_width`` characters; numbers are never cut short."""
    if max_width is None:
        return list(board.columns)
    gap = 2  # one space of padding each side between columns (the edges are not padded)
    used = max([len("method"), *(len(_label(r)) for r in board.rows)]) + len("seeds") + gap + 2  # + box edges
    kept: list[str] = []
    for column in board.columns:
        subset, _, key = column.rpartition("/")
        cells = [fmt_cell(r.cells.get(column), digits, pm="\n±") for r in board.rows]
        width = max([len(subset), len(key), *(len(line) for c in cells for line in c.split("\n"))]) + gap
        if used + width > max_width and kept:
            break
        used += width
        kept.append(column)
    return kept


def rich_tables(boards: Sequence[Board], digits: int = 4, max_width: int | None = None) -> list[Table]:
    """One rich table per board. With ``max_width``, trailing columns that do not fit are left out (and
    counted in the caption) rather than printing truncated numbers."""
    tables = []
    for board in boards:
        columns = _fit_columns(board, digits, max_width)
        notes = _footnotes(board)
        if len(columns) < len(board.columns):
            notes.append(f"{len(board.columns) - len(columns)} more column(s) do not fit this terminal")
        caption = "\n".join(notes) or None
        table = Table(
            title=board.title,
            caption=caption,
            title_justify="left",
            caption_justify="left",
            box=box.SIMPLE_HEAD,
            padding=(0, 1),
            collapse_padding=True,
            pad_edge=False,
        )
        table.add_column("method", no_wrap=True)
        table.add_column("seeds", justify="right", no_wrap=True)
        for column in columns:
            subset, _, key = column.rpartition("/")
            # two header lines keep columns narrow; numbers are never wrapped or cut
            table.add_column(f"{subset}\n{key}", justify="right", no_wrap=True)
        for row in board.rows:
            style = "dim" if row.is_reference else None
            # the standard error goes on a second line: columns stay as narrow as a single number
            cells = [fmt_cell(row.cells.get(c), digits, pm="\n±") or "–" for c in columns]
            table.add_row(_label(row), _seeds(row), *cells, style=style)
        tables.append(table)
    return tables


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(boards: Sequence[Board], digits: int = 4) -> str:
    parts = []
    for board in boards:
        header = ["method", "seeds", *board.columns]
        lines = [f"### {_md_escape(board.title)}", ""]
        lines.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        for row in board.rows:
            cells = [fmt_cell(row.cells.get(c), digits) for c in board.columns]
            lines.append("| " + " | ".join(_md_escape(x) for x in [_label(row), _seeds(row), *cells]) + " |")
        for note in _footnotes(board):
            lines += ["", _md_escape(note)]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def render_csv(boards: Sequence[Board], digits: int = 6) -> str:
    """One CSV for all boards: identity columns, then ``<column>`` and ``<column>_sem`` for every column."""
    columns: list[str] = []
    for board in boards:
        columns += [c for c in board.columns if c not in columns]
    fixed = [
        "dataset",
        "task",
        "protocol",
        "split_params",
        "task_params",
        "method",
        "params",
        "seeds",
        "source",
        "time_capped",
        "random_init",
    ]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(fixed + [x for c in columns for x in (c, f"{c}_sem")])
    for board in boards:
        for row in board.rows:
            ident = [
                board.dataset,
                board.task,
                board.protocol,
                json.dumps(board.split_params, sort_keys=True),
                json.dumps(board.task_params, sort_keys=True),
                row.label,
                json.dumps(row.params, sort_keys=True, default=str),
                " ".join(map(str, row.seeds)),
                row.source or "",
                "true" if row.time_capped else "",
                "true" if row.random_init else "",
            ]
            values = []
            for c in columns:
                cell = row.cells.get(c)
                values += [
                    fmt_value(cell.mean if cell else None, digits),
                    fmt_value(cell.sem if cell else None, digits),
                ]
            writer.writerow(ident + values)
    return out.getvalue()


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "·": r"$\cdot$", "±": r"$\pm$",
}  # fmt: skip


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def render_latex(boards: Sequence[Board], digits: int = 4) -> str:
    """One booktabs ``tabular`` per board, headed by a comment and a caption line naming the protocol."""
    parts = []
    for board in boards:
        lines = [
            f"% {board.title}",
            r"\begin{table}[t]",
            r"\centering",
            f"\\caption{{{latex_escape(board.title)}}}",
        ]
        lines.append(r"\begin{tabular}{l" + "r" * (1 + len(board.columns)) + "}")
        lines.append(r"\toprule")
        header = ["Method", "Seeds", *board.columns]
        lines.append(" & ".join(latex_escape(h) for h in header) + r" \\")
        lines.append(r"\midrule")
        seen_reference = False
        for row in board.rows:
            if row.is_reference and not seen_reference and any(not r.is_reference for r in board.rows):
                lines.append(r"\midrule")
            seen_reference = seen_reference or row.is_reference
            label = (
                latex_escape(row.label)
                + (r"$^\circ$" if row.random_init else "")
                + (r"$^\ddagger$" if row.time_capped else "")
            )
            label += r"$^\dagger$" if row.is_reference else ""
            cells = [fmt_cell(row.cells.get(c), digits, pm=r" $\pm$ ") for c in board.columns]
            lines.append(" & ".join([label, _seeds(row), *cells]) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        for note in _footnotes(board):
            note = latex_escape(note).replace(DAGGER, r"$^\dagger$").replace(DDAGGER, r"$^\ddagger$")
            note = note.replace(RANDOM_MARK, r"$^\circ$")
            lines.append(r"\\[2pt]{\footnotesize " + note + "}")
        lines.append(r"\end{table}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def render_text(boards: Sequence[Board], fmt: str, digits: int = 4) -> str:
    """Markdown, CSV or LaTeX as a string (rich output goes through :func:`rich_tables`)."""
    if fmt == "markdown":
        return render_markdown(boards, digits)
    if fmt == "csv":
        return render_csv(boards)
    if fmt == "latex":
        return render_latex(boards, digits)
    raise ValueError(f"unknown format {fmt!r}")
