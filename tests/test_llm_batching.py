"""``benchbed.llm.yesno.fast_scoring`` (token-budget batches, the two-row answer head) and
``benchbed.llm.yesno.prefix_reuse`` (shared-prefix reuse) give the scores of the plain path (each full
prompt alone through the model's own forward and LM head).

Real tiny models (the ``tiny`` Llama with an untied head, a tiny GPT-2, a LoRA-wrapped Llama), no mocks; no
timing assertions (speed is ``benchmarks/perf_llm_scoring.py``'s job).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import frozen, tiny_gpt2

from benchbed.llm.backbone.loader import build_tiny
from benchbed.llm.injectors.base import ModelInputs
from benchbed.llm.injectors.prompts import Batch, EncodedPrompts, collate, encode
from benchbed.llm.injectors.slots import SlotVectors
from benchbed.llm.yesno import fast_scoring, prefix_reuse
from benchbed.llm.yesno.head import YesNoHead, bce_loss
from benchbed.prompts import Slot

ATOL = 2e-5  # fp32; batch composition changes summation order (observed ~1e-7)
USER_HISTORY = [
    "a user liked the films alien , heat and the matrix",
    "someone rated toy story , fargo , casablanca , vertigo and a much longer list of other titles highly",
    "history : nothing yet",
]
TITLES = ["up", "the godfather part two", "star wars episode five : the empire strikes back", "x", "heat"]


# --- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    """The tiny Llama with its own LM head (the tied one mostly repeats the last token: too easy to match)."""
    model, tok = build_tiny(tie_word_embeddings=False)
    return frozen(model), tok


@pytest.fixture(scope="module")
def gpt2(tiny):
    return tiny_gpt2(tiny[1], n_positions=256), tiny[1]


@pytest.fixture(scope="module")
def qwen2(tiny):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = tiny[1]
    config = Qwen2Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, pad_token_id=tok.pad_token_id, tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(5)
    return frozen(Qwen2ForCausalLM(config)), tok


@pytest.fixture(scope="module")
def lora(tiny):
    """A peft LoRA wrap of a fresh tiny Llama with non-zero adapters (so LoRA changes the scores)."""
    from benchbed.llm.lora import add_lora

    model, tok = build_tiny(tie_word_embeddings=False)
    peft_model, _ = add_lora(model)
    torch.manual_seed(2)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    peft_model.eval()
    return peft_model, tok


@pytest.fixture(scope="module")
def answer_ids(tiny):
    tok = tiny[1]
    return [
        tok("yes", add_special_tokens=False)["input_ids"][0],
        tok("no", add_special_tokens=False)["input_ids"][0],
    ]


def _prompts(n_per_user: int = 4, with_slots: bool = False, item_slot_first: bool = False):
    """(pieces, users, items): each user's rows share the prompt up to the candidate title (or, with
    ``item_slot_first``, up to the item's slot, which precedes the title)."""
    prompts, users, items = [], [], []
    for u, hist in enumerate(USER_HISTORY):
        for j in range(n_per_user):
            item = (u * 7 + j * 3) % len(TITLES)
            if item_slot_first:
                pieces = [f"question : {hist} , user", Slot("user_emb"), ". candidate", Slot("item_emb"),
                          f"titled {TITLES[item]} ? answer :"]  # fmt: skip
            elif with_slots:
                pieces = [f"question : {hist} , user", Slot("user_emb"), f". will they enjoy {TITLES[item]}",
                          Slot("item_emb"), "? answer :"]  # fmt: skip
            else:
                pieces = [f"question : {hist} . will they enjoy {TITLES[item]} ? answer :"]
            prompts.append(pieces)
            users.append(u)
            items.append(item)
    return prompts, np.asarray(users), np.asarray(items)


def _encode(tok, prompts, with_slots: bool = False) -> EncodedPrompts:
    return encode(tok, prompts, ("user_emb", "item_emb") if with_slots else ())


