"""``leaderboard --vs-paper``: our rows paired with the paper rows they stand for, and the difference per
cell.

A paper row pairs with each of our rows whose resolved parameters equal what it declares; a run that differs
only in its backbone pairs "backbone differs" (no difference is computed: a tiny or another model is not the
paper's run). Only the pairing lives here; renderers (:mod:`benchbed.results.render`) format the boards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from benchbed.results.leaderboard import Board, Cell, Row

PAPER_SUFFIX, DIFF_SUFFIX = " paper", " Δ"


BACKBONE_DIFFERS = "backbone differs"


@dataclass(frozen=True)
class Pairing:
    """One line of ``--vs-paper``: our row, the paper row it stands for, and whether only the backbone
    differs (then the difference is not a number: a tiny or another model is not the paper's run)."""

    ours: Row | None
    paper: Row | None
    backbone_differs: bool = False


def _accepted_backbones(value: Any) -> set[str]:
    values = [value] if isinstance(value, str) else list(value or [])
    return {str(v).lower() for v in values}


def paper_match(ours: Row, paper: Row) -> str | None:
    """``"exact"`` when our row's resolved parameters equal every key the paper row declares (its method,
    variant, input, cf, ...; ``backbone`` lists the ids of the paper's model), ``"backbone"`` when they do
    except the backbone, else None. A key the paper row declares and our method lacks never matches."""
    if ours.method != paper.method:
        return None
    for key, value in paper.params.items():
        if key != "backbone" and (key not in ours.params or ours.params[key] != value):
            return None
    if "backbone" not in paper.params:
        return "exact"
    mine = str(ours.params.get("backbone", "")).lower()
    return "exact" if mine in _accepted_backbones(paper.params["backbone"]) else "backbone"


def paper_pairings(board: Board) -> list[Pairing]:
    """Pairs of one board, block by block (a block = one paper table, ``Row.source``).

    A paper row pairs with each of our rows whose resolved parameters equal what it declares
    (:func:`paper_match`). Our row with no such row in a block pairs "backbone differs" with the block's one
    row that matches it on everything but the backbone (none, when two do: CLLM4Rec-T5 and -LLaMA differ only
    in their model, so a GPT-2 run is neither). A paper row without a run stays alone (the table shows what
    is missing); our rows without a paper row come first."""
    ours = [r for r in board.rows if not r.is_reference]
    blocks: dict[str, list[Row]] = {}
    for row in board.rows:
        if row.is_reference:
            blocks.setdefault(row.source or "", []).append(row)
    pairs: list[Pairing] = []
    paired: set[int] = set()
    for rows in blocks.values():
        found: dict[int, list[tuple[Row, bool]]] = {id(p): [] for p in rows}
        for mine in ours:
            matches = {id(p): paper_match(mine, p) for p in rows}
            exact = [p for p in rows if matches[id(p)] == "exact"]
            near = [p for p in rows if matches[id(p)] == "backbone"]
            for p in exact or (near if len(near) == 1 else []):
                found[id(p)].append((mine, not exact))
                paired.add(id(mine))
        for p in rows:
            pairs += [Pairing(o, p, differs) for o, differs in found[id(p)]] or [Pairing(None, p)]
    return [Pairing(o, None) for o in ours if id(o) not in paired] + pairs


def paper_pairs(board: Board) -> list[tuple[Row | None, Row | None]]:
    """(our row, paper row) pairs of one board (:func:`paper_pairings` without the backbone flag)."""
    return [(p.ours, p.paper) for p in paper_pairings(board)]


def _pair_cells(pairing: Pairing, reported: list[str]) -> dict[str, Cell]:
    """Ours, the paper's and ours − paper for every reported column of one pairing."""
    ours, paper = pairing.ours, pairing.paper
    cells: dict[str, Cell] = {}
    for c in reported:
        mine = ours.cells.get(c) if ours else None
        theirs = paper.cells.get(c) if paper else None
        if mine is not None:
            cells[c] = mine
        if theirs is not None:
            cells[c + PAPER_SUFFIX] = theirs
        if mine is not None and theirs is not None and mine.mean is not None and theirs.mean is not None:
            cells[c + DIFF_SUFFIX] = Cell(mine.mean - theirs.mean, None, mine.n, mine.total)
            if pairing.backbone_differs:
                cells[c + DIFF_SUFFIX] = Cell(None, None, 0, mine.total, text=BACKBONE_DIFFERS)
    return cells


def _pair_row(pairing: Pairing, reported: list[str]) -> Row:
    """One ``ours | paper`` row: our run's identity (else the paper row's) with the paired cells."""
    ours, paper = pairing.ours, pairing.paper
    label = f"{ours.label if ours else '—'} | {paper.label if paper else '—'}"
    base = ours or paper
    assert base is not None
    return Row(
        base.method,
        label,
        dict(base.params),
        ours.params_hash if ours else "",
        list(ours.seeds) if ours else [],
        _pair_cells(pairing, reported),
        time_capped=bool(ours and ours.time_capped),
        random_init=bool(ours and ours.random_init),
    )


def _vs_paper_notes(papers: list[Row], unpaired: list[str]) -> list[str]:
    sources = sorted({p.source for p in papers if p.source})
    notes = [f"ours | paper row; '{PAPER_SUFFIX.strip()}' = paper-reported ({'; '.join(sources)})"]
    notes.append(
        f"'{DIFF_SUFFIX.strip()}' = ours − paper; empty: no run of ours or no paper figure; "
        f"'{BACKBONE_DIFFERS}': our run is not on the paper's model, so no difference is computed"
    )
    if unpaired:
        notes.append(f"not in the paper's table (plain leaderboard shows them): {', '.join(unpaired)}")
    return notes


def vs_paper_boards(boards: Sequence[Board]) -> list[Board]:
    """Boards for ``leaderboard --vs-paper``: one row per (ours, paper) pair and, for every column the paper
    reports, three columns: ours (mean ± s.e.), the paper's, and ours − paper. Boards without paper rows
    are left out (there is nothing to compare)."""
    out = []
    for board in boards:
        everything = paper_pairings(board)
        pairs = [x for x in everything if x.paper is not None]
        unpaired = [x.ours.label for x in everything if x.paper is None and x.ours is not None]
        papers = [x.paper for x in pairs if x.paper is not None]
        if not papers:
            continue
        reported = [c for c in board.columns if any(p.cells.get(c) is not None for p in papers)]
        columns = [x for c in reported for x in (c, c + PAPER_SUFFIX, c + DIFF_SUFFIX)]
        rows = [_pair_row(pairing, reported) for pairing in pairs]
        notes = _vs_paper_notes(papers, unpaired)
        out.append(replace(board, columns=columns, rows=rows, notes=notes + list(board.notes)))
    return out
