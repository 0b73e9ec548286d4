"""Layer-prefix injector (kind (c) of issue 9): prefix hidden states through each layer's own K/V projections.

Real tiny models (the ``tiny`` Llama with grouped-query heads, GPT-2 and BERT from small configs, the real
MiniLM encoder), no mocks. Layer 0 is recomputed by hand (own RoPE, own masked softmax) so the prefix is
known to enter through that layer's K/V, at the positions the docstring promises.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchbed.errors import ConfigError
from benchbed.llm.backbone.loader import build_tiny, load_backbone
from benchbed.llm.injectors.base import ModelInputs, plain_inputs
from benchbed.llm.injectors.prefix import LayerPrefix, PrefixEncoder, prefix_layers
from benchbed.llm.injectors.prompts import Batch, EncodedPrompts, collate

ATOL = 1e-5
LENGTHS = (4, 9, 6)  # three rows of different length, so every batch pads on the chosen side


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    llama, _ = build_tiny(num_key_value_heads=2)  # 4 query heads over 2 KV heads: grouped-query
    gpt2 = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=120,
            n_positions=64,
            n_embd=32,
            n_layer=2,
            n_head=2,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    )
    bert = BertModel(
        BertConfig(
            vocab_size=120,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=64,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
    )
    minilm = load_backbone("minilm", device="cpu").model
    out = {"llama": llama, "gpt2": gpt2, "bert": bert, "minilm": minilm}
    for m in out.values():
        m.eval()
        m.requires_grad_(False)
    return out


FAMILIES = ("llama", "gpt2", "bert", "minilm")


def is_decoder(name: str) -> bool:
    return name in ("llama", "gpt2")


def prompts(seed: int = 0, vocab: int = 120, lengths: tuple[int, ...] = LENGTHS) -> EncodedPrompts:
    rng = np.random.default_rng(seed)
    ids = [rng.integers(5, vocab, size=n).astype(np.int64) for n in lengths]
    return EncodedPrompts(ids=ids, slot_names=(), slot_pos=np.zeros((len(ids), 0), dtype=np.int64))


def batch_of(enc: EncodedPrompts, rows, side: str) -> Batch:
    return collate(enc, np.asarray(rows), pad_id=0, side=side)


def random_prefix(model, n_rows: int, p: int = 3, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    return torch.randn(n_rows, p, cfg.num_hidden_layers, cfg.hidden_size, generator=g)


def output(model, inputs: ModelInputs) -> torch.Tensor:
    """Per text position: logits (decoders) or last hidden state (encoders)."""
    out = model(**inputs.kwargs())
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def real(out: torch.Tensor, batch: Batch, b: int) -> torch.Tensor:
    """Row ``b``'s outputs at its real tokens, in order."""
    return out[b][batch.attention_mask[b].bool()]


# 1 + 2: a hidden prefix leaves the plain model's output, a visible one changes it -------------------------


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("name", FAMILIES)
def test_hidden_prefix_gives_plain_output_and_visible_prefix_changes_it(models, name, side):
    model = models[name]
    enc = prompts()
    batch = batch_of(enc, [0, 1, 2], side)
    prefix = random_prefix(model, len(batch))
    inj = LayerPrefix()
    with torch.no_grad():
        plain = output(model, plain_inputs(model, batch))
        hidden = output(model, inj.inputs(model, batch, prefix=prefix, prefix_mask=torch.zeros(3, 3)))
        shown = output(model, inj.inputs(model, batch, prefix=prefix))
    for b in range(len(batch)):
        torch.testing.assert_close(real(hidden, batch, b), real(plain, batch, b), atol=ATOL, rtol=0)
        # every row, every real position: the prefix is seen by all text queries
        diff = (real(shown, batch, b) - real(plain, batch, b)).abs().amax(dim=-1)
        assert bool((diff > 1e-3).all()), (name, b, diff)


