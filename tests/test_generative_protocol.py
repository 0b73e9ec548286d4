"""OpenP5 protocol pieces: item index, training examples, template banks, metrics, bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from generative_synth import write_synthetic

from benchbed.data.prepare import prepare_split
from benchbed.errors import ConfigError, DataError
from benchbed.generative import indexing
from benchbed.generative.examples import eval_rows, training_examples
from benchbed.generative.indexing import FIRST_ID, ItemIndex, build_index, get_index, index_path
from benchbed.generative.templates import load_generative_bank, render_pieces
from benchbed.metrics.generative import generative_metrics
from benchbed.metrics.ranking import hit_rate, hits_from_rankings, ndcg, top_k
from benchbed.prompts import Slot
from benchbed.tasks.generative import GenerativeTask


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("gen") / "data", n_users=60, n_clusters=3, cluster_size=8)


@pytest.fixture
def split(synth_dir: Path):
    return prepare_split(str(synth_dir), "leave-one-out").split


def test_random_index_numbers_all_items_from_1001_and_is_shared(split) -> None:
    index = get_index(split, "random", 0)
    numbers = sorted(int(s) for s in index.strings)
    assert numbers == list(range(FIRST_ID, FIRST_ID + split.n_items))
    assert index.strings != build_index(split, "random", 1).strings  # the seed matters
    assert index_path(split, "random", 0).is_file()  # cached on disk, keyed by the split hash
    assert get_index(split, "random", 0) is index  # one object per split in this process
    indexing._MEMO.clear()
    assert get_index(split, "random", 0).strings == index.strings  # read back from the disk cache


def test_sequential_index_follows_first_appearance(split) -> None:
    index = build_index(split, "sequential")
    order: list[int] = []
    for _, seq in sorted(split.train_sequences().items()):
        for item in seq:
            if int(item) not in order:
                order.append(int(item))
    assert [int(index.text(i)) for i in order] == list(range(FIRST_ID, FIRST_ID + len(order)))


def test_training_examples_cover_every_prefix_with_seen_templates_only(split) -> None:
    seqs = split.train_sequences()
    ex = training_examples(
        split, ("sequential", "straightforward"), history_len=3, n_seen=10, templates_per_example=2, seed=0
    )
    seq_ex = [e for e in ex if e.sub_task == "sequential"]
    sf_ex = [e for e in ex if e.sub_task == "straightforward"]
    assert len(seq_ex) == 2 * sum(len(s) - 1 for s in seqs.values())  # positions 1.. of each sequence
    assert len(sf_ex) == 2 * sum(len(s) for s in seqs.values())  # every position: only the user is shown
    user = next(iter(seqs))
    mine = [e for e in seq_ex if e.user == user]
    s = [int(i) for i in seqs[user]]
    for t in range(1, len(s)):
        rows = [e for e in mine if e.target == s[t] and len(e.history) == min(t, 3)]
        assert {e.history for e in rows} == {tuple(s[max(0, t - 3) : t])}
        assert len({e.template for e in rows}) == 2  # k distinct templates per example
    assert all(e.template.startswith("seen:") for e in ex)
    assert {int(e.template.split(":")[1]) for e in ex} <= set(range(10))


def test_eval_rows_targets_and_histories(split) -> None:
    test = eval_rows(split, "test", history_len=4)
    valid = eval_rows(split, "valid", history_len=50)
    seqs = split.train_sequences()
    v_item = dict(zip(split.valid["user"], split.valid["item"], strict=True))
    for u, h, t in zip(test.users, test.histories, test.targets, strict=True):
        assert h == [*map(int, seqs[int(u)]), int(v_item[int(u)])][-4:]
        assert t == int(split.test.set_index("user").loc[u, "item"])
    assert all(h == list(map(int, seqs[int(u)])) for u, h in zip(valid.users, valid.histories, strict=True))


def test_banks_have_ten_seen_one_unseen_and_render_slots() -> None:
    for sub_task in ("sequential", "straightforward"):
        bank = load_generative_bank(sub_task)
        assert len(bank.seen) == 10 and len(bank.unseen) == 1
        texts = [t["text"] for t in bank.seen]
        assert len(set(texts)) == 10 and bank.unseen[0]["text"] not in texts
    bank = load_generative_bank("sequential")
    plain = render_pieces(bank, "seen:0", dataset="syn", user="7", history=["1001", "1002"], slots=False)
    assert plain == [bank.seen[0]["text"].format(dataset="syn", user="7", history="1001 , 1002")]
    slotted = render_pieces(bank, "unseen:0", dataset="syn", user="7", history=["1001", "1002"], slots=True)
    assert [p for p in slotted if isinstance(p, Slot)] == [Slot("item_0"), Slot("item_1"), Slot("user")]
    text = "".join(p for p in slotted if isinstance(p, str))
    assert "1001" in text and "1002" in text and "user_7" in text  # vectors go alongside the id text


def test_generated_list_metrics_agree_with_topk_functions() -> None:
    rng = np.random.default_rng(0)
    ranked = np.array([[5, 3, 9, -1], [1, 2, 3, 4], [7, 8, -1, -1], [4, 0, 6, 2]])
    targets = np.array([9, 4, 5, 4])
    got = generative_metrics(ranked, targets, [1, 3, 4])
    # by hand: hits at ranks 3, 4, none, 1 (IDCG = 1)
    assert got["hr@1"] == pytest.approx(0.25) and got["hr@3"] == pytest.approx(0.5) and got["hr@4"] == 0.75
    assert got["ndcg@4"] == pytest.approx((1 / np.log2(4) + 1 / np.log2(5) + 1) / 4)
    # and on random lists: identical to the topk task's functions (scores -> top_k -> hits -> metrics)
    scores = rng.normal(size=(50, 30))
    lists, _ = top_k(scores, 10)
    targets = rng.integers(0, 30, size=50)
    hits = hits_from_rankings(lists, [np.array([t]) for t in targets])
    mine = generative_metrics(lists, targets, [5, 10])
    for k in (5, 10):
        assert mine[f"hr@{k}"] == hit_rate(hits, np.ones(50, int), k).value
        assert mine[f"ndcg@{k}"] == ndcg(hits, np.ones(50, int), k).value


# --- bad input -------------------------------------------------------------------------------------------
def test_split_that_is_not_leave_one_out_is_refused(synth_dir: Path) -> None:
    other = prepare_split(str(synth_dir), "random-per-user").split
    with pytest.raises(ConfigError, match="needs a 'leave-one-out' split"):
        GenerativeTask().check_split(other)


def test_user_with_fewer_than_three_interactions_is_refused(tmp_path: Path) -> None:
    d = write_synthetic(tmp_path, name="short", n_users=20, min_len=2, max_len=4, seed=3)
    short = prepare_split(str(d), "leave-one-out", {"min_interactions": 2}).split
    with pytest.raises(DataError, match=r"has 2 interaction\(s\); the generative task needs >= 3"):
        GenerativeTask().check_split(short)


def test_index_that_misses_a_test_item_is_refused(split) -> None:
    target = int(split.test["item"].iloc[0])
    strings = list(build_index(split).strings)
    strings[target] = ""
    key = (split.key, "random", 0)
    indexing._MEMO[key] = ItemIndex("random", 0, tuple(strings))
    try:
        with pytest.raises(DataError, match=f"does not cover .* item {target}"):
            GenerativeTask().check_split(split)
    finally:
        indexing._MEMO.pop(key)


def test_template_missing_a_placeholder_fails_in_one_line(
    tmp_path: Path, synth_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bank = load_generative_bank("sequential")
    lines = Path(bank.path).read_text(encoding="utf-8").replace("{history} . What is the next", "the next", 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text(lines, encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"seen template 0 \(text\) lacks the required placeholder \{history\}"
    ):
        GenerativeTask(bank_sequential=str(bad)).check_split(
            prepare_split(str(synth_dir), "leave-one-out").split
        )
    # through the CLI: exit code 1, one line, nothing trained (the record says failed, with the same line)
    from benchbed.cli.app import main
    from benchbed.results.record import read_record

    monkeypatch.setattr(
        sys,
        "argv",
        [
            "benchbed",
            "-q",
            "--results-dir",
            str(tmp_path / "res"),
            "run",
            "--method",
            "p5-random",
            "--dataset",
            str(synth_dir),
            "--task",
            "generative",
            "--task-param",
            f"bank_sequential={bad}",
        ],
    )
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and "lacks the required placeholder {history}" in err
    assert len(err.splitlines()) == 1
    records = [read_record(p) for p in (tmp_path / "res").rglob("*.json")]
    assert (
        len(records) == 1
        and records[0].status == "failed"
        and "lacks the required" in (records[0].error or "")
    )


def test_task_parameters_are_checked() -> None:
    with pytest.raises(ConfigError, match="sub_task='conversational' is invalid; expected one of"):
        GenerativeTask(sub_task="conversational")
    with pytest.raises(ConfigError, match="indexing=.collaborative. is invalid; expected one of"):
        GenerativeTask(indexing="collaborative")
    with pytest.raises(ConfigError, match="beams .* must be >= the largest k"):
        GenerativeTask(beams=5, ks=[5, 10])
