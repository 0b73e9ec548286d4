"""The report page: one self-contained HTML file (inline CSS, inline SVG figures, a few lines of optional JS).

Nothing is fetched: no CDN, font or image URL, so the file opens from disk, from an e-mail attachment or in an
air-gapped review. The page reads without JavaScript; the script only sorts tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from benchbed.report.figures import FigureSpec
from benchbed.report.tables import SORT_JS, TABLE_CSS, esc


@dataclass
class BoardSection:
    """One board of the page: its anchor, title, main metric, table HTML and figures."""

    anchor: str
    title: str
    main_column: str
    rows: int
    table: str
    figures: list[FigureSpec] = field(default_factory=list)


@dataclass
class Provenance:
    """What produced the page: shown in its header."""

    version: str
    git_sha: str | None
    dirty: bool | None
    created: str
    records: int
    skipped: int
    environment: list[tuple[str, str]]  # (name, summary) pairs
    sources: list[str]  # results directories / suite files read


PAGE_CSS = """
:root{color-scheme:light}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1d2733;
  background:#f6f8fb;line-height:1.45}
header{background:#17324d;color:#fff;padding:20px 32px 16px}
header h1{margin:0 0 4px;font-size:24px;font-weight:650}
header .sub{color:#c7d6e6;font-size:14px}
header dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:12px 0 0;font-size:13px}
header dt{color:#9fb7cf}header dd{margin:0;color:#fff}
main{padding:8px 32px 40px;max-width:1600px}
nav.index{background:#fff;border:1px solid #d8dee6;border-radius:6px;padding:10px 16px;margin:16px 0}
nav.index h2{font-size:15px;margin:0 0 6px}
nav.index ol{margin:0;padding-left:20px;font-size:14px}
nav.index .meta{color:#6b7785}
section.board-section{margin:28px 0;padding-top:4px}
section.board-section>h2{font-size:19px;margin:0 0 8px;border-bottom:2px solid #17324d;padding-bottom:4px}
.figures{display:flex;flex-wrap:wrap;gap:16px;margin-top:14px}
figure{background:#fff;border:1px solid #d8dee6;border-radius:6px;margin:0;padding:8px 10px;max-width:100%}
figure svg{max-width:100%;height:auto;display:block}
figcaption{font-size:13px;color:#45556a;margin-top:4px}
a{color:#1f5fa8}
.legend-box{font-size:13px;color:#45556a;background:#fff;border:1px solid #d8dee6;border-radius:6px;
  padding:8px 14px}
"""


def figure_html(section_anchor: str, fig: FigureSpec) -> str:
    anchor = f"{section_anchor}-fig-{fig.key}"
    return (
        f"<figure class='report-figure' id='{esc(anchor)}' data-figure='{esc(fig.key)}'>{fig.svg}"
        f"<figcaption>{esc(fig.caption)}</figcaption></figure>"
    )


def page(provenance: Provenance, sections: Sequence[BoardSection], overall: Sequence[FigureSpec]) -> str:
    """The whole report as one HTML string."""
    sha = provenance.git_sha[:12] if provenance.git_sha else "not a git checkout"
    if provenance.dirty:
        sha += " (with uncommitted changes)"
    facts = [
        ("benchbed", provenance.version),
        ("code", sha),
        ("built", provenance.created),
        (
            "records",
            f"{provenance.records} read" + (f", {provenance.skipped} skipped" if provenance.skipped else ""),
        ),
        ("from", ", ".join(provenance.sources) or "–"),
        *provenance.environment,
    ]
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
    index = "".join(
        f"<li><a href='#{esc(s.anchor)}'>{esc(s.title)}</a> <span class='meta'>· {s.rows} rows · "
        f"main metric {esc(s.main_column)}</span></li>"
        for s in sections
    )
    if overall:
        index += "<li><a href='#across-boards'>Across boards: ours against the paper</a></li>"
    body = []
    for s in sections:
        figs = "".join(figure_html(s.anchor, f) for f in s.figures)
        body.append(
            f"<section class='board-section' id='{esc(s.anchor)}' data-board-title='{esc(s.title)}'>"
            f"<h2>{esc(s.title)}</h2>{s.table}<div class='figures'>{figs}</div></section>"
        )
    if overall:
        figs = "".join(figure_html("across", f) for f in overall)
        body.append(
            "<section class='board-section' id='across-boards'><h2>Across boards: ours against the paper</h2>"
            f"<div class='figures'>{figs}</div></section>"
        )
    legend = (
        "<p class='legend-box'>° random-init <code>tiny</code> backbone: the row tests the pipeline, not the "
        "method · † paper-reported · ‡ stopped by a wall-clock cap · ↑/↓ the better direction of a column · "
        "cost columns come from each record's <code>cost</code> (train_s, eval_s, peak_memory_mb, "
        "trainable_params)</p>"
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>benchbed report</title><style>{PAGE_CSS}{TABLE_CSS}</style></head><body>"
        f"<header><h1>benchbed report</h1><div class='sub'>{len(sections)} boards (dataset · task · "
        f"protocol), {provenance.records} records</div><dl>{dl}</dl></header><main>"
        f"<nav class='index' id='index'><h2>Boards</h2><ol>{index}</ol></nav>"
        f"{legend}{''.join(body)}</main><script>{SORT_JS}</script></body></html>\n"
    )