def test_hidden_prefix_also_holds_with_eager_attention():
    """The eager path adds a finite minimum instead of -inf: still no leak from hidden prefix columns."""
    model, _ = build_tiny(num_key_value_heads=2, attn_implementation="eager")
    model.eval()
    batch = batch_of(prompts(vocab=1000), [0, 1, 2], "left")
    prefix = random_prefix(model, 3)
    with torch.no_grad():
        plain = output(model, plain_inputs(model, batch))
        hidden = output(
            model, LayerPrefix().inputs(model, batch, prefix=prefix, prefix_mask=torch.zeros(3, 3))
        )
    assert model.config._attn_implementation == "eager"
    for b in range(3):
        torch.testing.assert_close(real(hidden, batch, b), real(plain, batch, b), atol=ATOL, rtol=0)


def test_partly_hidden_prefix_equals_the_visible_part_alone_without_positions(models):
    """GPT-2 / BERT give the prefix no position: hiding its last slot = passing only the first two."""
    for name in ("gpt2", "bert"):
        model = models[name]
        batch = batch_of(prompts(), [0, 1, 2], "right")
        prefix = random_prefix(model, 3)
        mask = torch.tensor([[1, 1, 0]] * 3)
        with torch.no_grad():
            masked = output(model, LayerPrefix().inputs(model, batch, prefix=prefix, prefix_mask=mask))
            short = output(model, LayerPrefix().inputs(model, batch, prefix=prefix[:, :2]))
        for b in range(3):
            torch.testing.assert_close(real(masked, batch, b), real(short, batch, b), atol=ATOL, rtol=0)


# 3: same row, same output under left/right padding and alone vs in a batch ---------------------------------


@pytest.mark.parametrize("name", FAMILIES)
def test_padding_side_and_batching_do_not_change_a_row(models, name):
    model = models[name]
    enc = prompts(seed=3)
    prefix = random_prefix(model, 3, seed=4)  # a different prefix per row
    inj = LayerPrefix()

    def row_outputs(rows: list[int], side: str) -> list[torch.Tensor]:
        batch = batch_of(enc, rows, side)
        with torch.no_grad():
            out = output(model, inj.inputs(model, batch, prefix=prefix[rows]))
        if is_decoder(name):  # the scored position: each row's last real token
            return [out[b, batch.last_pos[b]] for b in range(len(rows))]
        # encoders: every real token, and the mean-pooled vector the two-tower head uses
        return [
            torch.cat([real(out, batch, b).flatten(), real(out, batch, b).mean(0)]) for b in range(len(rows))
        ]

    left, right = row_outputs([0, 1, 2], "left"), row_outputs([0, 1, 2], "right")
    for b in range(3):
        torch.testing.assert_close(left[b], right[b], atol=ATOL, rtol=0)
        for side in ("left", "right"):
            alone = row_outputs([b], side)[0]
            torch.testing.assert_close(alone, left[b], atol=ATOL, rtol=0)
    # row 0 (shortest) next to the longest row only, in the other order
    pair = row_outputs([1, 0], "left")
    torch.testing.assert_close(pair[1], left[0], atol=ATOL, rtol=0)


# 4: gradients reach the prefix producers only ----------------------------------------------------------


def score(last: torch.Tensor) -> torch.Tensor:
    """A fixed random readout: a plain sum (or sum of squares) of a LayerNorm output is constant in BERT."""
    w = torch.randn(last.shape[-1], generator=torch.Generator().manual_seed(7))
    return (last @ w).sum()