def _vector_fn(model, users: np.ndarray, items: np.ndarray):
    hidden = model.get_input_embeddings().weight.shape[1]
    gen = torch.Generator().manual_seed(3)
    u_vec = torch.randn(len(USER_HISTORY), hidden, generator=gen)
    i_vec = torch.randn(len(TITLES), hidden, generator=gen)

    def fn(batch: Batch) -> dict[int, torch.Tensor]:
        return {0: u_vec[users[batch.rows]], 1: i_vec[items[batch.rows]]}

    return fn


@torch.no_grad()
def _reference(model, enc: EncodedPrompts, ids, pad_id: int, vector_fn=None, mode: str = "yes") -> np.ndarray:
    """The plain path: every row alone (no padding) through the kit's injector and Yes/No head."""
    head, inj = YesNoHead(ids, mode), SlotVectors()
    out = []
    for r in range(len(enc)):
        batch = collate(enc, np.asarray([r]), pad_id)
        vec = vector_fn(batch) if vector_fn is not None else None
        out.append(float(head.scores(model, inj.inputs(model, batch, vectors=vec), batch)[0]))
    return np.asarray(out)


# --- token-budget batches -----------------------------------------------------------------------------------
def test_token_budget_batches_cover_rows_once_within_budget():
    lengths = np.asarray([5, 50, 3, 3, 20, 7, 120, 9, 9, 1])
    batches = fast_scoring.token_budget_batches(lengths, 40)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    for b in batches:
        assert len(b) == 1 or len(b) * lengths[b].max() <= 40
    assert [len(b) for b in batches if lengths[b].max() > 40] == [1, 1]  # longer than the budget: alone
    assert np.all(np.diff(lengths[flat]) >= 0)  # sorted by length
    capped = fast_scoring.token_budget_batches(lengths, 10_000, max_rows=3)
    assert max(len(b) for b in capped) == 3 and len(np.concatenate(capped)) == len(lengths)
    assert fast_scoring.token_budget_batches(np.asarray([], dtype=np.int64), 64) == []
    with pytest.raises(ValueError, match="positive token budget"):
        fast_scoring.token_budget_batches(lengths, 0)


# --- the two-row answer head --------------------------------------------------------------------------------
@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("which", ["tiny", "gpt2", "qwen2", "lora"])
def test_fast_head_equals_full_head(request, which, side, answer_ids):
    model, tok = request.getfixturevalue(which)
    assert fast_scoring.fast_head_supported(model)
    prompts, _, _ = _prompts(2)
    enc = _encode(tok, prompts)
    batch = collate(enc, np.arange(len(enc)), tok.pad_token_id, side=side)
    inputs = SlotVectors().inputs(model, batch)
    with torch.no_grad():
        fast = fast_scoring.answer_logits_batch(model, inputs, batch, answer_ids)
        full = YesNoHead(answer_ids).logits(model, inputs, batch)
    assert fast.shape == (len(enc), 2) and fast.dtype == torch.float32
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("which", ["tiny", "gpt2"])
def test_fast_head_with_a_layer_prefix_in_the_cache(request, which, side, answer_ids):
    """RA-Rec-style inputs (per-layer prefixes as past key/values, shifted positions), fast head."""
    from benchbed.llm.injectors.prefix import LayerPrefix

    model, tok = request.getfixturevalue(which)
    prompts, _, _ = _prompts(1)
    enc = _encode(tok, prompts)
    batch = collate(enc, np.arange(len(enc)), tok.pad_token_id, side=side)
    n_layers, hidden = model.config.num_hidden_layers, model.get_input_embeddings().weight.shape[1]
    prefix = torch.randn(len(enc), 3, n_layers, hidden, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():  # the cache grows in the forward: fresh inputs for each head
        fast = fast_scoring.answer_logits_batch(
            model, LayerPrefix().inputs(model, batch, prefix=prefix), batch, answer_ids
        )
        full = YesNoHead(answer_ids).logits(model, LayerPrefix().inputs(model, batch, prefix=prefix), batch)
        plain = YesNoHead(answer_ids).logits(model, SlotVectors().inputs(model, batch), batch)
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=0)
    assert (fast - plain).abs().max() > 1e-4  # the prefix is seen


