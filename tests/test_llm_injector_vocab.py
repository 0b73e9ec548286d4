"""The vocabulary-extension injector (CLLM4Rec): frozen base rows, type-restricted heads, padding, errors.

Real tiny models only: the ``tiny`` Llama preset (tied head, and an untied variant), a GPT-2 and a BERT built
from small configs, all with the bundled WordPiece tokenizer so the same texts serve every family.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, OPTConfig, OPTForCausalLM

from benchbed.errors import ConfigError
from benchbed.llm.backbone.loader import build_tiny, load_tokenizer, minilm_dir
from benchbed.llm.injectors.prompts import collate
from benchbed.llm.injectors.vocab import IGNORE_INDEX, VocabExtension, final_hidden
from benchbed.llm.lora import freeze

TYPES = {"user": 6, "item": 9}
DOCS = [
    "<user_3> has interacted with <item_5> <item_8> <item_0>",
    "<user_0> writes the following review for <item_2>: great colours, fast shipping",
    "<user_5> has interacted with <item_1>",
    "plain words with no new token at all, a little longer than the others here",
]


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(minilm_dir())


def make(family: str, tok) -> torch.nn.Module:
    """A tiny model of ``family`` on the bundled tokenizer's vocabulary, dropout off, eval mode."""
    torch.manual_seed(0)
    if family == "llama":
        model, _ = build_tiny()
    elif family == "llama-untied":
        model, _ = build_tiny(tie_word_embeddings=False)
    elif family == "gpt2":
        cfg = GPT2Config(
            n_layer=2,
            n_embd=32,
            n_head=2,
            n_positions=128,
            vocab_size=len(tok),
            bos_token_id=0,
            eos_token_id=0,
        )
        cfg.resid_pdrop = cfg.embd_pdrop = cfg.attn_pdrop = 0.0
        model = GPT2LMHeadModel(cfg)
    elif family == "bert":
        cfg = BertConfig(
            vocab_size=len(tok),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
        )
        cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.0
        model = BertModel(cfg)
    else:  # pragma: no cover
        raise ValueError(family)
    return model.eval()


def extend(model, tok, family: str, **kwargs) -> VocabExtension:
    return VocabExtension.for_model(model, TYPES, tokenizer=tok, method="cllm4rec", backbone=family, **kwargs)


def batch_of(ext, tok, texts, side="right", rows=None):
    enc = ext.encode(tok, texts)
    rows = np.arange(len(texts)) if rows is None else np.asarray(rows)
    return collate(enc, rows, tok.pad_token_id, side=side)


# -- 1. training moves only the new rows ---------------------------------------------------------------


@pytest.mark.parametrize("family", ["llama", "gpt2", "llama-untied"])
def test_lm_training_changes_new_rows_only(tok, family: str) -> None:
    model = make(family, tok)
    ext = extend(model, tok, family)
    assert ext.head == ("separate" if family == "llama-untied" else "tied")
    freeze(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    new_before = {k: v.detach().clone() for k, v in ext.state_dict().items()}
    params = [p for p in [*model.parameters(), *ext.parameters()] if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1)
    batch = batch_of(ext, tok, DOCS, side="right")
    targets = batch.input_ids[:, 1:].masked_fill(batch.attention_mask[:, 1:] == 0, IGNORE_INDEX)
    for _ in range(3):
        hidden = final_hidden(model, ext.inputs(model, batch))
        logits = ext.extended_logits(model, hidden)[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, ext.vocab_size), targets.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), f"backbone parameter {name} changed"
        assert p.grad is None, name
    for key, value in ext.state_dict().items():
        assert not torch.equal(value, new_before[key]), f"new parameter {key} did not train"
    # the base rows the batch used still give the backbone's own embeddings, bit for bit
    emb = ext.embed(model, batch.input_ids)
    base = batch.input_ids < ext.base_vocab
    assert torch.equal(emb[base], model.get_input_embeddings()(batch.input_ids[base]))