@pytest.mark.parametrize("name", ["llama", "gpt2", "bert"])
def test_gradient_reaches_the_prefix_and_the_backbone_stays_frozen(models, name):
    model = models[name]
    cfg = model.config
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {k: p.requires_grad for k, p in model.named_parameters()}
    torch.manual_seed(0)
    encoder = PrefixEncoder(cfg.num_hidden_layers, cfg.hidden_size, n_context=2, id_dim=8)
    ids = torch.randn(3, 8)
    batch = batch_of(prompts(), [0, 1, 2], "left")
    model.train()  # dropout is 0 in these configs; train mode must not change the path
    try:
        inputs = LayerPrefix().inputs(model, batch, prefix=encoder(ids))
        out = output(model, inputs)
        score(out[torch.arange(3), batch.last_pos]).backward()
    finally:
        model.eval()
    for n, p in encoder.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, n
    assert all(p.grad is None for p in model.parameters())
    assert flags == {k: p.requires_grad for k, p in model.named_parameters()}
    torch.optim.AdamW(encoder.parameters(), lr=1e-2).step()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("name", ["llama", "gpt2", "bert"])
def test_a_hidden_row_gets_zero_gradient_and_no_nan_under_left_padding(models, name):
    """Row 1 hides its whole prefix: its prefix gradient is exactly 0, the others' is not, nothing is NaN."""
    model = models[name]
    batch = batch_of(prompts(), [0, 1, 2], "left")
    prefix = random_prefix(model, 3).requires_grad_(True)
    mask = torch.tensor([[1, 1, 1], [0, 0, 0], [1, 0, 1]])
    out = output(model, LayerPrefix().inputs(model, batch, prefix=prefix, prefix_mask=mask))
    score(out[torch.arange(3), batch.last_pos]).backward()
    g = prefix.grad
    assert g is not None and torch.isfinite(g).all()
    assert torch.equal(g[1], torch.zeros_like(g[1]))
    assert torch.equal(g[2, 1], torch.zeros_like(g[2, 1]))  # the hidden slot of row 2
    assert g[0].abs().sum() > 0 and g[2, 0].abs().sum() > 0 and g[2, 2].abs().sum() > 0


# 5: layer 0 by hand -----------------------------------------------------------------------------------


