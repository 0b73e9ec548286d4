"""Report figures as inline SVG strings (matplotlib, Agg backend): static, no network, no script needed.

matplotlib because the report must open from disk years later with nothing but a browser: SVG text from the
library every recommender paper's figures come from, no JavaScript runtime or CDN to go stale. Text stays
text (``svg.fonttype = none``): smaller files, selectable labels. Every figure has axis labels with units,
a legend where more than one thing is drawn, and fonts sized for a 1280 px screen.

Each function returns ``None`` when a board has nothing to draw (no seeds, no paper rows...), so the page
shows only figures that carry information.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: the report is built on servers and in CI

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402
from scipy import stats  # noqa: E402

from benchbed.results.leaderboard import Board, Cell, Row, metric_direction  # noqa: E402

OURS_COLOR = "#1f5fa8"
PAPER_COLOR = "#d1495b"
RANDOM_COLOR = "#8aa9cc"  # a random-init (tiny) backbone: the pipeline, not the method
CONTROL_COLOR = "#9a9a9a"
SUBSET_COLORS = {"warm": "#1f5fa8", "cold": "#7fb2e5", "seen": "#2a7f62", "unseen": "#94d2bd"}
STYLE: Any = {  # Any: matplotlib types rc keys as literals
    "svg.fonttype": "none",
    "svg.hashsalt": "benchbed",  # stable element ids: the same records give the same file
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 10,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
PAIR_BAND = 0.01  # the ±0.01 band around y = x in the ours-vs-paper figure (issue 21)


@dataclass
class FigureSpec:
    """One figure for the page: an anchor id, a caption and the SVG markup."""

    key: str
    caption: str
    svg: str


def ci95(cell: Cell | None) -> float | None:
    """Half-width of the 95% confidence interval of a seed mean: t(0.975, n-1) · s.e.; None with one seed."""
    if cell is None or cell.mean is None or cell.sem is None or cell.n < 2:
        return None
    return float(stats.t.ppf(0.975, cell.n - 1) * cell.sem)


def to_svg(fig: Figure) -> str:
    """The figure as an ``<svg>`` element (no XML prolog or DOCTYPE, so it can sit inside HTML)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": "benchbed"})
    plt.close(fig)
    text = buf.getvalue()
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)  # RDF boilerplate, no information
    return text[text.index("<svg") :]


def _value(row: Row, column: str) -> float | None:
    cell = row.cells.get(column)
    return None if cell is None else cell.mean


def _ours(board: Board) -> list[Row]:
    return [r for r in board.rows if not r.is_reference]


def _short(label: str, width: int = 34) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def _metric_label(column: str) -> str:
    subset, _, key = column.rpartition("/")
    return f"{key} ({subset})" if subset and subset != "all" else key


def main_metric(
    board: Board, column: str, pairs: Sequence[tuple[Row | None, Row | None]]
) -> FigureSpec | None:
    """(a) The board's main metric per method, 95% CI bars where there are seeds, the paper's value as a
    marker on the methods it pairs with; random-init rows in a lighter colour."""
    rows = [r for r in _ours(board) if _value(r, column) is not None]
    if not rows:
        return None
    rows.sort(key=lambda r: _value(r, column) or 0.0, reverse=metric_direction(column))
    paper_of = {id(o): p for o, p in pairs if o is not None and p is not None}
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(9.0, 0.36 * len(rows) + 1.5))
        ys = list(range(len(rows)))[::-1]
        marked = False
        for y, row in zip(ys, rows, strict=True):
            color = RANDOM_COLOR if row.random_init else OURS_COLOR
            half = ci95(row.cells.get(column))
            value = _value(row, column) or 0.0
            ax.errorbar([value], [y], xerr=[half] if half else None, fmt="o", color=color,
                        markersize=8, ecolor="#333", capsize=4, elinewidth=1.2)  # fmt: skip
            paper = paper_of.get(id(row))
            theirs = _value(paper, column) if paper is not None else None
            if theirs is not None:
                ax.plot([theirs], [y], marker="D", color=PAPER_COLOR, markersize=7, linestyle="none")
                marked = True
        ax.set_yticks(ys, [_short(r.label + (" °" if r.random_init else ""), 80) for r in rows])
        ax.set_ylim(-0.7, len(rows) - 0.3)
        better = "higher" if metric_direction(column) else "lower"
        ax.set_xlabel(f"{_metric_label(column)} ({better} is better; "
                      "bars: 95% CI where seeds ≥ 2)")  # fmt: skip
        ax.grid(axis="y", visible=False)
        handles = [plt.Line2D([], [], marker="o", color=OURS_COLOR, linestyle="none", label="ours")]
        if any(r.random_init for r in rows):
            handles.append(
                plt.Line2D(
                    [], [], marker="o", color=RANDOM_COLOR, linestyle="none", label="ours, random-init °"
                )
            )
        if marked:
            handles.append(
                plt.Line2D([], [], marker="D", color=PAPER_COLOR, linestyle="none", label="paper-reported")
            )
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        caption = f"{_metric_label(column)} per method (mean over seeds, best first)"
        return FigureSpec("main", caption, to_svg(fig))


