"""CLLM4Rec's recommendation corpora: collaborative, content and recommendation documents as token ids.

Templates are the authors' [code: yaochenzhu/LLM4Rec src/libs/data.py, model.py docstring, README demo]:

| document | soft+hard prompt | main text (LM target) |
|---|---|---|
| collaborative | ``<user_i> has interacted with`` | ``<item_a> <item_b> ...`` (the user's training items) |
| content | ``<user_i> writes the following review for <item_j>:`` | the review text |
| recommendation | ``<user_i> has interacted with <items>, <user_i> will interact with`` | none (multi-hot) |

The fixed text between ID tokens is tokenized once (``Fragments``), exactly as ``VocabExtension.encode``
tokenizes the whole string (tests/test_method_cllm4rec.py checks both agree), so a batch is built from item
ids without a tokenizer call. Prompt and main text are kept apart: the prompt is encoded once and its KV cache
reused for the main text [paper App. A.1; code], and the loss is taken on the main text only.

Item order: stochastic reordering permutes the item list of every document each epoch [paper §3.3.4]; with
it off (LLM-FixOrd, or the code's pretraining) items come in item-id order, the column order of the authors'
sparse matrices. Draws come from ``np.random.Generator``s handed in by the caller (per epoch), never from the
global RNGs, so a resumed stage replays the same documents.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from benchbed.data.schema import Split
from benchbed.errors import ConfigError
from benchbed.llm.injectors.prompts import Batch, EncodedPrompts, collate, special_prefix
from benchbed.llm.injectors.vocab import VocabExtension

# The authors' wording [code: src/libs/data.py; README: ids 468/49236/351 = " has"/" interacted"/" with"].
COLLAB_PROMPT = "{user} has interacted with"
CONTENT_PROMPT = "{user} writes the following review for {item}:"
REC_PROMPT = "{user} has interacted with {items}, {user} will interact with"
# item-table columns that are ids or numbers, not text for a content document
NON_TEXT_COLUMNS = frozenset({"raw_id"})
REVIEW_COLUMNS = ("review", "review_text", "reviewText", "text")


@dataclass(frozen=True)
class Fragments:
    """Token ids of the templates' fixed text for one tokenizer."""

    prefix: tuple[int, ...]  # the tokenizer's special prefix ([CLS] for the tiny presets, none for GPT-2)
    has_interacted: tuple[int, ...]  # " has interacted with"
    comma: tuple[int, ...]  # ","
    will_interact: tuple[int, ...]  # " will interact with"
    writes_review: tuple[int, ...]  # " writes the following review for"
    colon: tuple[int, ...]  # ":"

    @classmethod
    def build(cls, tokenizer, ext: VocabExtension) -> Fragments:
        u, i = ext.token("user", 0), ext.token("item", 0)
        rec = ext.pieces(REC_PROMPT.format(user=u, items=i))
        content = ext.pieces(CONTENT_PROMPT.format(user=u, item=i))
        # rec: [u, " has interacted with", i, ",", u, " will interact with"]; content: [u, text, i, ":"]
        texts = [rec[1], rec[3], rec[5], content[1], content[3]]
        if not all(isinstance(t, str) for t in texts):  # pragma: no cover - the templates above
            raise ValueError("CLLM4Rec templates: unexpected split of the fixed text")
        ids = tokenizer([str(t) for t in texts], add_special_tokens=False)["input_ids"]
        return cls(tuple(special_prefix(tokenizer)), *(tuple(x) for x in ids))


@dataclass
class DocBatch:
    """Prompt (left padded) + main text (right padded) of collaborative or content documents."""

    kind: str  # "collab" | "content"
    prompt: torch.Tensor  # (B, Lp) long
    prompt_mask: torch.Tensor  # (B, Lp) long
    main: torch.Tensor  # (B, Lm) long
    main_mask: torch.Tensor  # (B, Lm) long

    def __len__(self) -> int:
        return int(self.prompt.shape[0])

    @property
    def n_tokens(self) -> int:
        return int(self.prompt_mask.sum() + self.main_mask.sum())


@dataclass
class RecBatch:
    """Recommendation prompts (a padded ``inject.Batch``) and each row's target items."""

    batch: Batch
    users: np.ndarray
    targets: list[np.ndarray]
    kind: str = "rec"

    def __len__(self) -> int:
        return len(self.users)

    @property
    def n_tokens(self) -> int:
        return self.batch.n_tokens