def test_fast_head_gradients_equal_full_head_with_lora(lora, answer_ids):
    """Training through the two-row head: same loss and same LoRA gradients as through the full head."""
    model, tok = lora
    prompts, _, _ = _prompts(2)
    enc = _encode(tok, prompts)
    batch = collate(enc, np.arange(len(enc)), tok.pad_token_id)
    labels = torch.tensor([1.0, 0.0] * (len(enc) // 2))
    grads = []
    for fast in (False, True):
        model.zero_grad(set_to_none=True)
        for name, p in model.named_parameters():
            p.requires_grad_("lora_" in name)
        inputs = SlotVectors().inputs(model, batch)
        head = YesNoHead(answer_ids)
        logits = (
            fast_scoring.answer_logits_batch(model, inputs, batch, answer_ids)
            if fast
            else head.logits(model, inputs, batch)
        )
        bce_loss(logits[:, 0], labels).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    for p in model.parameters():
        p.requires_grad_(False)
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 0
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-5)


def test_fast_head_falls_back_where_the_head_is_not_plain(answer_ids):
    """LoRA on the LM head itself: two rows of its base weight would be wrong; the model's forward runs."""
    from peft import LoraConfig, get_peft_model

    model, tok = build_tiny(tie_word_embeddings=False)
    wrapped = get_peft_model(model, LoraConfig(r=4, target_modules=["lm_head"], lora_alpha=8))
    with torch.no_grad():
        for name, p in wrapped.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 1.0)
    wrapped.eval()
    assert not fast_scoring.fast_head_supported(wrapped)
    prompts, _, _ = _prompts(1)
    enc = _encode(tok, prompts)
    for side in ("left", "right"):
        batch = collate(enc, np.arange(len(enc)), tok.pad_token_id, side=side)
        inputs = SlotVectors().inputs(wrapped, batch)
        with torch.no_grad():
            got = fast_scoring.answer_logits_batch(wrapped, inputs, batch, answer_ids)
            want = YesNoHead(answer_ids).logits(wrapped, inputs, batch)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


# --- whole-prompt scoring -----------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["tiny", "lora"])
@pytest.mark.parametrize("with_slots", [False, True])
def test_score_yesno_rows_equals_plain_path(request, which, with_slots, answer_ids):
    model, tok = request.getfixturevalue(which)
    prompts, users, items = _prompts(3, with_slots)
    enc = _encode(tok, prompts, with_slots)
    vfn = _vector_fn(model, users, items) if with_slots else None
    want = _reference(model, enc, answer_ids, tok.pad_token_id, vfn, mode="yes-no")
    for budget in (1, 64, 10_000):  # one row per batch, a few rows, everything in one batch
        call = fast_scoring.YesNoCall(answer_ids, tok.pad_token_id, vector_fn=vfn, mode="yes-no")
        got = fast_scoring.score_yesno_rows(model, enc, call, max_tokens=budget)
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
    sub = np.asarray([5, 0, 2])
    got = fast_scoring.score_yesno_rows(model, enc, call, rows=sub)
    np.testing.assert_allclose(got, want[sub], atol=ATOL, rtol=0)


# --- prefix plans -------------------------------------------------------------------------------------------
def test_plan_prefixes_finds_each_groups_common_prefix(tiny):
    _, tok = tiny
    prompts, users, _ = _prompts(4)
    enc = _encode(tok, prompts)
    plan = prefix_reuse.plan_prefixes(enc, list(users))
    assert plan.n_groups == len(USER_HISTORY)
    for g in range(plan.n_groups):
        rows = np.flatnonzero(plan.group == g)
        p = int(plan.prefix_len[g])
        first = enc.ids[rows[0]]
        assert all(np.array_equal(enc.ids[r][:p], first[:p]) for r in rows)
        assert any(len(enc.ids[r]) <= p or enc.ids[r][p] != first[p] for r in rows)  # the longest one
        assert p < enc.lengths[rows].min()  # every row keeps its answer position
        head = tok(f"question : {USER_HISTORY[g]} . will they enjoy", add_special_tokens=False)["input_ids"]
        assert p >= len(head)  # the whole history is shared
    assert 0 < plan.shared_tokens(enc.lengths) < 1
    # groups too small or prefixes too short are scored whole
    assert (prefix_reuse.plan_prefixes(enc, list(range(len(enc)))).group == -1).all()
    assert (prefix_reuse.plan_prefixes(enc, list(users), min_prefix=10_000).group == -1).all()
    with pytest.raises(ValueError, match="keys for"):
        prefix_reuse.plan_prefixes(enc, list(users)[:-1])


