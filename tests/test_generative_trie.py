"""Prefix trie and constrained beam search: only valid ids, exact log-probs, prefix ids, multi-token ids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from generative_synth import save_word_backbone

from benchbed.errors import DataError
from benchbed.llm.backbone.loader import load_backbone
from benchbed.llm.heads.constrained import ItemTrie, beam_search, build_item_trie


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matmuls: one thread avoids OpenMP spin-waits on a shared 2-core machine; restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def word_backbone(tmp_path_factory: pytest.TempPathFactory):
    """A random small decoder whose tokenizer splits digits, loaded by path like any HF model."""
    path = save_word_backbone(tmp_path_factory.mktemp("wb") / "model", extra_words=("syn",), hidden=32)
    return load_backbone(str(path))


def _prompts(bb, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    enc = bb.tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False)
    return bb.model.get_input_embeddings()(enc["input_ids"]), enc["attention_mask"]


def _teacher_forced(bb, prompt: str, seq: tuple[int, ...]) -> float:
    ids = bb.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = bb.model(input_ids=torch.tensor([ids + list(seq)])).logits[0].float()
    lp = torch.log_softmax(logits, dim=-1)
    return float(sum(lp[len(ids) - 1 + j, t] for j, t in enumerate(seq)))


def test_prefix_ids_are_distinct_paths_and_multi_token(word_backbone) -> None:
    tok = word_backbone.tokenizer
    texts = {0: "item_12", 1: "item_123", 2: "item_1", 3: "item_1234", 4: "item_7"}
    trie = build_item_trie(tok, texts, end_token=tok.eos_token_id)
    assert trie.n_items == 5
    for item in texts:
        seq = trie.sequences[item]
        assert len(seq) >= 4 and seq[-1] == tok.eos_token_id  # "item", "_", digits..., end
        assert trie.walk(seq) == item
    one_two = list(trie.sequences[0][:-1])
    # "item_12" without the end token is not a complete id, and "item_12" + "9" is no id at all
    assert trie.walk(one_two) == -1
    assert trie.walk([*one_two, tok.convert_tokens_to_ids("9"), tok.eos_token_id]) == -1
    # after "item_12" the trie allows exactly the end token (-> item 12) and "3" (-> item 123...)
    node = 0
    for t in one_two:
        node = int(trie.step(np.array([node]), np.array([t]))[0])
    assert set(trie.allowed(node).tolist()) == {tok.eos_token_id, tok.convert_tokens_to_ids("3")}
    prefix, _ = trie.forced_prefix()
    assert tok.convert_ids_to_tokens(prefix) == ["item", "_"]  # then "1" or "7": a real choice


def test_beams_are_always_valid_and_scored_exactly(word_backbone) -> None:
    """A random (untrained) decoder is the worst case: nearly every step needs the constraint."""
    tok = word_backbone.tokenizer
    rng = np.random.default_rng(0)
    numbers = rng.choice(np.arange(200, 3000), size=60, replace=False)
    texts = {i: f"syn {n}" for i, n in enumerate(numbers)}  # 3-4 digits: some prefix others
    texts[60], texts[61] = "syn 12", "syn 123"
    trie = build_item_trie(tok, texts, end_token=tok.eos_token_id)
    prompts = ["what syn item should user _ 1 see next ?", "recommend the next syn item for user _ 2 2 3 ."]
    emb, mask = _prompts(word_backbone, prompts)
    out = beam_search(word_backbone.model, emb, mask, trie, num_beams=10)
    assert out.items.shape == (2, 10) and (out.items >= 0).all()
    for r in range(2):
        assert len(set(out.items[r].tolist())) == 10  # distinct ids
        assert np.all(np.diff(out.scores[r]) <= 1e-9)  # best first
        for j in (0, 9):
            item = int(out.items[r, j])
            assert out.scores[r, j] == pytest.approx(
                _teacher_forced(word_backbone, prompts[r], trie.sequences[item]), abs=1e-4
            )
    # exact beam search over few items = the true top-k by sequence probability
    small = ItemTrie.build(
        {i: trie.sequences[i][:-1] for i in (0, 1, 2, 60, 61)},
        end_token=tok.eos_token_id,
        vocab_size=len(tok),
    )
    out = beam_search(word_backbone.model, emb[:1], mask[:1], small, num_beams=5)
    truth = sorted(
        (0, 1, 2, 60, 61), key=lambda i: -_teacher_forced(word_backbone, prompts[0], trie.sequences[i])
    )
    assert out.items[0].tolist() == truth
    assert 0.0 < out.stats["constrained_step_share"] <= 1.0 and out.stats["valid_beams"] == 5


def test_fewer_items_than_beams_pads_with_minus_one(word_backbone) -> None:
    tok = word_backbone.tokenizer
    trie = build_item_trie(tok, {5: "syn 1", 9: "syn 1 2"}, end_token=tok.eos_token_id)
    emb, mask = _prompts(word_backbone, ["what syn item ?"])
    out = beam_search(word_backbone.model, emb, mask, trie, num_beams=4)
    assert sorted(out.items[0, :2].tolist()) == [5, 9] and out.items[0, 2:].tolist() == [-1, -1]
    assert np.isneginf(out.scores[0, 2:]).all()


def test_unconstrained_search_reports_invalid_beams(word_backbone) -> None:
    tok = word_backbone.tokenizer
    trie = build_item_trie(tok, {i: f"syn {1000 + i}" for i in range(30)}, end_token=tok.eos_token_id)
    emb, mask = _prompts(word_backbone, ["what syn item ?", "pick one ."])
    out = beam_search(word_backbone.model, emb, mask, trie, num_beams=3, constrained=False)
    # a random model does not spell valid ids on its own; whatever it returns is -1 or a real item
    assert set(out.items.ravel().tolist()) <= {-1, *range(30)}
    assert out.stats["valid_beams"] < out.stats["beams"]


def test_trie_rejects_ambiguous_or_broken_sequences() -> None:
    with pytest.raises(DataError, match="tokenize identically"):
        ItemTrie.build({1: [5, 6], 2: [5, 6]}, end_token=0)
    with pytest.raises(DataError, match="contain the end token"):
        ItemTrie.build({1: [5, 0, 6]}, end_token=0)
    with pytest.raises(DataError, match="empty token sequence"):
        ItemTrie.build({1: []}, end_token=0)
    with pytest.raises(DataError, match="outside the vocabulary"):
        ItemTrie.build({1: [50]}, end_token=0, vocab_size=10)


def test_random_tries_only_ever_yield_their_items() -> None:
    """Property check on random token sequences (prefixes of each other included), vectorised step()."""
    rng = np.random.default_rng(1)
    for _ in range(20):
        seqs: dict[int, list[int]] = {}
        for i in range(40):
            base = seqs[int(rng.integers(i))] if i and rng.random() < 0.4 else []
            seqs[i] = [*base, *rng.integers(1, 12, size=int(rng.integers(1, 3))).tolist()]
        uniq = {}
        for i, s in seqs.items():
            if tuple(s) not in {tuple(v) for v in uniq.values()}:
                uniq[i] = s
        trie = ItemTrie.build(uniq, end_token=0, vocab_size=12)
        for i, s in uniq.items():
            assert trie.walk([*s, 0]) == i
        # random walks through the allowed sets always end on a leaf of a real item
        for _ in range(30):
            node, path = 0, []
            while trie.leaf_item[node] < 0:
                tok = int(rng.choice(trie.allowed(node)))
                path.append(tok)
                node = int(trie.step(np.array([node]), np.array([tok]))[0])
            assert trie.leaf_item[node] in uniq and path == [*uniq[int(trie.leaf_item[node])], 0]