def _pad(rows: Sequence[Sequence[int]], pad_id: int, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(1, max(len(r) for r in rows))
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for b, r in enumerate(rows):
        n = len(r)
        if n:
            sl = slice(width - n, width) if side == "left" else slice(0, n)
            ids[b, sl] = r
            mask[b, sl] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


class Corpus:
    """Builds CLLM4Rec's documents for one split, extension and tokenizer."""

    def __init__(
        self, ext: VocabExtension, tokenizer, *, max_length: int, pad_id: int, device: str = "cpu"
    ) -> None:
        self.ext = ext
        self.frag = Fragments.build(tokenizer, ext)
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.pad_id = int(pad_id)
        self.device = device

    # --- ids ---------------------------------------------------------------------------------------------
    def user_id(self, u: int) -> int:
        return self.ext.offsets["user"] + int(u)

    def item_ids(self, items: np.ndarray) -> list[int]:
        return (np.asarray(items, dtype=np.int64) + self.ext.offsets["item"]).tolist()

    def collab_prompt(self, u: int) -> list[int]:
        return [*self.frag.prefix, self.user_id(u), *self.frag.has_interacted]

    def content_prompt(self, u: int, i: int) -> list[int]:
        f = self.frag
        return [*f.prefix, self.user_id(u), *f.writes_review, self.item_ids(np.array([i]))[0], *f.colon]

    def rec_prompt(self, u: int, items: np.ndarray) -> list[int]:
        """``<user_i> has interacted with <items>, <user_i> will interact with``; a history too long for
        ``max_length`` is cut (its tail) so the suffix survives (protocol §2i.8; the code cuts the end)."""
        f = self.frag
        fixed = len(f.prefix) + 2 + len(f.has_interacted) + len(f.comma) + len(f.will_interact)
        keep = np.asarray(items, dtype=np.int64)[: max(0, self.max_length - fixed)]
        uid = self.user_id(u)
        return [*f.prefix, uid, *f.has_interacted, *self.item_ids(keep), *f.comma, uid, *f.will_interact]

    def tokenize_texts(self, texts: Sequence[str], max_tokens: int) -> list[np.ndarray]:
        """Main texts of content documents (leading space, as they follow the prompt's colon)."""
        if not texts:
            return []
        ids = self.tokenizer([" " + t for t in texts], add_special_tokens=False)["input_ids"]
        return [np.asarray(x[:max_tokens], dtype=np.int64) for x in ids]

    # --- batches -------------------------------------------------------------------------------------------
    def collab_batch(self, users: np.ndarray, items: Sequence[np.ndarray]) -> DocBatch:
        prompts = [self.collab_prompt(int(u)) for u in users]
        room = max(1, self.max_length - max(len(p) for p in prompts))
        mains = [self.item_ids(np.asarray(it)[:room]) for it in items]  # the code cuts the end
        return self._doc_batch("collab", prompts, mains)

    def content_batch(self, users: np.ndarray, items: np.ndarray, texts: Sequence[np.ndarray]) -> DocBatch:
        prompts = [self.content_prompt(int(u), int(i)) for u, i in zip(users, items, strict=True)]
        room = max(1, self.max_length - max(len(p) for p in prompts))
        return self._doc_batch("content", prompts, [t[:room].tolist() for t in texts])

    def _doc_batch(self, kind: str, prompts: list[list[int]], mains: list[list[int]]) -> DocBatch:
        p, pm = _pad(prompts, self.pad_id, "left")
        m, mm = _pad(mains, self.pad_id, "right")
        dev = self.device
        return DocBatch(kind, p.to(dev), pm.to(dev), m.to(dev), mm.to(dev))

    def rec_batch(
        self, users: np.ndarray, prompt_items: Sequence[np.ndarray], targets: Sequence[np.ndarray]
    ) -> RecBatch:
        ids = [
            np.asarray(self.rec_prompt(int(u), it), dtype=np.int64)
            for u, it in zip(users, prompt_items, strict=True)
        ]
        enc = EncodedPrompts(ids=ids, slot_names=(), slot_pos=np.zeros((len(ids), 0), dtype=np.int64))
        batch = collate(enc, np.arange(len(ids)), self.pad_id, self.device, side="left")
        return RecBatch(batch, np.asarray(users), [np.asarray(t, dtype=np.int64) for t in targets])

    def history_batch(self, users: np.ndarray, items: Sequence[np.ndarray]) -> Batch:
        """Collaborative prompts followed by the whole history (LLM-PreRec's next-item input)."""
        room = self.max_length - len(self.collab_prompt(0))
        ids = [
            np.asarray(self.collab_prompt(int(u)) + self.item_ids(np.asarray(it)[:room]), dtype=np.int64)
            for u, it in zip(users, items, strict=True)
        ]
        enc = EncodedPrompts(ids=ids, slot_names=(), slot_pos=np.zeros((len(ids), 0), dtype=np.int64))
        return collate(enc, np.arange(len(ids)), self.pad_id, self.device, side="left")


# --- what the split gives ----------------------------------------------------------------------------------
def positives(split: Split, use_labels: bool) -> pd.DataFrame:
    """Distinct (user, item) training positives (label 1 rows when ``use_labels``), first row of each kept."""
    rows = split.train
    if use_labels:
        rows = rows[rows["label"] == 1]
    return rows.drop_duplicates(["user", "item"], keep="first").reset_index(drop=True)


def user_items(rows: pd.DataFrame, n_users: int) -> list[np.ndarray]:
    """Each user's items in item-id order (the authors' column order); empty for users with none."""
    out = [np.zeros(0, dtype=np.int64) for _ in range(n_users)]
    for u, g in rows.groupby("user", sort=True):
        out[int(u)] = np.sort(g["item"].to_numpy(dtype=np.int64))
    return out


def review_column(frame: pd.DataFrame) -> str | None:
    """The interaction column holding review text, if the dataset has one."""
    for col in REVIEW_COLUMNS:
        if col in frame.columns and frame[col].astype(str).str.strip().ne("").any():
            return col
    return None


def item_metadata_texts(items: pd.DataFrame) -> list[str]:
    """One text per item from its metadata: the title, then ``field: value`` for every other text field
    (ml-100k: ``Toy Story. year: 1995. genres: Animation Children's Comedy``)."""
    cols = [c for c in items.columns if c not in NON_TEXT_COLUMNS and c != "title"]
    titles = items["title"].fillna("").astype(str).str.strip() if "title" in items.columns else None
    out = []
    for r in range(len(items)):
        parts = [titles.iloc[r]] if titles is not None and titles.iloc[r] else []
        for c in cols:
            v = items[c].iloc[r]
            if v is None or (isinstance(v, float) and np.isnan(v)):
                continue
            s = str(v).strip()
            if s and s.lower() != "nan":
                parts.append(f"{c}: {s}")
        out.append(". ".join(parts))
    return out


# --- content documents -------------------------------------------------------------------------------------
def content_texts(split: Split, rows: pd.DataFrame, mode: str) -> tuple[pd.DataFrame, list[str], str]:
    """The training interactions that have a text under ``mode`` (reviews, else the item's metadata), their
    texts and where they came from (the record's ``content_source``)."""
    col = review_column(rows)
    if mode == "reviews" and col is None:
        raise ConfigError(
            f"method 'cllm4rec': content=reviews but dataset {split.data.name!r} has no review column "
            "(expected one of review, review_text, reviewText, text); use content=item-metadata"
        )
    if col is not None and mode in ("auto", "reviews"):
        keep = rows[rows[col].astype(str).str.strip() != ""]
        return keep, keep[col].astype(str).tolist(), f"reviews ({col})"
    meta = item_metadata_texts(split.data.items)
    keep = rows[[bool(meta[i]) for i in rows["item"].to_numpy()]]
    texts = [meta[i] for i in keep["item"].to_numpy()]
    return keep, texts, "item-metadata (no reviews: title and metadata fields per training interaction)"


def content_documents(
    split: Split,
    rows: pd.DataFrame,
    corpus: Corpus,
    *,
    mode: str,
    shuffle: bool,
    seed: int,
    budget: dict[str, Any],
    say: Callable[[str], None],
) -> tuple[dict[str, Any] | None, str, dict[str, int]]:
    """(user, item, text ids) per training interaction, a fixed seeded sample of ``max_content_docs``
    tokenized to ``max_content_tokens``, with a digest of them (stage identities read it); the source; the
    counts the record states. None when ``mode`` is ``none`` or the dataset has no text (then LLM-CF).
    ``shuffle``: the negative control, texts no longer belong to their items."""
    if mode == "none":
        return None, "none", {}
    keep, texts, source = content_texts(split, rows, mode)
    counts = {"content_docs_total": len(keep)}
    if not texts:
        say(
            f"cllm4rec: dataset {split.data.name!r} has no review or item text for content documents: "
            "running as LLM-CF (no content LLM, no mutual regularisation)"
        )
        return None, "none (no text in the dataset: ran as LLM-CF)", counts
    users = keep["user"].to_numpy(dtype=np.int64)
    items = keep["item"].to_numpy(dtype=np.int64)
    rng = np.random.default_rng([int(seed), 31])
    cap = int(budget["max_content_docs"])
    idx = np.sort(rng.permutation(len(texts))[:cap]) if 0 < cap < len(texts) else np.arange(len(texts))
    if shuffle:
        texts = [texts[i] for i in rng.permutation(len(texts))]
    ids = corpus.tokenize_texts([texts[i] for i in idx], int(budget["max_content_tokens"]))
    digest = hashlib.sha256()
    for a in (users[idx], items[idx], *ids):
        digest.update(np.ascontiguousarray(a).tobytes())
        digest.update(b"|")
    docs = {"users": users[idx], "items": items[idx], "texts": ids, "digest": digest.hexdigest()[:16]}
    return docs, source, {**counts, "content_docs": len(idx)}