def test_plan_prefixes_stops_before_slots_that_differ(tiny):
    """Equal placeholder ids do not make equal inputs: a slot whose vector may differ ends the prefix."""
    _, tok = tiny
    prompts, users, _ = _prompts(3, with_slots=True)
    enc = _encode(tok, prompts, with_slots=True)
    user_col = enc.slot_names.index("user_emb")
    private = prefix_reuse.plan_prefixes(enc, list(users))
    shared = prefix_reuse.plan_prefixes(enc, list(users), shared_slots=("user_emb",))
    for g in range(private.n_groups):
        rows = private.group == g
        assert private.prefix_len[g] <= enc.slot_pos[rows, user_col].min()
        assert shared.prefix_len[g] > enc.slot_pos[shared.group == g, user_col].max()
    with pytest.raises(ValueError, match="shared slots"):
        prefix_reuse.plan_prefixes(enc, list(users), shared_slots=("nope",))


# --- prefix reuse gives the full-prompt scores ------------------------------------------------------------
@pytest.mark.parametrize("which", ["tiny", "gpt2", "qwen2", "lora"])
def test_score_yesno_planned_equals_plain_path(request, which, answer_ids):
    model, tok = request.getfixturevalue(which)
    prompts, users, _ = _prompts(4)
    # one more user with a single row (scored whole) in the middle
    prompts.insert(5, ["question : a lone user liked heat . will they enjoy up ? answer :"])
    users = np.insert(users, 5, 99)
    enc = _encode(tok, prompts)
    plan = prefix_reuse.plan_prefixes(enc, list(users))
    assert plan.group[5] == -1 and (plan.group >= 0).sum() == len(enc) - 1
    want = _reference(model, enc, answer_ids, tok.pad_token_id)
    call = fast_scoring.YesNoCall(answer_ids, tok.pad_token_id)
    # tiny budgets: many prefix forwards and one-row suffix batches; large: all groups in one forward
    for max_prefix, max_kv in ((1, 1), (64, 80), (10_000, 10_000)):
        got = prefix_reuse.score_yesno_planned(
            model, enc, plan, call, max_prefix_tokens=max_prefix, max_kv_tokens=max_kv
        )
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


@pytest.mark.parametrize("which", ["tiny", "lora"])
def test_score_yesno_planned_with_slot_vectors(request, which, answer_ids):
    """CoLLM-style prompts: the user's vector is shared in the prefix, the item's spliced in each suffix."""
    model, tok = request.getfixturevalue(which)
    prompts, users, items = _prompts(3, with_slots=True)
    enc = _encode(tok, prompts, with_slots=True)
    vfn = _vector_fn(model, users, items)
    call = fast_scoring.YesNoCall(answer_ids, tok.pad_token_id, vector_fn=vfn)
    want = _reference(model, enc, answer_ids, tok.pad_token_id, vfn)
    for shared in ((), ("user_emb",)):
        plan = prefix_reuse.plan_prefixes(enc, list(users), shared_slots=shared)
        assert (plan.group >= 0).all()
        got = prefix_reuse.score_yesno_planned(model, enc, plan, call)
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
    # the item's slot before its title: equal token ids up to the title, different vectors
    prompts, users, items = _prompts(3, item_slot_first=True)
    enc = _encode(tok, prompts, with_slots=True)
    want = _reference(model, enc, answer_ids, tok.pad_token_id, vfn)
    right = prefix_reuse.plan_prefixes(enc, list(users), shared_slots=("user_emb",))
    got = prefix_reuse.score_yesno_planned(model, enc, right, call)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
    # a wrong promise (the item slot declared shared by rows of different items) shows: the check can fail
    wrong = prefix_reuse.plan_prefixes(enc, list(users), shared_slots=("user_emb", "item_emb"))
    assert (wrong.prefix_len > right.prefix_len).all()
    got = prefix_reuse.score_yesno_planned(model, enc, wrong, call)
    assert np.abs(got - want).max() > 1e-3


