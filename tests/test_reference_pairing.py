"""Paper rows pair only with the configuration they report (issue 22, item 1).

Each block of ``reference.yaml`` is checked against the registries (its dataset, task and protocol exist),
and each of its rows against the method it names: ``build_method`` accepts its parameters, the run those
parameters make pairs with that row and no other row of the block, and a run on another backbone is shown
beside it as "backbone differs" instead of a difference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import benchbed.data.catalog  # noqa: F401  (registers DATASETS and SPLITS)
import benchbed.tasks  # noqa: F401  (registers TASKS)
from benchbed.cli.board_defaults import registry_defaults
from benchbed.methods import build_method
from benchbed.registry import DATASETS, METHODS, SPLITS, TASKS
from benchbed.results.leaderboard import Board, Cell, Row, build_leaderboard
from benchbed.results.reference import ReferenceRow, load_references
from benchbed.results.store import load_records
from benchbed.results.vs_paper import BACKBONE_DIFFERS, paper_pairings, vs_paper_boards

REFERENCES = load_references()
RESULTS = Path(__file__).resolve().parents[1] / "results"


def _blocks() -> dict[int, list[ReferenceRow]]:
    blocks: dict[int, list[ReferenceRow]] = {}
    for ref in REFERENCES:
        blocks.setdefault(ref.block, []).append(ref)
    return blocks


def _declared_backbone(ref: ReferenceRow) -> str | None:
    """The first id of the paper's model a row declares (None: the row names no backbone)."""
    value = ref.params.get("backbone")
    names = [value] if isinstance(value, str) else list(value or [])
    return str(names[0]) if names else None


def _paper_row(ref: ReferenceRow) -> Row:
    cells = {"all/x": Cell(0.5, None, 1, 1)}
    return Row(
        ref.method_id or ref.method, ref.method, dict(ref.params), "", [], cells, ref.citation, ref.note
    )


def _our_row(method: str, params: dict[str, Any]) -> Row:
    return Row(method, method, params, "h", [0], {"all/x": Cell(0.6, None, 1, 1)})


def _run_params(ref: ReferenceRow, backbone: str | None) -> dict[str, Any]:
    """The resolved parameters (defaults filled in) of the run a researcher would launch for this row, as its
    record states them; the backbone is set afterwards, since a hub model cannot be looked up offline."""
    params = {k: v for k, v in ref.params.items() if k != "backbone"}
    assert ref.method_id is not None
    resolved = dict(build_method(ref.method_id, params, task=ref.tasks[0]).params)
    if backbone is not None:
        resolved["backbone"] = backbone
    return resolved


def test_every_block_names_a_dataset_task_and_protocol_that_exist() -> None:
    for ref in REFERENCES:
        where = f"{ref.citation} / {ref.method}"
        assert all(t in TASKS for t in ref.tasks), where
        assert all(p in SPLITS for p in ref.protocols), where
        if (
            ref.awaiting is None
        ):  # a dataset of the catalog, or one run from a directory (LastFM: data/lastfm)
            assert any(d in DATASETS or "/" in d for d in ref.datasets), where


