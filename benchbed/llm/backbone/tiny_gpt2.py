"""A ``tiny`` GPT-2-family decoder from a config, for methods whose paper used GPT-2 (CLLM4Rec, seed 001).

The kit's ``tiny`` preset is a Llama decoder. CLLM4Rec's mechanism leans on GPT-2's *tied* LM head (the item
head is the item token table; the content head is the frozen ``wte``) [paper §3.3.2; code:
yaochenzhu/LLM4Rec src/libs/model.py], so its CPU default is this GPT-2 config instead: seeded, randomly
initialised, with the bundled BERT WordPiece tokenizer of the ``tiny`` preset (no download). Dropout 0.1 on
embeddings and residuals as the authors' ``_config`` (src/training.py; attention dropout off, see below), and
1024 positions as GPT-2. It tests the pipeline, not the method: its weights know no language.

A kit preset: ``load_backbone("tiny-gpt2")`` (``benchbed.llm.backbone.loader.PRESETS``) returns
``load_tiny_gpt2()``.
"""

from __future__ import annotations

from typing import Any

import torch

from benchbed.llm.backbone.loaded import (
    Backbone,
    _config_digest,
    finish,
    load_tokenizer,
    minilm_dir,
    resolve_device,
)
from benchbed.llm.backbone.tiny_init import init_tiny_weights, weights_digest

TINY_GPT2_NAME = "tiny-gpt2"
TINY_GPT2_SEED = 0
TINY_GPT2_CONFIG: dict[str, Any] = {
    "n_embd": 64,
    "n_layer": 2,
    "n_head": 4,
    "n_positions": 1024,  # GPT-2's context, the authors' max length [code: src/libs/data.py]
    "resid_pdrop": 0.1,  # the authors' GPT-2 config [code: src/training.py `_config`]
    "embd_pdrop": 0.1,
    # 0.1 in the authors' config; 0 here: attention dropout forces PyTorch's O(L^2) math attention path,
    # most of the CPU time on 300-token histories, and the tiny preset only tests the pipeline
    "attn_pdrop": 0.0,
    "tie_word_embeddings": True,
}


def build_tiny_gpt2(seed: int = TINY_GPT2_SEED, **overrides: Any) -> tuple[Any, Any]:
    """Seeded random ``GPT2LMHeadModel`` (tied head) + the bundled BERT WordPiece tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = load_tokenizer(minilm_dir())
    tok.bos_token = tok.cls_token
    config = GPT2Config(
        vocab_size=len(tok),
        bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id,
        pad_token_id=tok.pad_token_id,
        **{**TINY_GPT2_CONFIG, **overrides},
    )
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    init_tiny_weights(model, seed)  # benchbed's own init (benchbed/llm/backbone/tiny_init.py)
    return model, tok


def load_tiny_gpt2(*, device: str | None = None, dtype: str | None = None) -> Backbone:
    """The tiny GPT-2 as a ``Backbone`` (what ``load_backbone`` returns for a preset)."""
    dev, torch_dtype = resolve_device(device, dtype)
    model, tok = build_tiny_gpt2()
    revision = f"{TINY_GPT2_NAME}-seed{TINY_GPT2_SEED}-{_config_digest(model.config, weights_digest(model))}"
    info = {"id": TINY_GPT2_NAME, "revision": revision, "kind": "preset"}
    return finish(TINY_GPT2_NAME, model, tok, info, dev, torch_dtype, True)
