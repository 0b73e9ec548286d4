"""Small randomly initialised backbones built from configs, shared by the kit's contract tests."""

from __future__ import annotations

from typing import Any

import torch


def frozen(model: Any) -> Any:
    """Eval mode, no parameter trains: what a head or injector test runs on."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def tiny_gpt2(tok: Any, *, n_positions: int = 256, seed: int = 1) -> Any:
    """A 2-layer GPT-2 (untied head) over the bundled WordPiece tokenizer ``tok``, frozen."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=len(tok),
        n_positions=n_positions,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    return frozen(GPT2LMHeadModel(config))
