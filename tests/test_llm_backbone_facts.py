"""``benchbed.llm.backbone.facts``: one answer per backbone fact, for plain, peft-wrapped and config inputs.

Real tiny models from configs (the ``tiny`` Llama, ALBERT and DeBERTa-v2 encoders), no mocks.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import AlbertConfig, AlbertModel, AutoConfig

from benchbed.errors import ConfigError
from benchbed.llm.backbone import facts
from benchbed.llm.backbone.loaded import load_tokenizer, minilm_dir
from benchbed.llm.backbone.loader import build_tiny
from benchbed.llm.heads.pooled import default_pooling
from benchbed.llm.lora import add_lora


@pytest.fixture(scope="module")
def tiny():
    return build_tiny()


def test_family_and_body_are_the_same_through_peft(tiny):
    model, _ = tiny
    wrapped, _ = add_lora(build_tiny()[0])
    assert facts.family(model) == facts.family(wrapped) == facts.family(model.config) == "llama"
    assert type(facts.backbone_body(model)).__name__ == "LlamaModel"
    body = facts.backbone_body(wrapped)
    assert type(body).__name__ == "LlamaModel"
    # the LoRA layers are kept: the body is the wrapped model's, not a copy
    assert any("lora_A" in n for n, _ in body.named_parameters())
    assert facts.family(torch.nn.Linear(2, 2)) == facts.UNKNOWN_FAMILY


@pytest.mark.parametrize("model_type", ["albert", "deberta-v2", "bert", "deberta"])
def test_encoders_are_one_list(model_type):
    """ALBERT and DeBERTa-v2 are encoders for the loader and the pooled head alike (two lists disagreed)."""
    config = AutoConfig.for_model(model_type)
    assert facts.is_encoder(config)
    assert not facts.is_encoder(AutoConfig.for_model("llama"))


def test_albert_pools_like_an_encoder():
    small = AlbertConfig(vocab_size=50, embedding_size=8, hidden_size=16, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=32)  # fmt: skip
    assert default_pooling(AlbertModel(small)) == "mean"


def test_end_token_order(tiny):
    model, tok = tiny
    # the bundled WordPiece tokenizer has no eos: the model config's eos ([SEP]) closes answers
    assert tok.eos_token_id is None
    assert facts.end_token(tok, model) == model.config.eos_token_id == tok.sep_token_id
    eos_first = SimpleNamespace(eos_token_id=7, sep_token_id=3)
    assert facts.end_token(eos_first, model) == 7
    listed = SimpleNamespace(config=SimpleNamespace(eos_token_id=[11, 12]))
    assert facts.end_token(SimpleNamespace(), listed) == 11
    assert facts.end_token(SimpleNamespace(), listed.config) == 11  # a config alone
    with pytest.raises(ConfigError, match="method 'x': the backbone's tokenizer has no end-of-sequence"):
        facts.end_token(SimpleNamespace(), None, who="method 'x'")


def test_tokenizers_pad_on_the_one_side():
    assert load_tokenizer(minilm_dir()).padding_side == facts.PADDING_SIDE == "left"
