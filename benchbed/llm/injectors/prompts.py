"""Prompts with embedding slots -> token ids -> ``inputs_embeds`` with projected vectors spliced in.

CoLLM, ILM and seed 003 all put a vector where a placeholder token would be. Here the placeholder is not a
vocabulary entry: a rendered prompt is a list of text pieces and ``Slot`` markers; text is tokenized as whole
strings between slots (so tokenization matches tokenizing the text normally), each slot becomes one position
holding ``placeholder_id`` (any id: its embedding is overwritten), and the slot positions are kept alongside
the ids. ``splice`` then writes the vectors at exactly those positions and leaves every other embedding as the
model's own lookup, so gradients reach only the vectors' producers (e.g. CoLLM's mapping MLP).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from benchbed.prompts import Piece, Slot


def special_prefix(tokenizer) -> list[int]:
    """The ids a tokenizer puts before text (Llama ``<s>``, the tiny preset's ``[CLS]``; none for GPT-2)."""
    with_special = tokenizer("x", add_special_tokens=True)["input_ids"]
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    for start in range(len(with_special) - len(plain) + 1):
        if with_special[start : start + len(plain)] == plain:
            prefix = list(with_special[:start])
            break
    else:  # pragma: no cover - tokenizers that rewrite text
        prefix = []
    if (
        not prefix
        and getattr(tokenizer, "bos_token_id", None) is not None
        and tokenizer.bos_token != tokenizer.eos_token
    ):
        prefix = [tokenizer.bos_token_id]
    return prefix


def placeholder_token_id(tokenizer) -> int:
    for attr in ("unk_token_id", "pad_token_id", "eos_token_id"):
        tid = getattr(tokenizer, attr, None)
        if tid is not None:
            return int(tid)
    return 0


@dataclass
class EncodedPrompts:
    """Token ids per row and, per slot name, the slot's position in the row (-1 when the row has none)."""

    ids: list[np.ndarray]
    slot_names: tuple[str, ...]
    slot_pos: np.ndarray  # int64 (n_rows, n_slot_names): first position of each slot
    slot_width: int = 1  # positions per slot

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.ids), dtype=np.int64, count=len(self.ids))


def encode(
    tokenizer,
    prompts: Sequence[Sequence[Piece]],
    slot_names: Sequence[str] = (),
    *,
    placeholder_id: int | None = None,
    max_length: int | None = None,
    slot_width: int = 1,
) -> EncodedPrompts:
    """Tokenize rendered prompts in one batched tokenizer call; record where each slot sits.

    Each slot takes ``slot_width`` consecutive positions (1: one vector per placeholder; N: ILM's N query
    tokens per item); ``slot_pos`` holds the first of them.

    ``max_length`` cuts tokens from the start of the first text pieces (for the CTR banks: the question's
    opening words, then the oldest history titles), never a slot, so the target and the answer cue survive.
    """
    names = tuple(slot_names) or tuple(
        dict.fromkeys(p.name for row in prompts for p in row if isinstance(p, Slot))
    )
    name_col = {n: j for j, n in enumerate(names)}
    pid = placeholder_token_id(tokenizer) if placeholder_id is None else placeholder_id
    prefix = special_prefix(tokenizer)
    texts = [p for row in prompts for p in row if isinstance(p, str)]
    tokenized = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    ids: list[np.ndarray] = []
    slot_pos = np.full((len(prompts), len(names)), -1, dtype=np.int64)
    k = 0
    for r, row in enumerate(prompts):
        parts: list[list[int]] = []
        slots: list[tuple[int, str]] = []  # (part index, slot name)
        for piece in row:
            if isinstance(piece, Slot):
                if piece.name not in name_col:
                    raise ValueError(f"slot {piece.name!r} is not among the declared slots {names}")
                slots.append((len(parts), piece.name))
                parts.append([pid] * slot_width)
            else:
                parts.append(list(tokenized[k]))
                k += 1
        if max_length is not None:
            excess = len(prefix) + sum(map(len, parts)) - max_length
            for i, part in enumerate(parts):
                if excess <= 0:
                    break
                if any(i == si for si, _ in slots):
                    continue
                cut = min(excess, len(part))
                parts[i] = part[cut:]
                excess -= cut
        offset = len(prefix)
        starts = []
        for part in parts:
            starts.append(offset)
            offset += len(part)
        for part_index, name in slots:
            slot_pos[r, name_col[name]] = starts[part_index]
        ids.append(np.fromiter((t for part in [prefix, *parts] for t in part), dtype=np.int64))
    return EncodedPrompts(ids=ids, slot_names=names, slot_pos=slot_pos, slot_width=slot_width)