def test_tables_are_independent(tok) -> None:
    """Training one table (CLLM4Rec's L-step) leaves the other (content) table untouched."""
    model = make("llama", tok)
    ext = extend(model, tok, "tiny", tables=("collab", "content"))
    freeze(model)
    content = [p.detach().clone() for p in ext.table_parameters("content")]
    opt = torch.optim.Adam(ext.table_parameters("collab"), lr=1e-2)
    batch = batch_of(ext, tok, DOCS[:3])
    loss = final_hidden(model, ext.inputs(model, batch, table="collab")).pow(2).mean()
    loss.backward()
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(content, ext.table_parameters("content"), strict=True))
    assert all(p.grad is None for p in ext.table_parameters("content"))
    collab = ext.embed(model, batch.input_ids, "collab")
    other = ext.embed(model, batch.input_ids, "content")
    new = batch.input_ids >= ext.base_vocab
    assert torch.equal(collab[~new], other[~new])  # base positions: the MR term sees 0 there
    assert not torch.allclose(collab[new], other[new])


# -- 2. no new token: exactly the plain model ----------------------------------------------------------


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_batch_without_new_tokens_is_the_plain_model(tok, family: str, side: str) -> None:
    model = make(family, tok)
    ext = extend(model, tok, family)
    texts = ["a short one", "a somewhat longer sentence of plain words", "words"]
    batch = batch_of(ext, tok, texts, side=side)
    assert int(batch.input_ids.max()) < ext.base_vocab
    with torch.no_grad():
        ours = model(**ext.inputs(model, batch).kwargs())
        plain = model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids
        )
    key = "last_hidden_state" if family == "bert" else "logits"
    assert torch.equal(ours[key], plain[key])


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_new_token_changes_a_decoder_only_from_its_position(tok, family: str) -> None:
    model = make(family, tok)
    ext = extend(model, tok, family)
    batch = batch_of(ext, tok, ["the buyer of <item_4> also liked it"])
    pos = int((batch.input_ids[0] >= ext.base_vocab).nonzero()[0, 0])
    swapped = batch.input_ids.clone()
    swapped[0, pos] = tok.convert_tokens_to_ids("car")
    with torch.no_grad():
        ours = model(**ext.inputs(model, batch).kwargs()).logits
        plain = model(input_ids=swapped, attention_mask=batch.attention_mask).logits
    torch.testing.assert_close(ours[0, :pos], plain[0, :pos], rtol=0, atol=1e-6)
    assert not torch.allclose(ours[0, pos:], plain[0, pos:], atol=1e-3)


# -- 3. heads restricted to one token type -------------------------------------------------------------


def test_restricted_head_shapes_and_base_head(tok) -> None:
    model = make("llama", tok)
    ext = extend(model, tok, "tiny", bias=True)
    batch = batch_of(ext, tok, DOCS)
    b, t = batch.input_ids.shape
    with torch.no_grad():
        inputs = ext.inputs(model, batch)
        hidden = final_hidden(model, inputs)
        items = ext.type_logits(hidden, "item")
        users = ext.type_logits(hidden, "user")
        base = ext.base_logits(model, hidden)
        full = ext.extended_logits(model, hidden)
        logits = model(**inputs.kwargs()).logits
    assert items.shape == (b, t, TYPES["item"]) and users.shape == (b, t, TYPES["user"])
    assert base.shape == (b, t, len(tok)) == logits.shape
    assert torch.equal(base, logits)  # the backbone's own head, over the base vocabulary only
    assert full.shape == (b, t, ext.vocab_size)
    assert torch.equal(full[..., ext.offsets["item"] :], items)
    # tied head: item logits are hidden . item rows
    torch.testing.assert_close(items, hidden @ ext.type_rows("item").T)
    local = ext.local(batch.input_ids, "item")
    assert set(local[batch.input_ids >= ext.offsets["item"]].tolist()) == {5, 8, 0, 2, 1}
    assert bool((local[batch.input_ids < ext.offsets["item"]] == IGNORE_INDEX).all())
    with pytest.raises(ValueError, match="no LM head"):
        bert = make("bert", tok)
        extend(bert, tok, "bert").base_logits(bert, hidden[..., :32])


