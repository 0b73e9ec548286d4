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
import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

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
FORMATS = ("rich", "markdown", "csv", "latex", "json", "html")  # html: benchbed.report.tables (CLI layer)


def fmt_value(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def fmt_cell(cell: Cell | None, digits: int = 4, pm: str = " ± ") -> str:
    if cell is not None and cell.text:
        return cell.text
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
    return notes + significance_notes(board) + list(board.notes) + method_notes(board)


def method_notes(board: Board) -> list[str]:
    """What each method of the board is, from its card (benchbed.cards): ``methods [injection -> head]:
    collm = CoLLM (...) [slot -> yes-no] | ...``. A method without a card (a plugin, ``recbole:<Model>``) is
    left out."""
    from benchbed.cards import card_of
    from benchbed.methods import get_method_class
    from benchbed.registry import RegistryError

    parts = []
    for method in dict.fromkeys(row.method for row in board.rows):
        try:
            card = card_of(get_method_class(method))
        except (RegistryError, ImportError):  # no longer registered, or a plugin that fails to import
            card = None
        if card is not None:
            parts.append(f"{method} = {card.summary()}")
    return ["methods [injection -> head]: " + " | ".join(parts)] if parts else []


# ------------------------------------------------------------------------------------------------------
# significance marks (benchbed.results.significance): plain fields on Row / Board, formatted here
# ------------------------------------------------------------------------------------------------------
MARK_HEADER = "vs best"


def has_marks(board: Board) -> bool:
    return any(r.mark is not None for r in board.rows)


def fmt_p(p: float | None) -> str:
    if p is None:
        return ""
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def mark_text(row: Row) -> str:
    """``best``, ``n.s. p=0.237``, ``worse p<0.001`` (corrected p), ``no test`` or empty."""
    if row.mark is None:
        return ""
    if row.mark in ("n.s.", "worse"):
        return f"{row.mark} {fmt_p(row.p_value)}"
    return row.mark


def diff_text(row: Row, digits: int = 4) -> str:
    """Row - best with its 95% CI: ``-0.0070 [-0.0159, +0.0017]``."""
    if row.diff is None or row.diff_ci95 is None:
        return ""
    lo, hi = row.diff_ci95
    return f"{row.diff:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def ci_text(cell: Cell | None, digits: int = 4) -> str:
    if cell is None or cell.ci95 is None:
        return ""
    return f"[{cell.ci95[0]:.{digits}f}, {cell.ci95[1]:.{digits}f}]"


def significance_notes(board: Board) -> list[str]:
    """What the marks mean on this board, and how small a gap its test could detect."""
    if not has_marks(board):
        return []
    best = next((r.label for r in board.rows if r.mark == "best"), None)
    if best is None:
        return ["vs best: no row of this board has predictions to test (paper rows and runs without "
                "predictions are 'no test')"]  # fmt: skip
    correction = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no"}.get(board.correction or "", "")
    notes = [
        f"vs best: each row against {best} on {board.mark_column}, paired on the same units (seed means), "
        f"{correction}-corrected p, alpha {board.alpha:g}; n.s. = not significantly different, "
        "no test = paper row or no predictions; the 95% CI of row - best is per comparison (unadjusted)"
    ]
    return notes + list(board.power_notes)


def _fit_columns(board: Board, digits: int, max_width: int | None) -> list[str]:
    """The leading metric columns that fit in ``max_width`` characters; numbers are never cut short."""
    if max_width is None:
        return list(board.columns)
    gap = 2  # one space of padding each side between columns (the edges are not padded)
    used = max([len("method"), *(len(_label(r)) for r in board.rows)]) + len("seeds") + gap + 2  # + box edges
    if has_marks(board):
        used += max(len(MARK_HEADER), *(len(mark_text(r)) for r in board.rows)) + gap
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
        marks = has_marks(board)
        if marks:
            table.add_column(MARK_HEADER, no_wrap=True)
        for column in columns:
            subset, _, key = column.rpartition("/")
            # two header lines keep columns narrow; numbers are never wrapped or cut
            table.add_column(f"{subset}\n{key}", justify="right", no_wrap=True)
        for row in board.rows:
            style = "dim" if row.is_reference else None
            # the standard error goes on a second line: columns stay as narrow as a single number
            cells = [fmt_cell(row.cells.get(c), digits, pm="\n±") or "–" for c in columns]
            table.add_row(_label(row), _seeds(row), *([mark_text(row)] if marks else []), *cells, style=style)
        tables.append(table)
    return tables


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(boards: Sequence[Board], digits: int = 4) -> str:
    parts = []
    for board in boards:
        marks = has_marks(board)
        extra = [MARK_HEADER, "Δ vs best [95% CI]", f"{board.mark_column} 95% CI (seeds)"] if marks else []
        header = ["method", "seeds", *extra, *board.columns]
        lines = [f"### {_md_escape(board.title)}", ""]
        lines.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        for row in board.rows:
            cells = [fmt_cell(row.cells.get(c), digits) for c in board.columns]
            if marks:
                seed_ci = ci_text(row.cells.get(board.mark_column or ""), digits)
                cells = [mark_text(row), diff_text(row, digits), seed_ci, *cells]
            lines.append("| " + " | ".join(_md_escape(x) for x in [_label(row), _seeds(row), *cells]) + " |")
        for note in _footnotes(board):
            lines += ["", _md_escape(note)]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def significance_fields(board: Board, row: Row, digits: int = 6) -> list[str]:
    """The CSV's significance columns for a row (empty strings where it was not annotated or tested)."""
    if row.mark is None:
        return [""] * 9
    low, high = row.diff_ci95 if row.diff_ci95 else (None, None)
    return [
        row.mark,
        board.mark_column or "",
        row.test or "",
        "" if row.p_value is None else f"{row.p_value:.6g}",
        "" if row.p_raw is None else f"{row.p_raw:.6g}",
        board.correction or "",
        fmt_value(row.diff, digits),
        fmt_value(low, digits),
        fmt_value(high, digits),
    ]


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
    fixed += ["vs_best", "mark_column", "test", "p_corrected", "p_raw", "correction", "diff_vs_best"]
    fixed += ["diff_ci95_low", "diff_ci95_high"]
    writer.writerow(fixed + [x for c in columns for x in (c, f"{c}_sem", f"{c}_ci95_low", f"{c}_ci95_high")])
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
                _seeds(row),  # a count, as on every board (the seed ids: --format json)
                row.source or "",
                "true" if row.time_capped else "",
                "true" if row.random_init else "",
                *significance_fields(board, row, digits),
            ]
            values = []
            for c in columns:
                cell = row.cells.get(c)
                values += [
                    cell.text if cell and cell.text else fmt_value(cell.mean if cell else None, digits),
                    fmt_value(cell.sem if cell else None, digits),
                    *(fmt_value(v, digits) for v in (cell.ci95 if cell and cell.ci95 else (None, None))),
                ]
            writer.writerow(ident + values)
    return out.getvalue()


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "·": r"$\cdot$", "±": r"$\pm$",
    "Δ": r"$\Delta$", "<": r"$<$", ">": r"$>$",
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
        marks = has_marks(board)
        lines.append(r"\begin{tabular}{l" + "r" * (1 + len(board.columns)) + ("ll" if marks else "") + "}")
        lines.append(r"\toprule")
        header = ["Method", "Seeds", *board.columns, *([MARK_HEADER, "Δ vs best [95% CI]"] if marks else [])]
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
            if marks:
                cells += [latex_escape(mark_text(row)), diff_text(row, digits)]
            lines.append(" & ".join([label, _seeds(row), *cells]) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        for note in _footnotes(board):
            note = latex_escape(note).replace(DAGGER, r"$^\dagger$").replace(DDAGGER, r"$^\ddagger$")
            note = note.replace(RANDOM_MARK, r"$^\circ$")
            lines.append(r"\\[2pt]{\footnotesize " + note + "}")
        lines.append(r"\end{table}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def board_dict(board: Board) -> dict[str, Any]:
    """One board as plain JSON data: identity, columns, footnotes and per row every cell (mean, sem, n).

    ``seeds`` is a count as on every board; the ids are ``seed_ids``. Fields a row or board carries beyond
    the basic ones (significance marks, p-values) are included as they are, so the JSON keeps up with them.
    """
    rows = []
    for row in board.rows:
        item = asdict(row)
        item["cells"] = {c: item["cells"][c] for c in board.columns if c in item["cells"]}  # the shown ones
        item["seed_ids"] = item.pop("seeds")
        item["seeds"] = len(row.seeds) if not row.is_reference else None
        item["is_reference"] = row.is_reference
        rows.append(item)
    out = asdict(board)
    out.update(title=board.title, rows=rows, notes=_footnotes(board))
    return out


def _finite(value: Any) -> Any:
    """NaN / inf (JSON has neither) become null, at any depth."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def render_json(boards: Sequence[Board]) -> str:
    """Every board as one JSON document (numbers unrounded; an undefined mean is null)."""
    doc = _finite({"boards": [board_dict(b) for b in boards]})
    return json.dumps(doc, indent=2, sort_keys=False, default=str, allow_nan=False) + "\n"


def render_text(boards: Sequence[Board], fmt: str, digits: int = 4) -> str:
    """Markdown, CSV, LaTeX or JSON as a string (rich output goes through :func:`rich_tables`)."""
    if fmt == "markdown":
        return render_markdown(boards, digits)
    if fmt == "csv":
        return render_csv(boards)
    if fmt == "latex":
        return render_latex(boards, digits)
    if fmt == "json":
        return render_json(boards)
    raise ValueError(f"unknown format {fmt!r}")