@dataclass
class Batch:
    """A padded batch. Left padding (the default) puts every row's last token in the last column; with
    right padding ``last_pos`` says where each row ends. Position ids count real tokens only, so padding
    never shifts positions on either side."""

    rows: np.ndarray  # indices into the EncodedPrompts
    input_ids: torch.Tensor  # (B, L) long
    attention_mask: torch.Tensor  # (B, L) long
    position_ids: torch.Tensor  # (B, L) long: 0.. over real tokens, so padding never shifts positions
    slot_pos: torch.Tensor  # (B, S) long, -1 where absent
    side: str = "left"

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def n_tokens(self) -> int:
        return int(self.attention_mask.sum())

    @property
    def last_pos(self) -> torch.Tensor:
        """(B,) column of each row's last real token."""
        if self.side == "left":
            return torch.full((len(self),), self.input_ids.shape[1] - 1, device=self.input_ids.device)
        return self.attention_mask.sum(dim=1) - 1


PADDING_SIDES = ("left", "right")
IGNORE = -100  # torch.nn.functional.cross_entropy's ignore_index: label positions that carry no loss


def append_answers(enc: EncodedPrompts, answers: Sequence[Sequence[int]], end_token: int) -> np.ndarray:
    """Append each row's answer tokens and the end token to its prompt, in place (teacher forcing);
    returns how many tokens each row got (the label positions of :func:`answer_labels`)."""
    answer_len = np.zeros(len(enc.ids), dtype=np.int64)
    for r, ans in enumerate(answers):
        full = np.asarray([*ans, end_token], dtype=np.int64)
        enc.ids[r] = np.concatenate([enc.ids[r], full])
        answer_len[r] = len(full)
    return answer_len


def answer_labels(enc: EncodedPrompts, answer_len: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(B, A) labels of ``rows``: each row's last ``answer_len`` tokens, right-aligned (the prompts are
    left-padded, so the answers end every row), :data:`IGNORE` elsewhere."""
    lens = answer_len[rows]
    width = int(lens.max())
    labels = np.full((len(rows), width), IGNORE, dtype=np.int64)
    for b, r in enumerate(rows):
        n = int(lens[b])
        labels[b, width - n :] = enc.ids[r][-n:]
    return labels


def collate(
    enc: EncodedPrompts,
    rows: np.ndarray,
    pad_id: int,
    device: str | torch.device = "cpu",
    side: str = "left",
) -> Batch:
    if side not in PADDING_SIDES:
        raise ValueError(f"padding side {side!r}: expected one of {PADDING_SIDES}")
    lens = enc.lengths[rows]
    width = int(lens.max())
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    start = (width - lens) if side == "left" else np.zeros_like(lens)
    for b, r in enumerate(rows):
        n, s0 = lens[b], start[b]
        ids[b, s0 : s0 + n] = enc.ids[r]
        mask[b, s0 : s0 + n] = 1
    pos = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)
    slot = enc.slot_pos[rows]
    slot = np.where(slot >= 0, slot + start[:, None], -1)
    return Batch(
        rows=np.asarray(rows),
        input_ids=torch.from_numpy(ids).to(device),
        attention_mask=torch.from_numpy(mask).to(device),
        position_ids=torch.from_numpy(pos).to(device),
        slot_pos=torch.from_numpy(slot).to(device),
        side=side,
    )


def splice(
    embeds: torch.Tensor, slot_pos: torch.Tensor, vectors: torch.Tensor | dict[int, torch.Tensor]
) -> torch.Tensor:
    """Return ``embeds`` with ``vectors[b, s]`` written at ``(b, slot_pos[b, s])`` for every present slot.

    ``vectors``: (B, S, H), or {slot column: (B, H)}. Out of place, so autograd reaches ``vectors``; positions
    with ``slot_pos == -1`` are skipped.
    """
    if isinstance(vectors, dict):
        cols = sorted(vectors)
        vec = torch.stack([vectors[c] for c in cols], dim=1)
        pos = slot_pos[:, cols]
    else:
        vec, pos = vectors, slot_pos
    present = pos >= 0
    b_idx, s_idx = present.nonzero(as_tuple=True)
    return embeds.index_put((b_idx, pos[b_idx, s_idx]), vec[b_idx, s_idx].to(embeds.dtype))


def bucket_batches(
    lengths: np.ndarray, batch_size: int, *, rng: np.random.Generator | None = None, bucket_factor: int = 50
) -> list[np.ndarray]:
    """Length bucketing: rows of similar length share a batch so padding stays small.

    Without ``rng`` (scoring): rows sorted by length, batches in that order. With ``rng`` (training):
    shuffle, sort within chunks of ``bucket_factor * batch_size``, then shuffle the batch order, so batches
    stay random.
    """
    n = len(lengths)
    if n == 0:
        return []
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    perm = rng.permutation(n)
    chunk = max(batch_size * bucket_factor, batch_size)
    batches: list[np.ndarray] = []
    for start in range(0, n, chunk):
        part = perm[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]