def _train_item_rows(model, tok, targets: list[int], steps: int = 120) -> tuple[VocabExtension, torch.Tensor]:
    """Train only the item rows so that the next token after "<user_u> has interacted with" is item
    ``targets[u]``; return the extension and the item-head logits at the prompt's last position."""
    torch.manual_seed(1)
    ext = extend(model, tok, "tiny")
    ext.type_rows("user").requires_grad_(False)
    users_before = ext.type_rows("user").detach().clone()
    prompts = [f"<user_{u}> has interacted with" for u in range(len(targets))]
    batch = batch_of(ext, tok, prompts, side="left")
    target = torch.tensor(targets)
    opt = torch.optim.Adam([ext.type_rows("item")], lr=0.05)
    for _ in range(steps):
        last = final_hidden(model, ext.inputs(model, batch))[:, -1]
        loss = torch.nn.functional.cross_entropy(ext.type_logits(last, "item"), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.equal(ext.type_rows("user"), users_before)
    with torch.no_grad():
        return ext, ext.type_logits(final_hidden(model, ext.inputs(model, batch))[:, -1], "item")


def test_planted_next_item_is_ranked_first_and_shuffled_control_is_not(tok) -> None:
    model = make("llama", tok)
    freeze(model)
    planted = [4, 7, 0, 2, 8, 5]  # item k_u for user u
    _, logits = _train_item_rows(model, tok, planted)
    assert logits.argmax(dim=1).tolist() == planted
    # negative control: the same training on targets shuffled across users (a derangement)
    shuffled = planted[1:] + planted[:1]
    _, control = _train_item_rows(model, tok, shuffled)
    assert control.argmax(dim=1).tolist() == shuffled  # it learned what it was shown ...
    hits = sum(int(k) == p for k, p in zip(control.argmax(dim=1).tolist(), planted, strict=True))
    assert hits == 0  # ... and so ranks the planted item first for no user


# -- 4. padding side and batch company -----------------------------------------------------------------


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert"])
def test_same_row_under_left_right_padding_and_alone(tok, family: str) -> None:
    model = make(family, tok)
    ext = extend(model, tok, family)
    outs = {}
    with torch.no_grad():
        for side in ("left", "right"):
            batch = batch_of(ext, tok, DOCS, side=side)
            hidden = final_hidden(model, ext.inputs(model, batch))
            outs[side] = [hidden[b, batch.attention_mask[b] == 1] for b in range(len(DOCS))]
        for r in range(len(DOCS)):
            alone = batch_of(ext, tok, DOCS, rows=[r])
            hidden = final_hidden(model, ext.inputs(model, alone))[0]
            for side in ("left", "right"):
                torch.testing.assert_close(outs[side][r], hidden, rtol=0, atol=1e-5)
                torch.testing.assert_close(
                    ext.type_logits(outs[side][r], "item"), ext.type_logits(hidden, "item"), rtol=0, atol=1e-5
                )


# -- tokenization --------------------------------------------------------------------------------------


def test_encode_inserts_new_ids_and_tokenizes_the_rest_normally(tok) -> None:
    model = make("llama", tok)
    ext = extend(model, tok, "tiny")
    text = "<user_3> has interacted with <item_5> <item_8>"
    assert ext.pieces(text) == [ext.token_id("user", 3), " has interacted with", 30522 + 6 + 5, 30522 + 6 + 8]
    assert ext.pieces("a<item_0>b ") == ["a", ext.token_id("item", 0), "b"]
    plain = tok(" has interacted with", add_special_tokens=False)["input_ids"]
    enc = ext.encode(tok, [text, "no new tokens here"])
    assert enc.ids[0].tolist() == [tok.cls_token_id, 30525, *plain, 30533, 30536]
    words = tok("no new tokens here", add_special_tokens=False)["input_ids"]
    assert enc.ids[1].tolist() == [tok.cls_token_id, *words]
    assert ext.encode(tok, [text], add_special_tokens=False).ids[0][0] == 30525
    assert [ext.encode(tok, [t]).ids[0].tolist() for t in DOCS] == [
        x.tolist() for x in ext.encode(tok, DOCS).ids
    ]
    assert ext.ids("item", [0, 8]).tolist() == [30528, 30536]
    assert ext.token("item", 4) == "<item_4>" and len(tok) == 30522  # the tokenizer was not changed
    authors = VocabExtension(10, 4, TYPES, pattern="{type}_{i}")  # the authors' spelling, user_i
    assert authors.pieces("user_2 has interacted with item_3") == [10 + 2, " has interacted with", 10 + 6 + 3]


# -- 5. bad input --------------------------------------------------------------------------------------


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_token_clash_is_a_one_line_config_error(tok) -> None:
    model = make("llama", tok)
    with pytest.raises(ConfigError) as exc:  # the WordPiece vocabulary has [unused0] .. [unused993]
        VocabExtension.for_model(
            model, {"unused": 3}, tokenizer=tok, pattern="[{type}{i}]", method="cllm4rec", backbone="tiny"
        )
    msg = _one_line(exc)
    assert "'cllm4rec'" in msg and "'tiny'" in msg and "'[unused0]'" in msg
    with pytest.raises(ConfigError) as exc:
        VocabExtension.for_model(model, [("item", 3), ("item", 4)], method="cllm4rec", backbone="tiny")
    msg = _one_line(exc)
    assert "'cllm4rec'" in msg and "'tiny'" in msg and "'item'" in msg and "twice" in msg
    with pytest.raises(ConfigError, match="both write 'a10'"):
        VocabExtension(10, 4, [("a", 11), ("a1", 1)], pattern="{type}{i}")
    with pytest.raises(ConfigError, match="table 'x' is declared twice"):
        VocabExtension(10, 4, TYPES, tables=("x", "x"))
    with pytest.raises(ConfigError, match="must contain"):
        VocabExtension(10, 4, TYPES, pattern="<{type}>")


def test_unsupported_or_mismatched_backbone_is_refused(tok) -> None:
    opt = OPTForCausalLM(
        OPTConfig(
            vocab_size=100,
            hidden_size=16,
            ffn_dim=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            word_embed_proj_dim=16,
            max_position_embeddings=32,
        )
    )
    with pytest.raises(ConfigError) as exc:
        VocabExtension.for_model(opt, TYPES, method="cllm4rec", backbone="tiny-opt")
    assert "'tiny-opt'" in _one_line(exc) and "expected one of" in str(exc.value)
    small = make("gpt2", tok)
    ext = VocabExtension.for_model(small, TYPES)
    with pytest.raises(ConfigError) as exc:
        ext.check(make("llama", tok), "cllm4rec", "tiny")
    assert "expected" in _one_line(exc)
    tiny_gpt2 = GPT2LMHeadModel(
        GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=300, bos_token_id=0, eos_token_id=0)
    )
    with pytest.raises(ConfigError, match="tokenizer has 30522 tokens"):
        VocabExtension.for_model(tiny_gpt2, TYPES, tokenizer=tok, method="cllm4rec", backbone="gpt2-300")


def test_ids_out_of_range_are_clear_errors(tok) -> None:
    model = make("llama", tok)
    ext = extend(model, tok, "tiny")
    for bad in (ext.vocab_size, -1):
        ids = torch.tensor([[101, 2000, bad]])
        with pytest.raises(ValueError, match=rf"token id {bad} out of range.*0\.\.{ext.vocab_size - 1}"):
            ext.embed(model, ids)
    with pytest.raises(ValueError, match=r"'<item_9>' in text is out of range: type 'item' has 9 tokens"):
        ext.encode(tok, ["<user_1> has interacted with <item_9>"])
    with pytest.raises(ValueError, match="expected '<item_5>'"):
        ext.pieces("<item_05>")
    with pytest.raises(ValueError, match="out of range"):
        ext.token_id("user", 6)
    with pytest.raises(ValueError, match="unknown token type 'movie'"):
        ext.type_logits(torch.zeros(1, 64), "movie")