@pytest.mark.parametrize("block", sorted(_blocks()), ids=lambda b: f"block{b}")
def test_each_row_pairs_with_its_own_configuration_only(block: int) -> None:
    refs = [r for r in _blocks()[block] if r.method_id]
    if not refs or refs[0].awaiting is not None:
        return
    papers = [_paper_row(r) for r in _blocks()[block]]
    for ref in refs:
        assert ref.method_id in METHODS, ref.method_id
        board = Board("d", ref.tasks[0], "p", {}, {}, ["all/x"], rows=[])
        mine = _our_row(ref.method_id, _run_params(ref, _declared_backbone(ref)))
        board.rows = [mine, *papers]
        got = [p for p in paper_pairings(board) if p.ours is mine]
        same = [p for p in papers if p.method == ref.method_id and p.params == ref.params]
        assert [p.paper.label for p in got if p.paper] == [p.label for p in same], ref.method
        assert not any(p.backbone_differs for p in got), ref.method
        # the same configuration on every model the block names, and on benchbed's random-init tiny model:
        # never beside a row of another configuration, beside at most one row, a number only on its model
        if "backbone" not in _run_params(ref, None):
            continue  # an ID model: no backbone to vary
        models = {_declared_backbone(r) for r in refs} | {"tiny"}
        for model in sorted(m for m in models if m is not None):
            run = _our_row(ref.method_id, _run_params(ref, model))
            board.rows = [run, *papers]
            got = [p for p in paper_pairings(board) if p.ours is run and p.paper]
            assert len({id(p.paper) for p in got}) <= max(1, len(same)), (ref.method, model)
            for p in got:
                assert p.paper is not None and p.paper.method == ref.method_id
                theirs = {k: v for k, v in p.paper.params.items() if k != "backbone"}
                assert theirs == {k: v for k, v in ref.params.items() if k != "backbone"}, (ref.method, model)
                declared = p.paper.params.get("backbone")
                on_its_model = model in ([declared] if isinstance(declared, str) else list(declared or []))
                assert p.backbone_differs == (not on_its_model), (ref.method, model)


def test_a_run_on_another_backbone_says_so_instead_of_a_difference() -> None:
    collm_mf = next(r for r in REFERENCES if r.method == "CoLLM-MF" and "ml-1m" in r.datasets)
    papers = [_paper_row(r) for r in REFERENCES if r.block == collm_mf.block]
    tiny = _our_row("collm", _run_params(collm_mf, "tiny"))
    lightgcn = _our_row("collm", {**tiny.params, "cf": "lightgcn"})
    board = Board("ml-1m", "ctr", "temporal-window", {}, {}, ["all/x"], rows=[tiny, lightgcn, *papers])
    pairs = {
        (p.ours.label if p.ours else None, p.paper.label if p.paper else None): p
        for p in paper_pairings(board)
    }
    assert pairs[("collm", "CoLLM-MF")].backbone_differs
    [vs] = vs_paper_boards([board])
    row = next(r for r in vs.rows if r.label.endswith("| CoLLM-MF"))
    assert row.cells["all/x Δ"].text == BACKBONE_DIFFERS and row.cells["all/x Δ"].mean is None
    # the same run on the paper's model gets a number
    vicuna = _our_row("collm", {**tiny.params, "backbone": "vicuna-7b"})
    board.rows = [vicuna, *papers]
    [vs] = vs_paper_boards([board])
    row = next(r for r in vs.rows if r.label.endswith("| CoLLM-MF"))
    assert row.cells["all/x Δ"].mean == pytest.approx(0.1) and row.cells["all/x Δ"].text is None


def test_a_run_pairs_with_no_row_when_two_differ_only_in_their_backbone() -> None:
    t5 = next(r for r in REFERENCES if r.method == "CLLM4Rec-T5")
    papers = [_paper_row(r) for r in REFERENCES if r.block == t5.block]
    gpt2 = _our_row("cllm4rec", _run_params(t5, "gpt2"))  # a run on neither of the two models
    board = Board("d", "topk", "random-per-user", {}, {}, ["all/x"], rows=[gpt2, *papers])
    assert [p.paper for p in paper_pairings(board) if p.ours is gpt2] == [None]


def test_no_committed_run_pairs_with_two_rows_of_one_block() -> None:
    records = [rec for _, rec in load_records([RESULTS]).records]
    boards = build_leaderboard(records, REFERENCES, defaults=registry_defaults)
    seen = 0
    for board in boards:
        for ours in (r for r in board.rows if not r.is_reference):
            blocks = [p.paper.source for p in paper_pairings(board) if p.ours is ours and p.paper]
            assert len(blocks) == len(set(blocks)), (board.title, ours.label, blocks)
            seen += 1
    assert seen > 20