def subset_groups(board: Board, key: str) -> FigureSpec | None:
    """(b) Warm vs cold and seen vs unseen for ``key`` (e.g. ``auc``), grouped per method that has them."""
    panels = [("warm", "cold"), ("seen", "unseen")]
    present = []
    for a, b in panels:
        rows = [
            r
            for r in _ours(board)
            if _value(r, f"{a}/{key}") is not None and _value(r, f"{b}/{key}") is not None
        ]
        if rows:
            present.append((a, b, rows))
    if not present:
        return None
    with plt.rc_context(STYLE):
        height = max(0.42 * max(len(rows) for *_, rows in present) + 1.4, 2.6)
        fig, axes = plt.subplots(1, len(present), figsize=(6.2 * len(present), height), squeeze=False)
        for ax, (a, b, rows) in zip(axes[0], present, strict=True):
            ys = list(range(len(rows)))[::-1]
            for offset, subset in ((0.18, a), (-0.18, b)):
                vals = [_value(r, f"{subset}/{key}") or 0.0 for r in rows]
                errs = [ci95(r.cells.get(f"{subset}/{key}")) or 0.0 for r in rows]
                ax.barh([y + offset for y in ys], vals, height=0.36, color=SUBSET_COLORS[subset],
                        label=subset,
                        xerr=errs, error_kw={"ecolor": "#333", "capsize": 2})  # fmt: skip
            ax.set_yticks(ys, [_short(r.label, 80) for r in rows])
            ax.xaxis.set_major_locator(MaxNLocator(5))
            ax.set_xlabel(f"{key} (mean over seeds)")
            ax.set_title(f"{a} vs {b}")
            ax.grid(axis="y", visible=False)
            ax.legend(loc="lower right")
        fig.tight_layout()
        return FigureSpec("subsets", f"{key}: warm vs cold, seen vs unseen", to_svg(fig))


def pareto_front(points: Sequence[tuple[float, float]], higher_is_better: bool) -> list[tuple[float, float]]:
    """The points no other point beats on both cost (lower) and quality; sorted by cost."""
    front: list[tuple[float, float]] = []
    best = -math.inf
    for cost, quality in sorted(points, key=lambda p: (p[0], -p[1] if higher_is_better else p[1])):
        score = quality if higher_is_better else -quality
        if score > best:
            front.append((cost, quality))
            best = score
    return front


COST_AXES = (
    ("cost/train_s", "train time (s, log scale)"),
    ("cost/peak_memory_mb", "peak memory (MB, log scale)"),
)


def quality_vs_cost(board: Board, column: str) -> FigureSpec | None:
    """(c) Quality against train seconds and against peak memory, the Pareto front drawn as a step line."""
    panels = []
    for cost_column, label in COST_AXES:
        pts = [
            (r, c, q)
            for r in _ours(board)
            if (c := _value(r, cost_column)) is not None and c > 0 and (q := _value(r, column)) is not None
        ]
        if len(pts) >= 2:
            panels.append((cost_column, label, pts))
    if not panels:
        return None
    higher = metric_direction(column)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.4), squeeze=False)
        for ax, (_, label, pts) in zip(axes[0], panels, strict=True):
            front = pareto_front([(c, q) for _, c, q in pts], higher)
            on_front = set(front)
            for row, c, q in pts:
                color = RANDOM_COLOR if row.random_init else OURS_COLOR
                ax.plot([c], [q], "o", color=color, markersize=7, markeredgecolor="white")
                if (c, q) in on_front:
                    ax.annotate(_short(row.label, 22), (c, q), xytext=(5, 4), textcoords="offset points",
                                fontsize=9)  # fmt: skip
            xs, ys = zip(*front, strict=True)
            ax.step(xs, ys, where="post", color=PAPER_COLOR, linewidth=1.5, label="Pareto front")
            ax.set_xscale("log")
            # plain numbers (0.001, 10, 1000), not mathtext powers: readable, and 10x cheaper to lay out;
            # within two decades also 2 and 5 (200, 500), else a range like 600-1200 MB has one label
            decades = math.log10(max(c for _, c, _ in pts) / min(c for _, c, _ in pts))
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if decades < 2 else (1.0,)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(label)
            ax.set_ylabel(_metric_label(column))
            ax.legend(loc="best")
        fig.tight_layout()
        return FigureSpec(
            "cost", f"{_metric_label(column)} against cost (Pareto front labelled)", to_svg(fig)
        )


def ours_vs_paper(points: Sequence[tuple[float, float, str]]) -> FigureSpec | None:
    """(d) Every paired cell over all boards: ours (y) against the paper's (x), y = x and a ±0.01 band.

    One panel per board group (dataset · task): metrics reported ×100 (item-to-text SC) and in [0, 1] (HR,
    AUC) do not share an axis. On a ×100 panel the band is ±1, the same 0.01 on the 0-1 scale."""
    if not points:
        return None
    groups = sorted({p[2] for p in points})
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(groups), figsize=(5.0 * len(groups), 5.0), squeeze=False)
        for ax, group in zip(axes[0], groups, strict=True):
            sel = [p for p in points if p[2] == group]
            xs, ys = [p[0] for p in sel], [p[1] for p in sel]
            scale = 100.0 if max(*xs, *ys) > 1.5 else 1.0
            band = PAIR_BAND * scale
            lo, hi = min(*xs, *ys), max(*xs, *ys)
            pad = max((hi - lo) * 0.08, band * 1.5)
            line = [max(lo - pad, 0.0), hi + pad]
            label = f"±{band:g}" + (" (0.01 × 100)" if scale != 1 else "")
            lower, upper = [v - band for v in line], [v + band for v in line]
            ax.fill_between(line, lower, upper, color="#e9c46a", alpha=0.4, label=label)
            ax.plot(line, line, color="#555", linewidth=1, label="y = x")
            ax.plot(xs, ys, "o", color=OURS_COLOR, markersize=7, alpha=0.85, label=f"{len(sel)} paired cells")
            ax.set_xlim(*line)
            ax.set_ylim(*line)
            ax.set_aspect("equal")
            ax.xaxis.set_major_locator(MaxNLocator(5))
            ax.yaxis.set_major_locator(MaxNLocator(5))
            unit = " (×100)" if scale != 1 else ""
            ax.set_title(group)
            ax.set_xlabel(f"paper-reported value{unit}")
            ax.set_ylabel(f"ours, mean over seeds{unit}")
            ax.legend(loc="upper left", fontsize=9)
        fig.tight_layout()
        return FigureSpec("vs-paper", f"ours against the paper: {len(points)} paired cells", to_svg(fig))


CONTROL_METHODS = ("i2t-floor", "i2t-copy", "i2t-text")  # item2text controls (benchbed.item2text)


def item2text_subtasks(board: Board, key: str = "sc") -> FigureSpec | None:
    """(e) Item-to-text SC per sub-task (the subsets that are not all/warm/seen/unseen), methods against
    the controls (floor: unrelated text; copy: the item's own text; text-only model)."""
    skip = {"all", "warm", "cold", "seen", "unseen"}
    subtasks = [c.rpartition("/")[0] for c in board.columns if c.endswith(f"/{key}")]
    subtasks = [s for s in subtasks if s not in skip and ":" not in s]
    rows = [r for r in _ours(board) if any(_value(r, f"{s}/{key}") is not None for s in subtasks)]
    if not subtasks or not rows:
        return None
    rows.sort(key=lambda r: (r.method in CONTROL_METHODS, r.label))
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(11.5, 4.6))
        width = 0.8 / len(rows)
        cmap = plt.get_cmap("tab10")
        for i, row in enumerate(rows):
            xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(subtasks))]
            vals = [_value(row, f"{s}/{key}") or 0.0 for s in subtasks]
            control = row.method in CONTROL_METHODS
            color = CONTROL_COLOR if control else cmap(i % 10)
            label = row.label + (" (control)" if control else "")
            ax.bar(xs, vals, width=width * 0.95, color=color, label=label,
                   hatch={"i2t-floor": "//", "i2t-copy": "..", "i2t-text": "xx"}.get(row.method),
                   edgecolor="white" if not control else "#555", linewidth=0.5)  # fmt: skip
        ax.set_xticks(range(len(subtasks)), subtasks)
        ax.set_xlabel("item-to-text sub-task")
        ax.set_ylabel(f"{key.upper()} (semantic consistency, mean over seeds)")
        ax.grid(axis="x", visible=False)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9)
        fig.tight_layout()
        return FigureSpec("item2text", f"{key.upper()} per sub-task against the controls", to_svg(fig))