def _candidates(tok, user: int, titles: list[str]) -> tuple[np.ndarray, list[np.ndarray], EncodedPrompts]:
    prefix = np.asarray(
        [tok.cls_token_id]
        + tok(f"question : {USER_HISTORY[user]} . will they enjoy", add_special_tokens=False)["input_ids"]
    )
    suffixes = [np.asarray(tok(f"{t} ? answer :", add_special_tokens=False)["input_ids"]) for t in titles]
    full = EncodedPrompts(
        ids=[np.concatenate([prefix, s]) for s in suffixes],
        slot_names=(),
        slot_pos=np.zeros((len(suffixes), 0), dtype=np.int64),
    )
    return prefix, suffixes, full


@pytest.mark.parametrize("which", ["tiny", "gpt2", "lora"])
def test_score_yesno_candidates_edge_cases(request, which, answer_ids):
    model, tok = request.getfixturevalue(which)
    cases = {
        "one candidate": [TITLES[0]],
        "very different lengths": ["x", " , ".join(TITLES * 3), "up", TITLES[2]],
        "many": [TITLES[i % len(TITLES)] + f" {i}" for i in range(12)],
    }
    for name, titles in cases.items():
        prefix, suffixes, full = _candidates(tok, 1, titles)
        want = _reference(model, full, answer_ids, tok.pad_token_id)
        # a budget fitting one row per batch, and one far above the candidates (a single batch)
        for kv in (1, 100_000):
            got = prefix_reuse.score_yesno_candidates(
                model, prefix, suffixes, answer_ids, pad_id=tok.pad_token_id, max_kv_tokens=kv
            )
            np.testing.assert_allclose(got, want, atol=ATOL, rtol=0, err_msg=f"{name}, max_kv_tokens={kv}")
    prefix, _, _ = _candidates(tok, 0, [])
    assert prefix_reuse.score_yesno_candidates(model, prefix, [], answer_ids).shape == (0,)
    with pytest.raises(ValueError, match="at least one suffix token"):
        prefix_reuse.score_yesno_candidates(model, prefix, [np.asarray([], dtype=np.int64)], answer_ids)


def test_prefix_reuse_outside_supported_families_scores_whole(tiny, answer_ids):
    """A family without prefix support (Mistral: sliding-window attention) is scored whole, same scores."""
    from transformers import MistralConfig, MistralForCausalLM

    tok = tiny[1]
    config = MistralConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, pad_token_id=tok.pad_token_id, tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(4)
    model = frozen(MistralForCausalLM(config))
    assert not prefix_reuse.prefix_supported(model) and fast_scoring.fast_head_supported(model)
    prompts, users, _ = _prompts(2)
    enc = _encode(tok, prompts)
    plan = prefix_reuse.plan_prefixes(enc, list(users))
    call = fast_scoring.YesNoCall(answer_ids, tok.pad_token_id)
    got = prefix_reuse.score_yesno_planned(model, enc, plan, call)
    np.testing.assert_allclose(got, _reference(model, enc, answer_ids, tok.pad_token_id), atol=ATOL, rtol=0)


def test_prefix_cache_leaves_no_state_behind(tiny, answer_ids):
    """Scoring twice gives the same scores (no cache or view is mutated between calls)."""
    model, tok = tiny
    prefix, suffixes, _ = _candidates(tok, 2, TITLES)
    a = prefix_reuse.score_yesno_candidates(model, prefix, suffixes, answer_ids, pad_id=tok.pad_token_id)
    b = prefix_reuse.score_yesno_candidates(model, prefix, suffixes, answer_ids, pad_id=tok.pad_token_id)
    np.testing.assert_array_equal(a, b)
    inputs = ModelInputs(inputs_embeds=model.get_input_embeddings()(torch.as_tensor(prefix)[None]),
                         attention_mask=torch.ones((1, len(prefix)), dtype=torch.long))  # fmt: skip
    with torch.no_grad():
        assert fast_scoring.answer_logits_fast(model, inputs, answer_ids).shape == (1, 2)
