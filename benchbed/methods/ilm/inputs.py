"""The ILM encoder's input embedding ``e``: behavioural, semantic or both (ILM §5.1, Tables 3/13/15).

- ``behavioral``: the CF model's export through ``ctx.embedding_source`` (ALS by default: the paper uses WALS
  on ML-25M and iALS on OpenP5, §4.1), users and items from the same factorisation;
- ``semantic``: a sentence embedding of each item's text (the paper: PaLM2-XS embeddings of the ELM dataset;
  here all-MiniLM-L6-v2 from the ``minilm`` preset, mean pooled and L2-normalised as sentence-transformers);
- ``combined``: the two concatenated (§5.1, protocols/ilm.md §1i.10).

Users go through the same encoder "as items" (§4.4 footnote). A user has no text, so a user's semantic vector
is the mean of their training items' vectors (inferred; the paper only uses behavioural user vectors on
OpenP5). ``shuffle`` permutes the item rows (and the user rows) with a seed: the negative control of
protocols/ilm.md §1h, which must remove any gain the vectors give.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from benchbed.api import RunContext
from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.methods.ilm.params import ILMParams

SEMANTIC_BATCH = 64


@dataclass
class InputTables:
    """Rows aligned with benchbed's dense ids; ``identity`` says what produced them (for stage keys)."""

    item: torch.Tensor  # (n_items, d) float32
    user: torch.Tensor  # (n_users, d) float32
    identity: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.item.shape[1])

    def to(self, device: str | torch.device) -> InputTables:
        return InputTables(self.item.to(device), self.user.to(device), self.identity)


def item_texts(split: Split, fields: list[str] | None) -> list[str]:
    """One text per item from the item table: ``title (year). genres: ...`` style, empty fields skipped."""
    items = split.data.items
    cols = [c for c in (fields or list(items.columns)) if c != "raw_id"]
    missing = [c for c in cols if c not in items.columns]
    if missing:
        raise ConfigError(
            f"method 'ilm': item field {missing[0]!r} is not in dataset {split.data.name!r}; "
            f"it has {', '.join(c for c in items.columns if c != 'raw_id')}"
        )
    out = []
    for row in items[cols].itertuples(index=False):
        parts = []
        for name, value in zip(cols, row, strict=True):
            text = (
                "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()
            )
            if not text:
                continue
            parts.append(text if name == "title" else f"{name}: {text}")
        out.append(". ".join(parts))
    return out


@torch.no_grad()
def sentence_embeddings(texts: list[str], encoder: str = "minilm", device: str = "cpu") -> np.ndarray:
    """(n, d) mean-pooled, L2-normalised sentence embeddings (sentence-transformers' recipe)."""
    from benchbed.llm.backbone.loader import load_backbone
    from benchbed.llm.heads.pooled import PooledHead
    from benchbed.llm.injectors.base import ModelInputs

    bb = load_backbone(encoder, device=device, dtype="float32")
    head = PooledHead("mean", normalize=True)
    tok = bb.tokenizer
    out = []
    for start in range(0, len(texts), SEMANTIC_BATCH):
        chunk = [t or "" for t in texts[start : start + SEMANTIC_BATCH]]
        enc = tok(chunk, padding=True, truncation=True, max_length=128, return_tensors="pt").to(bb.device)
        inputs = ModelInputs(
            inputs_embeds=bb.model.get_input_embeddings()(enc["input_ids"]),
            attention_mask=enc["attention_mask"],
        )
        out.append(head(bb.model, inputs).cpu().numpy())
    return np.concatenate(out, axis=0) if out else np.zeros((0, bb.hidden_size), dtype=np.float32)


def _user_means(split: Split, item: np.ndarray) -> np.ndarray:
    users = np.zeros((split.n_users, item.shape[1]), dtype=np.float32)
    counts = np.zeros(split.n_users, dtype=np.float32)
    u = split.train["user"].to_numpy()
    i = split.train["item"].to_numpy()
    np.add.at(users, u, item[i])
    np.add.at(counts, u, 1.0)
    return users / np.maximum(counts, 1.0)[:, None]


def build_inputs(split: Split, ctx: RunContext, p: ILMParams, *, method: str = "ilm") -> InputTables:
    """The input tables ``p.input`` asks for (one of ``params.INPUTS``; see the module docstring)."""
    kind = p.input
    parts_item: list[np.ndarray] = []
    parts_user: list[np.ndarray] = []
    identity: dict[str, Any] = {"input": kind}
    if kind in ("behavioral", "combined"):
        emb = ctx.embedding_source(method).get(
            split, p.cf_model, params=p.cf_params, seed=ctx.seed, feedback=ctx.feedback
        )
        if emb.user.shape[0] != split.n_users or emb.item.shape[0] != split.n_items:
            raise ConfigError(
                f"{p.cf_model} embeddings have {emb.user.shape[0]} users / "
                f"{emb.item.shape[0]} items, the split has {split.n_users} / {split.n_items}; "
                "re-export them for this split"
            )
        manifest = dict(getattr(emb, "manifest", {}) or {})
        identity["cf"] = {
            "model": p.cf_model,
            "params": p.cf_params,
            "export": manifest.get("params_hash") or manifest.get("hash"),
            "digest": _digest(np.asarray(emb.item)),
        }
        parts_item.append(np.asarray(emb.item, dtype=np.float32))
        parts_user.append(np.asarray(emb.user, dtype=np.float32))
    if kind in ("semantic", "combined"):
        # ``semantic_fields`` (default: the title): every other column of ML's item table (genres, year) is an
        # answer of an item-to-text sub-task, so embedding it would hand held-out items their targets
        fields = _fields(p.semantic_fields)
        sem = sentence_embeddings(item_texts(split, fields), p.semantic_encoder, ctx.device)
        identity["semantic"] = {"encoder": p.semantic_encoder, "fields": fields}
        parts_item.append(sem.astype(np.float32))
        parts_user.append(_user_means(split, sem))
    # each block scaled to unit RMS entry (ALS factors have row norms ~0.1, MiniLM vectors 1): the encoder's
    # initialised layers then see inputs of one scale, and neither block of ``combined`` drowns the other
    scales = [float(np.sqrt(np.mean(np.square(x)))) or 1.0 for x in parts_item]
    item = np.concatenate([x / s for x, s in zip(parts_item, scales, strict=True)], axis=1)
    user = np.concatenate([x / s for x, s in zip(parts_user, scales, strict=True)], axis=1)
    identity["scale"] = "unit-rms"
    if p.shuffle_input:
        rng = np.random.default_rng([ctx.seed, 7])
        item = item[rng.permutation(len(item))]
        user = user[rng.permutation(len(user))]
        identity["shuffled"] = True
    return InputTables(torch.from_numpy(item), torch.from_numpy(user), identity).to(ctx.device)


def _fields(value: Any) -> list[str] | None:
    if value in (None, "", "all"):
        return None
    return [f.strip() for f in str(value).split(",") if f.strip()]


def _digest(array: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()[:16]
