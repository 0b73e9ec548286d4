"""Slot injectors (one and N vectors per placeholder) and the Yes/No head over their inputs.

Correctness the kit promises every slot method (CoLLM, seed 003, ILM): vectors change the output only from the
slot position on; the same row scores the same under left and right padding, alone or in a padded batch; a
template without the method's placeholder is refused in one line.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchbed.errors import ConfigError
from benchbed.llm.backbone.loader import load_backbone
from benchbed.llm.injectors.base import plain_inputs
from benchbed.llm.injectors.prompts import collate, encode
from benchbed.llm.injectors.slots import MultiTokenSlots, SlotVectors, require_slots
from benchbed.llm.yesno.head import YesNoHead, answer_token_ids
from benchbed.prompts import Slot

PROMPTS = [
    ["a user liked the films", Slot("user_emb"), "and asks about", Slot("item_emb"), "answer"],
    ["short one", Slot("user_emb"), "x", Slot("item_emb"), "ok"],
    [
        "a much longer prompt with many more words before the user slot so that padding is wide",
        Slot("user_emb"),
        "then the item",
        Slot("item_emb"),
        "answer",
    ],
]
SLOTS = ("user_emb", "item_emb")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return load_backbone("tiny", device="cpu")


def _vectors(n: int, hidden: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, len(SLOTS), hidden, generator=g)


@torch.no_grad()
def test_slot_vectors_change_the_output_only_from_the_slot_on(tiny) -> None:
    enc = encode(tiny.tokenizer, PROMPTS[:1], SLOTS)
    batch = collate(enc, np.arange(1), tiny.tokenizer.pad_token_id)
    plain = tiny.model(**plain_inputs(tiny.model, batch).kwargs()).logits
    vec = _vectors(1, tiny.hidden_size)
    injected = tiny.model(**SlotVectors().inputs(tiny.model, batch, vectors=vec).kwargs()).logits
    first = int(batch.slot_pos[0].min())
    assert torch.equal(plain[:, :first], injected[:, :first])  # causal: nothing before the slot moves
    diff = (plain - injected).abs().amax(dim=-1)[0]
    assert (diff[first:] > 1e-4).all()  # the slot and everything after it see the vector
    # the embeddings at the slot positions are exactly the vectors; every other position the model's own
    embeds = SlotVectors().inputs(tiny.model, batch, vectors=vec).inputs_embeds
    own = tiny.model.get_input_embeddings()(batch.input_ids)
    pos = batch.slot_pos[0]
    assert torch.equal(embeds[0, pos], vec[0])
    keep = torch.ones(embeds.shape[1], dtype=torch.bool)
    keep[pos] = False
    assert torch.equal(embeds[0, keep], own[0, keep])


@torch.no_grad()
def test_slot_scores_equal_under_left_and_right_padding_and_alone(tiny) -> None:
    enc = encode(tiny.tokenizer, PROMPTS, SLOTS)
    head = YesNoHead(answer_token_ids(tiny.tokenizer), "yes-no")
    inj = SlotVectors()
    vec = _vectors(len(PROMPTS), tiny.hidden_size)
    pad = tiny.tokenizer.pad_token_id
    rows = np.arange(len(PROMPTS))
    out = {}
    for side in ("left", "right"):
        batch = collate(enc, rows, pad, side=side)
        out[side] = head.scores(tiny.model, inj.inputs(tiny.model, batch, vectors=vec), batch)
    alone = torch.stack(
        [
            head.scores(tiny.model, inj.inputs(tiny.model, b, vectors=vec[r : r + 1]), b)[0]
            for r in rows
            for b in [collate(enc, np.asarray([r]), pad)]
        ]
    )
    torch.testing.assert_close(out["left"], out["right"], atol=1e-5, rtol=0)
    torch.testing.assert_close(out["left"], alone, atol=1e-5, rtol=0)
    # the vectors matter: the same rows without them score differently
    batch = collate(enc, rows, pad)
    bare = head.scores(tiny.model, inj.inputs(tiny.model, batch), batch)
    assert (bare - out["left"]).abs().max() > 1e-4


@torch.no_grad()
def test_multi_token_slots_fill_n_positions_and_match_under_padding(tiny) -> None:
    n = 3
    enc = encode(tiny.tokenizer, PROMPTS, SLOTS, slot_width=n)
    one = encode(tiny.tokenizer, PROMPTS, SLOTS)
    assert (enc.lengths - one.lengths == (n - 1) * len(SLOTS)).all()
    g = torch.Generator().manual_seed(2)
    vec = torch.randn(len(PROMPTS), len(SLOTS), n, tiny.hidden_size, generator=g)
    inj = MultiTokenSlots(n)
    pad = tiny.tokenizer.pad_token_id
    rows = np.arange(len(PROMPTS))
    head = YesNoHead(answer_token_ids(tiny.tokenizer))
    scores = {}
    for side in ("left", "right"):
        batch = collate(enc, rows, pad, side=side)
        inputs = inj.inputs(tiny.model, batch, vectors=vec)
        for r in rows:
            for s in range(len(SLOTS)):
                p0 = int(batch.slot_pos[r, s])
                assert torch.equal(inputs.inputs_embeds[r, p0 : p0 + n], vec[r, s])
        scores[side] = head.scores(tiny.model, inputs, batch)
    torch.testing.assert_close(scores["left"], scores["right"], atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match=r"vectors must be \(batch, slots, 3, hidden\)"):
        inj.inputs(tiny.model, collate(enc, rows, pad), vectors=vec[:, :, :2])


def test_a_template_without_the_methods_placeholder_is_refused_in_one_line(tiny) -> None:
    enc = encode(tiny.tokenizer, [["no slots at all"]], SLOTS)
    with pytest.raises(ConfigError, match=r"method 'collm': 1 of 1 prompt\(s\) of template cf/seen lack"):
        require_slots(enc, SLOTS, method="collm", template="cf/seen")
    enc2 = encode(tiny.tokenizer, [["x", Slot("user_emb")]], ("user_emb",))
    with pytest.raises(ConfigError, match=r"has no placeholder \{item_emb\}"):
        require_slots(enc2, SLOTS, method="collm", template="cf/seen")
    require_slots(encode(tiny.tokenizer, PROMPTS, SLOTS), SLOTS, method="collm", template="cf/seen")


def test_an_injector_refuses_a_backbone_family_it_does_not_support(tiny) -> None:
    class LlamaOnly(SlotVectors):
        families = frozenset({"gpt2"})

    with pytest.raises(ConfigError, match=r"method 'm': the slots injector does not support backbone 'tiny'"):
        LlamaOnly().check(tiny.model, "m", "tiny")
