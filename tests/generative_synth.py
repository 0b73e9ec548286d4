"""A synthetic RecBole atomic dataset with planted sequential structure (shared by the generative tests).

Items form clusters of ``cluster_size``; every user belongs to one cluster and walks its items in a fixed
cyclic order from a random start, so the next item is the successor of the last one and the user's cluster
says which items are plausible at all. Raw item ids are shuffled, and the generative index spells items with
random numbers, so ids carry no signal: only what a model learns from the sequences (or from collaborative
embeddings of them) helps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_synthetic(
    root: Path,
    *,
    name: str = "syn",
    n_users: int = 300,
    n_clusters: int = 6,
    cluster_size: int = 20,
    min_len: int = 8,
    max_len: int = 12,
    seed: int = 0,
) -> Path:
    """Write ``<root>/<name>/<name>.inter`` and return the directory."""
    rng = np.random.default_rng(seed)
    n_items = n_clusters * cluster_size
    raw_ids = rng.permutation(n_items) + 1  # raw token per latent item: no order information
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for u in range(n_users):
        c = u % n_clusters
        start = int(rng.integers(cluster_size))
        length = int(rng.integers(min_len, max_len + 1))
        for t in range(length):
            latent = c * cluster_size + (start + t) % cluster_size
            lines.append(f"u{u}\ti{raw_ids[latent]}\t{1_000_000 + u * 100 + t}")
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.inter").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def save_word_backbone(
    directory: Path, *, extra_words: tuple[str, ...] = (), hidden: int = 48, layers: int = 2, seed: int = 0
) -> Path:
    """Save a small Llama decoder + word-level tokenizer (digits split one by one, so item ids are
    multi-token) to ``directory``; load it with ``--backbone <directory>`` like any Hugging Face model.

    The vocabulary holds every word of the built-in generative prompt banks, so prompts have no [UNK]; the
    model is randomly initialised (a stand-in for ``tiny`` that trains in seconds)."""
    import re

    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from benchbed.prompts import BANK_DIR

    words: set[str] = set(extra_words) | set("0123456789") | {"_", ",", ".", "?", ":", "-", "user", "item"}
    for bank in BANK_DIR.glob("generative_*.yaml"):
        text = bank.read_text(encoding="utf-8").lower()
        words |= set(re.findall(r"[a-z]+|[^\sa-z0-9{}]", text))
    specials = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
    vocab = {tok: i for i, tok in enumerate([*specials, *sorted(words)])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Punctuation(),
            pre_tokenizers.Digits(individual_digits=True),
        ]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]"
    )
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        pad_token_id=vocab["[PAD]"],
        bos_token_id=vocab["[BOS]"],
        eos_token_id=vocab["[EOS]"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory
