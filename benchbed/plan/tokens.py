"""The tokenizer a plan counts tokens with: the backbone's own when it is on this machine (a preset, a local
folder, a hub id in the local cache), else the bundled WordPiece tokenizer of the tiny presets, and a note
saying the counts are approximate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchbed.llm.backbone.loaded import load_tokenizer, minilm_dir
from benchbed.llm.backbone.loader import ALIASES

# backbones whose own tokenizer is the bundled one (all-MiniLM-L6-v2 ships bert-base-uncased's WordPiece)
BUNDLED = ("tiny", "tiny-gpt2", "minilm", "bert-base")


def tokenizer_for(name: str) -> tuple[Any, str | None]:
    if name in BUNDLED:
        return _bundled(), None
    source = str(Path(name).expanduser()) if Path(name).expanduser().is_dir() else ALIASES.get(name, name)
    try:
        return load_tokenizer(source, local_files_only=True), None
    except (OSError, ValueError):
        note = (
            f"tokens counted with the bundled BERT WordPiece tokenizer: {source}'s tokenizer is not on this "
            f"machine (Llama/GPT-2 BPE give somewhat more tokens per title)"
        )
        return _bundled(), note


def _bundled() -> Any:
    tok = load_tokenizer(minilm_dir())
    tok.bos_token = tok.cls_token
    return tok