def masked_attention(q, k, v, allowed):
    """q (B, nh, T, hd), k/v (B, nh, S, hd), allowed (B, T, S) bool -> (B, T, nh*hd)."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~allowed[:, None], float("-inf"))
    ctx = scores.softmax(-1) @ v
    return ctx.transpose(1, 2).flatten(2)


def heads(x, n):
    b, t, _ = x.shape
    return x.view(b, t, n, -1).transpose(1, 2)


def rope(x, pos, theta):
    """Textbook RoPE (rotate-half form) at integer positions ``pos`` (B, T); x (B, n, T, hd)."""
    hd = x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = pos[:, None, :, None].double() * inv
    cos, sin = torch.cat([ang, ang], -1).cos().float(), torch.cat([ang, ang], -1).sin().float()
    x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
    return x * cos + torch.cat([-x2, x1], -1) * sin


@pytest.mark.parametrize("side", ["left", "right"])
def test_llama_layer0_equals_hand_attention_over_prefix_keys_values(models, side):
    model = models["llama"]
    cfg = model.config
    nh, nkv, P = cfg.num_attention_heads, cfg.num_key_value_heads, 3
    batch = batch_of(prompts(vocab=1000), [0, 1, 2], side)
    prefix = random_prefix(model, 3, p=P)
    pmask = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 1]])
    with torch.no_grad():
        inputs = LayerPrefix().inputs(model, batch, prefix=prefix, prefix_mask=pmask)
        got = model(**inputs.kwargs(), output_hidden_states=True).hidden_states[1]

        layer = model.model.layers[0]
        at = layer.self_attn
        h = model.model.embed_tokens(batch.input_ids)
        x, xp = layer.input_layernorm(h), layer.input_layernorm(prefix[:, :, 0])
        theta = cfg.rope_parameters["rope_theta"]
        text_pos = batch.position_ids + P  # documented: text shifted by P, prefix at 0..P-1
        pre_pos = torch.arange(P).expand(3, -1)
        q = rope(heads(x @ at.q_proj.weight.T, nh), text_pos, theta)
        k = torch.cat(
            [
                rope(heads(xp @ at.k_proj.weight.T, nkv), pre_pos, theta),
                rope(heads(x @ at.k_proj.weight.T, nkv), text_pos, theta),
            ],
            dim=2,
        )
        v = torch.cat([heads(xp @ at.v_proj.weight.T, nkv), heads(x @ at.v_proj.weight.T, nkv)], dim=2)
        k, v = k.repeat_interleave(nh // nkv, dim=1), v.repeat_interleave(nh // nkv, dim=1)
        T = h.shape[1]
        causal = torch.ones(T, T).tril().bool()
        allowed = torch.cat(
            [
                pmask.bool()[:, None, :].expand(-1, T, -1),
                causal[None] & batch.attention_mask.bool()[:, None, :],
            ],
            dim=2,
        )
        h1 = h + masked_attention(q, k, v, allowed) @ at.o_proj.weight.T
        want = h1 + layer.mlp(layer.post_attention_layernorm(h1))
    for b in range(3):
        torch.testing.assert_close(real(got, batch, b), real(want, batch, b), atol=ATOL, rtol=0)


def test_bert_layer0_equals_hand_attention_over_prefix_keys_values(models):
    model = models["bert"]
    cfg = model.config
    nh, P = cfg.num_attention_heads, 2
    batch = batch_of(prompts(), [0, 1, 2], "right")
    prefix = random_prefix(model, 3, p=P)
    pmask = torch.tensor([[1, 1], [0, 1], [1, 0]])
    with torch.no_grad():
        inputs = LayerPrefix().inputs(model, batch, prefix=prefix, prefix_mask=pmask)
        got = model(**inputs.kwargs(), output_hidden_states=True).hidden_states[1]

        layer = model.encoder.layer[0]
        sa = layer.attention.self
        e = model.embeddings(input_ids=batch.input_ids, position_ids=batch.position_ids)
        d = prefix[:, :, 0]

        def lin(m, t):
            return t @ m.weight.T + m.bias

        q = heads(lin(sa.query, e), nh)
        k = torch.cat([heads(lin(sa.key, d), nh), heads(lin(sa.key, e), nh)], dim=2)
        v = torch.cat([heads(lin(sa.value, d), nh), heads(lin(sa.value, e), nh)], dim=2)
        T = e.shape[1]
        allowed = torch.cat([pmask, batch.attention_mask], dim=1).bool()[:, None, :].expand(-1, T, -1)
        ctx = masked_attention(q, k, v, allowed)
        a = layer.attention.output.LayerNorm(lin(layer.attention.output.dense, ctx) + e)
        want = layer.output.LayerNorm(lin(layer.output.dense, layer.intermediate(a)) + a)
    for b in range(3):
        torch.testing.assert_close(real(got, batch, b), real(want, batch, b), atol=ATOL, rtol=0)


def test_gpt2_layer0_equals_hand_attention_and_text_keeps_positions_from_zero(models):
    model = models["gpt2"]
    cfg = model.config
    nh, H, P = cfg.n_head, cfg.n_embd, 2
    batch = batch_of(prompts(), [0, 1, 2], "left")
    prefix = random_prefix(model, 3, p=P)
    with torch.no_grad():
        inputs = LayerPrefix().inputs(model, batch, prefix=prefix)
        got = model(**inputs.kwargs(), output_hidden_states=True).hidden_states[1]

        tr = model.transformer
        block = tr.h[0]
        h = tr.wte(batch.input_ids) + tr.wpe(batch.position_ids)  # absolute positions 0.. over real tokens
        x, xp = block.ln_1(h), block.ln_1(prefix[:, :, 0])
        w, bias = block.attn.c_attn.weight, block.attn.c_attn.bias  # Conv1D: x @ w + b, columns q | k | v
        qkv, pkv = x @ w + bias, xp @ w + bias
        q = heads(qkv[..., :H], nh)
        k = torch.cat([heads(pkv[..., H : 2 * H], nh), heads(qkv[..., H : 2 * H], nh)], dim=2)
        v = torch.cat([heads(pkv[..., 2 * H :], nh), heads(qkv[..., 2 * H :], nh)], dim=2)
        T = h.shape[1]
        causal = torch.ones(T, T).tril().bool()
        allowed = torch.cat(
            [torch.ones(3, T, P, dtype=torch.bool), causal[None] & batch.attention_mask.bool()[:, None, :]],
            dim=2,
        )
        ctx = masked_attention(q, k, v, allowed)
        h1 = h + ctx @ block.attn.c_proj.weight + block.attn.c_proj.bias
        want = h1 + block.mlp(block.ln_2(h1))
    for b in range(3):
        torch.testing.assert_close(real(got, batch, b), real(want, batch, b), atol=ATOL, rtol=0)


# the contract around the forward ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["llama", "gpt2", "bert"])
def test_returned_inputs_extend_mask_and_shift_positions_only_for_rope(models, name):
    model = models[name]
    batch = batch_of(prompts(), [0, 1, 2], "left")
    prefix = random_prefix(model, 3, p=4)
    inputs = LayerPrefix().inputs(model, batch, prefix=prefix, prefix_mask=torch.tensor([[1, 1, 0, 1]] * 3))
    assert inputs.text_offset == 4
    assert torch.equal(inputs.attention_mask[:, :4], torch.tensor([[1, 1, 0, 1]] * 3))
    assert torch.equal(inputs.attention_mask[:, 4:], batch.attention_mask)
    assert inputs.position_ids is not None
    shift = 4 if name == "llama" else 0
    assert torch.equal(inputs.position_ids, batch.position_ids + shift)
    assert inputs.past_key_values.get_seq_length() == 4
    assert inputs.inputs_embeds.shape[:2] == batch.input_ids.shape


def test_list_and_tensor_prefix_agree_and_each_call_gets_a_fresh_cache(models):
    model = models["llama"]
    batch = batch_of(prompts(vocab=1000), [0, 1, 2], "right")
    prefix = random_prefix(model, 3)
    inj = LayerPrefix()
    with torch.no_grad():
        a = output(model, inj.inputs(model, batch, prefix=prefix))
        b = output(model, inj.inputs(model, batch, prefix=list(prefix.unbind(2))))
        c = output(model, inj.inputs(model, batch, prefix=prefix))
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    torch.testing.assert_close(a, c, atol=0, rtol=0)


def test_shared_prefix_with_batch_one_broadcasts_like_plain_prefix_tuning(models):
    model = models["gpt2"]
    cfg = model.config
    enc = PrefixEncoder(cfg.num_hidden_layers, cfg.hidden_size, n_context=3)  # no ID: plain prefix tuning
    batch = batch_of(prompts(), [0, 1, 2], "left")
    with torch.no_grad():
        shared = output(model, LayerPrefix().inputs(model, batch, prefix=enc()))
        tiled = output(model, LayerPrefix().inputs(model, batch, prefix=enc(batch_size=3)))
    torch.testing.assert_close(shared, tiled, atol=0, rtol=0)


def test_lora_wrapped_backbone_still_takes_the_prefix_through_its_own_projections(models):
    from peft import LoraConfig, get_peft_model

    model, _ = build_tiny(num_key_value_heads=2)
    model.eval()
    batch = batch_of(prompts(vocab=1000), [0, 1, 2], "left")
    prefix = random_prefix(model, 3)
    with torch.no_grad():
        bare = output(model, LayerPrefix().inputs(model, batch, prefix=prefix))
        peft_model = get_peft_model(
            model, LoraConfig(r=2, target_modules=["k_proj", "v_proj"], lora_dropout=0.0)
        )
        peft_model.eval()
        same = output(peft_model, LayerPrefix().inputs(peft_model, batch, prefix=prefix))
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.fill_(0.05)
        moved = output(peft_model, LayerPrefix().inputs(peft_model, batch, prefix=prefix))
    torch.testing.assert_close(same, bare, atol=ATOL, rtol=0)  # lora_B starts at 0
    assert (moved - bare).abs().max() > 1e-3


def test_prefix_encoder_layout_and_parameter_count():
    torch.manual_seed(0)
    enc = PrefixEncoder(n_layers=3, hidden=8, n_context=2, id_dim=5)
    assert sum(p.numel() for p in enc.parameters()) == 3 * (2 * 8 + 8 * 5 + 8)
    ids = torch.randn(4, 5)
    out = enc(ids)
    assert out.shape == (4, 3, 3, 8) and enc.length == 3
    assert torch.equal(out[1, :2], enc.context.transpose(0, 1))  # context first (RA-Rec Eq. 5)
    for layer in range(3):
        want = ids @ enc.weight[layer].T + enc.bias[layer]
        torch.testing.assert_close(out[:, 2, layer], want)
    assert all(p.abs().max() <= 0.02 for p in enc.parameters())  # truncated normal in [-0.02, 0.02]
    assert PrefixEncoder(2, 8, n_context=2)().shape == (1, 2, 2, 8)


# 6: bad input --------------------------------------------------------------------------------------------


def test_unsupported_family_is_a_one_line_config_error():
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    neox = GPTNeoXForCausalLM(
        GPTNeoXConfig(
            vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
        )
    )
    inj = LayerPrefix()
    with pytest.raises(ConfigError) as err:
        inj.check(neox, "rarec", "some/neox")
    msg = str(err.value)
    assert "\n" not in msg
    for part in ("rarec", "some/neox", "layer-prefix", "gpt_neox", "bert", "gpt2", "llama"):
        assert part in msg
    batch = batch_of(prompts(vocab=50), [0], "left")
    with pytest.raises(ConfigError, match="gpt_neox"):
        inj.inputs(neox, batch, prefix=torch.zeros(1, 2, 1, 16))


def test_supported_families_pass_check(models):
    for name, model in models.items():
        LayerPrefix().check(model, "rarec", name)


@pytest.mark.parametrize(
    "shape",
    [(3, 2, 3, 64), (3, 2, 2, 63), (2, 2, 2, 64), (3, 2, 64), (3, 0, 2, 64)],
    ids=["layers", "hidden", "batch", "3d", "empty"],
)
def test_wrong_prefix_shape_is_a_clear_error(models, shape):
    model = models["llama"]  # 2 layers, hidden 64
    batch = batch_of(prompts(vocab=1000), [0, 1, 2], "left")
    with pytest.raises(ValueError, match=r"expected \(B=3 or 1, P, L=2, H=64\)"):
        LayerPrefix().inputs(model, batch, prefix=torch.zeros(*shape))


def test_wrong_list_length_and_prefix_mask_shape_are_clear_errors(models):
    model = models["llama"]
    batch = batch_of(prompts(vocab=1000), [0, 1, 2], "left")
    with pytest.raises(ValueError, match="with 1 layers: expected"):
        prefix_layers([torch.zeros(3, 2, 64)], model, 3)
    with pytest.raises(ValueError, match=r"prefix_mask of shape \(3, 3\): expected \(B=3, P=2\)"):
        LayerPrefix().inputs(model, batch, prefix=torch.zeros(3, 2, 2, 64), prefix_mask=torch.ones(3, 3))
    with pytest.raises(ValueError, match=r"ID vectors of shape \(3, 4\), expected \(B, 5\)"):
        PrefixEncoder(2, 64, id_dim=5)(torch.zeros(3, 4))


def test_gradient_checkpointing_is_refused_because_it_would_drop_the_prefix():
    model, _ = build_tiny()
    model.activation_checkpointing_enable()
    model.train()
    batch = batch_of(prompts(vocab=1000), [0, 1], "left")
    with pytest.raises(ConfigError, match="gradient checkpointing"):
        LayerPrefix().inputs(model, batch, prefix=torch.zeros(2, 2, 2, 64))
    model.eval()  # no backward replay at eval: the cache survives, so the prefix is allowed
    LayerPrefix().inputs(model, batch, prefix=torch.zeros(2, 2, 2, 64))
