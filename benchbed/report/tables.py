"""Leaderboard boards -> HTML tables: the one table code behind ``leaderboard --format html`` and the report.

Every column and subset is shown (the table scrolls sideways, the method column stays put); a cell is the
mean with ± the 95% confidence half-width over seeds (t with n-1 degrees of freedom; the standard error is in
the cell's tooltip), and our row's difference from the paper row it pairs with. Paper rows (†), random-init
rows (°) and time-capped rows (‡) are marked as on every other board. The significance column shows what
:mod:`benchbed.results.significance` put on a row (``mark``, ``p_value``) and says "no test" otherwise.
Numbers are rendered in HTML; the inline script only adds sorting, so the page reads without it.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from benchbed.results.leaderboard import COST_SUBSET, Board, Cell, Row, metric_direction
from benchbed.results.render import _footnotes
from benchbed.results.vs_paper import BACKBONE_DIFFERS, paper_pairings

COST_UNITS = {"train_s": "s", "eval_s": "s", "peak_memory_mb": "MB", "trainable_params": ""}


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def ci_half_width(cell: Cell | None) -> float | None:
    """t(0.975, n-1) · s.e.: the 95% CI half-width of a seed mean; None with fewer than two seeds."""
    from scipy import stats

    interval = getattr(cell, "ci95", None)  # the leaderboard's own t-interval, where it computes one
    if interval is not None:
        return float(interval[1] - interval[0]) / 2
    if cell is None or cell.mean is None or cell.sem is None or cell.n < 2:
        return None
    return float(stats.t.ppf(0.975, cell.n - 1) * cell.sem)


def fmt_cost(key: str, value: float) -> str:
    """Seconds and megabytes to three significant figures, parameters as 1.2 M / 826 k."""
    if key == "trainable_params":
        for scale, unit in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
            if abs(value) >= scale:
                return f"{value / scale:.3g}{unit}"
        return f"{value:.0f}"
    return f"{value:.3g} {COST_UNITS.get(key, '')}".strip()


def row_label(row: Row) -> str:
    marks = (
        ("°" if row.random_init else "")
        + ("‡" if row.time_capped else "")
        + ("†" if row.is_reference else "")
    )
    return f"{row.label} {marks}" if marks else row.label


def significance(row: Row) -> tuple[str, str]:
    """(text, tooltip) of a row's significance mark, from what :mod:`benchbed.results.significance` put on
    it (``mark``: best / n.s. / worse / no test, corrected ``p_value``, ``diff`` and its 95% CI); "no test"
    when the board was not annotated."""
    mark = getattr(row, "mark", None)
    if mark is None:
        return "no test", "no significance test was run on this board"
    tip = [str(getattr(row, "mark_note", "") or "")] if mark == "no test" else []
    test = getattr(row, "test", None)
    p_value = getattr(row, "p_value", None)
    diff = getattr(row, "diff", None)
    diff_ci = getattr(row, "diff_ci95", None)
    if test:
        tip.append(f"test: {test}")
    if isinstance(p_value, int | float) and math.isfinite(p_value):
        tip.append(f"p = {p_value:.3g} (corrected)")
    if isinstance(diff, int | float) and math.isfinite(diff):
        interval = f", 95% CI [{diff_ci[0]:+.4f}, {diff_ci[1]:+.4f}]" if diff_ci else ""
        tip.append(f"row − best = {diff:+.4f}{interval}")
    text = str(mark)
    if mark in ("n.s.", "worse") and isinstance(p_value, int | float):
        text += " p<0.001" if p_value < 0.001 else f" p={p_value:.3f}"
    return text, "; ".join(t for t in tip if t) or str(mark)


def _cell_html(column: str, row: Row, paper: Row | None, digits: int, backbone_differs: bool = False) -> str:
    cell = row.cells.get(column)
    if cell is None or cell.mean is None:
        why = (
            "" if cell is None else f" title='value missing in {cell.total - cell.n} of {cell.total} seed(s)'"
        )
        return f"<td class='num empty'{why} data-v=''>–</td>"
    subset, _, key = column.rpartition("/")
    if subset == COST_SUBSET:
        text = esc(fmt_cost(key, cell.mean))
    else:
        text = f"{cell.mean:.{digits}f}"
    tip = [f"n = {cell.n} seed(s)"]
    half = ci_half_width(cell)
    if half is not None:
        text += f"<span class='ci'> ± {half:.{digits}f}</span>"
        tip.append(f"s.e. {cell.sem:.{digits + 1}f}")
    theirs = paper.cells.get(column) if paper is not None else None
    if theirs is not None and theirs.mean is not None and subset != COST_SUBSET and backbone_differs:
        text += f"<br><span class='delta'>{BACKBONE_DIFFERS}</span>"
        tip.append(f"paper ({paper.label if paper else ''}, on its own model): {theirs.mean:.{digits}f}")
    elif theirs is not None and theirs.mean is not None and subset != COST_SUBSET:
        diff = cell.mean - theirs.mean
        better = (diff >= 0) == metric_direction(column)
        text += f"<br><span class='delta {'up' if better else 'down'}'>Δ {diff:+.{digits}f}</span>"
        tip.append(f"paper ({paper.label if paper else ''}): {theirs.mean:.{digits}f}")
    return f"<td class='num' data-v='{cell.mean!r}' title='{esc('; '.join(tip))}'>{text}</td>"


def _header(columns: Sequence[str]) -> str:
    groups: list[tuple[str, int]] = []
    for column in columns:
        subset = column.rpartition("/")[0]
        if groups and groups[-1][0] == subset:
            groups[-1] = (subset, groups[-1][1] + 1)
        else:
            groups.append((subset, 1))
    top = "".join(f"<th colspan='{n}' class='group'>{esc(s)}</th>" for s, n in groups)
    keys = []
    for i, column in enumerate(columns, start=3):
        subset, _, key = column.rpartition("/")
        unit = COST_UNITS.get(key) if subset == COST_SUBSET else None
        arrow = "↑" if metric_direction(column) else "↓"
        label = f"{key} ({unit})" if unit else key
        keys.append(
            f"<th class='num sortable' data-col='{i}' data-low='{0 if metric_direction(column) else 1}' "
            f"title='{esc(column)}: {arrow} better; click to sort (best first, again to reverse)'>"
            f"{esc(label)} <span class='dir'>{arrow}</span></th>"
        )
    return (
        "<thead><tr><th rowspan='2' class='sortable' data-col='0'>method</th>"
        "<th rowspan='2' class='num sortable' data-col='1' title='number of seeds'>seeds</th>"
        "<th rowspan='2' title='significance test of the row against the board best, where one was run'>"
        "test</th>"
        f"{top}</tr><tr>{''.join(keys)}</tr></thead>"
    )


def board_table(board: Board, digits: int = 4, board_id: str = "") -> str:
    """One board as a ``<table>`` (with caption and footnotes): our rows, then the paper rows."""
    paper_of = {id(x.ours): x for x in paper_pairings(board) if x.ours is not None and x.paper is not None}
    columns = list(board.columns)
    body = []
    for section in (False, True):
        rows = [r for r in board.rows if r.is_reference is section]
        if not rows:
            continue
        lines = []
        for row in rows:
            sig, tip = significance(row)
            klass = " ".join(
                k
                for k, on in (
                    ("paper", row.is_reference),
                    ("random-init", row.random_init),
                    ("capped", row.time_capped),
                )
                if on
            )
            title = esc(
                row.source or ", ".join(f"{k}={v}" for k, v in sorted(row.params.items())) or row.method
            )
            pairing = paper_of.get(id(row))
            paper, differs = (pairing.paper, pairing.backbone_differs) if pairing else (None, False)
            cells = "".join(_cell_html(c, row, paper, digits, differs) for c in columns)
            seeds = "" if row.is_reference else str(len(row.seeds))
            lines.append(
                f"<tr class='{klass}'><th scope='row' class='method' title='{title}'>"
                f"{esc(row_label(row))}</th><td class='num' data-v='{seeds}'>{seeds}</td>"
                f"<td class='sig {esc(sig.split()[0] if sig else '')}' title='{esc(tip)}'>{esc(sig)}</td>"
                f"{cells}</tr>"
            )
        body.append(f"<tbody class='{'papers' if section else 'ours'}'>{''.join(lines)}</tbody>")
    notes = _footnotes(board)
    notes.append("cells: mean over seeds ± 95% CI half-width (t, n−1) where there are two or more seeds; "
                 "Δ = ours − the paper row it pairs with; hover a cell for n and the s.e.")  # fmt: skip
    foot = "".join(f"<li>{esc(n)}</li>" for n in notes)
    return (
        f"<div class='board-table' id='{esc(board_id)}-table'><div class='scroll'>"
        f"<table class='board' data-board='{esc(board_id)}'><caption>{esc(board.title)}</caption>"
        f"{_header(columns)}{''.join(body)}</table></div><ul class='notes'>{foot}</ul></div>"
    )


TABLE_CSS = """
.scroll{overflow-x:auto;border:1px solid #d8dee6;border-radius:6px;background:#fff}
table.board{border-collapse:separate;border-spacing:0;font-size:13px;font-variant-numeric:tabular-nums}
table.board caption{text-align:left;font-weight:600;padding:6px 8px;caption-side:top}
table.board th,table.board td{padding:4px 8px;border-bottom:1px solid #eef1f5;white-space:nowrap}
table.board thead th{background:#f3f6fa;position:sticky;top:0;font-weight:600;color:#1d2733}
table.board th.group{text-align:center;border-left:1px solid #d8dee6;color:#45556a}
table.board .num{text-align:right}
table.board th.method{text-align:left;position:sticky;left:0;background:#fff;font-weight:500;z-index:1;
  white-space:normal;min-width:240px;max-width:420px}
table.board tr.paper th.method,table.board tr.paper td{background:#fbf7f2;color:#5b4a3a}
table.board tr.random-init th.method{color:#4a6584}
table.board tbody.papers tr:first-child>*{border-top:2px solid #c9b8a6}
table.board .ci{color:#6b7785;font-size:11px}
table.board .delta{font-size:11px}
table.board .delta.up{color:#22794a}
table.board .delta.down{color:#b23a48}
table.board .sig{color:#6b7785;font-size:12px}
table.board .sig.best{color:#22794a;font-weight:600}
table.board .sig.worse{color:#b23a48}
table.board .empty{color:#b0b8c2}
table.board th.sortable{cursor:pointer}
table.board .dir{color:#8a96a3;font-weight:400}
ul.notes{font-size:12px;color:#4d5966;margin:6px 0 0 0;padding-left:18px}
"""

SORT_JS = """
document.querySelectorAll('table.board th.sortable').forEach(function(th){
  th.addEventListener('click',function(){
    var table=th.closest('table'),col=+th.dataset.col,body=table.querySelector('tbody.ours');
    if(!body)return;
    var first=th.dataset.low==='1'||col===0,asc=th.dataset.asc?th.dataset.asc!=='1':first;
    th.dataset.asc=asc?'1':'0';
    var rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){
      var x=a.children[col],y=b.children[col];
      if(col===0){var c=x.textContent.localeCompare(y.textContent);return asc?c:-c;}
      var u=x.dataset.v===''?NaN:+x.dataset.v,v=y.dataset.v===''?NaN:+y.dataset.v;
      if(isNaN(u))return 1;if(isNaN(v))return -1;return asc?u-v:v-u;});
    rows.forEach(function(r){body.appendChild(r);});
  });
});
"""


def leaderboard_html(boards: Sequence[Board], digits: int = 4) -> str:
    """``leaderboard --format html``: the boards as one standalone page (tables only, no figures)."""
    tables = "".join(
        f"<section><h2>{esc(b.title)}</h2>{board_table(b, digits, f'board-{i}')}</section>"
        for i, b in enumerate(boards, start=1)
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>benchbed leaderboard</title>"
        f"<style>body{{font-family:system-ui,sans-serif;margin:24px;color:#1d2733}}{TABLE_CSS}</style></head>"
        f"<body><h1>benchbed leaderboard</h1>{tables}<script>{SORT_JS}</script></body></html>\n"
    )
