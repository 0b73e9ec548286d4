"""Free-text head: batched greedy and beam decoding from ``inputs_embeds`` (item-to-text, ILM).

Why a hand-written loop rather than ``model.generate``: injected vectors (slots, multi-token slots) enter
through ``inputs_embeds`` and layer prefixes through a prefilled KV cache whose mask columns precede the text
(``ModelInputs.text_offset``), with position ids the injector chose; ``generate`` cannot take all three.
The loop prefills the prompt once and then feeds one token per step against the model's KV cache, so the
prefix is never re-run. Greedy decoding gives the same tokens as ``model.generate(do_sample=False)``
(tested).

Beam search ranks beams by their exact sequence log-probability (the sum over generated tokens, the end token
included), and a finished beam keeps competing with live ones on that score, the rule ``heads/constrained.py``
uses for item ids. That is exact beam search on the sum: once a row's ``num_beams`` best are all finished no
live beam can overtake them (log-probabilities only fall), so the row is done. There is no length penalty
(``generate``'s default ``length_penalty=1.0`` divides by the length, which breaks that monotonicity).

Padding: decoding appends each new token after the last column, so a row's last real token must sit in the
last column. Left padding is used as is; a right-padded (or any other) batch is re-padded to the left here,
moving each row's real positions to the end in their order (embeddings, mask and position ids together), so
the result is the same as for a left-padded batch. Position ids count real tokens, so this shifts nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from benchbed import parallel
from benchbed.compat.hf_cache import cache_kwarg, output_cache
from benchbed.errors import ConfigError
from benchbed.llm.backbone import facts
from benchbed.llm.heads.pooled import text_mask
from benchbed.llm.injectors.base import ModelInputs
from benchbed.llm.injectors.prompts import Batch


@dataclass
class Generation:
    """Per prompt, ``k`` beams best first (``k`` = 1 for greedy).

    ``tokens`` (n, k, T) holds the generated ids, the end token included, then ``pad_id``; ``lengths`` (n, k)
    how many are real; ``scores`` (n, k) the sum of their log-probabilities; ``texts`` the decoded beams
    (special tokens skipped), or None without a tokenizer."""

    tokens: torch.Tensor
    lengths: torch.Tensor
    scores: torch.Tensor
    texts: list[list[str]] | None

    def token_ids(self) -> list[list[list[int]]]:
        toks, lens = self.tokens.tolist(), self.lengths.tolist()
        return [
            [beam[:n] for beam, n in zip(row, row_lens, strict=True)]
            for row, row_lens in zip(toks, lens, strict=True)
        ]

    @property
    def best_ids(self) -> list[list[int]]:
        return [row[0] for row in self.token_ids()]

    @property
    def best_texts(self) -> list[str]:
        if self.texts is None:
            raise ConfigError("text head: no tokenizer was given, so there are no decoded texts")
        return [row[0] for row in self.texts]


def left_align(inputs: ModelInputs) -> ModelInputs:
    """The same rows with every row's real text positions moved to the end (stable), a prefix untouched."""
    mask = text_mask(inputs)
    positions = inputs.position_ids
    if positions is None:  # what the injector would have given: real tokens counted after a visible prefix
        positions = (inputs.attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)[:, inputs.text_offset :]
    if bool(mask[:, -1].all()):
        return dataclasses.replace(inputs, position_ids=positions)
    order = torch.sort(mask.long(), dim=1, stable=True).indices
    hidden = inputs.inputs_embeds.shape[-1]
    prefix = inputs.attention_mask[:, : inputs.text_offset]
    return dataclasses.replace(
        inputs,
        inputs_embeds=inputs.inputs_embeds.gather(1, order.unsqueeze(-1).expand(-1, -1, hidden)),
        attention_mask=torch.cat([prefix, mask.gather(1, order)], dim=1),
        position_ids=positions.gather(1, order),
    )


@functools.cache
def _takes(forward: Any, name: str) -> bool:
    try:
        return name in inspect.signature(forward).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return False


def _ids(value: int | Sequence[int] | None) -> list[int]:
    if value is None:
        return []
    return [int(value)] if isinstance(value, int) else [int(v) for v in value]


@dataclass
class _Decoding:
    """The beams being decoded, flat (row * width + beam; width is 1 until the first beam step): their
    sequence log-probabilities, whether each has ended, how many of its tokens are real, and the tokens."""

    scores: torch.Tensor
    finished: torch.Tensor
    lengths: torch.Tensor
    seq: torch.Tensor
    width: int = 1

    @classmethod
    def start(cls, n: int, device: torch.device) -> _Decoding:
        return cls(
            scores=torch.zeros(n, device=device),
            finished=torch.zeros(n, dtype=torch.bool, device=device),
            lengths=torch.zeros(n, dtype=torch.long, device=device),
            seq=torch.empty((n, 0), dtype=torch.long, device=device),
        )


def _prefill(lm: Any, inputs: ModelInputs) -> tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor]:
    """The prompt through the model once: the next-token logits, the KV cache, the mask, the last
    positions."""
    kwargs = inputs.kwargs(use_cache=True)
    if _takes(type(lm).forward, "logits_to_keep"):
        kwargs["logits_to_keep"] = 1
    out = lm(**kwargs)
    assert inputs.position_ids is not None
    return (
        out.logits[:, -1].float(),
        output_cache(out),
        inputs.attention_mask.long(),
        inputs.position_ids[:, -1].long(),
    )


def _feed(
    lm: Any, cache: Any, mask: torch.Tensor, last: torch.Tensor, tok: torch.Tensor
) -> tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor]:
    """One new token per beam against the cache: the next logits, the cache, the mask, the positions."""
    mask = torch.cat([mask, torch.ones((mask.shape[0], 1), dtype=mask.dtype, device=mask.device)], dim=1)
    last = last + 1
    step_kwargs: dict[str, Any] = {
        "input_ids": tok.unsqueeze(1),
        "attention_mask": mask,
        "position_ids": last.unsqueeze(1),
        cache_kwarg(): cache,
        "use_cache": True,
    }
    out = lm(**step_kwargs)
    return out.logits[:, -1].float(), output_cache(out), mask, last


class TextGenerationHead:
    """``head(model, inputs, batch) -> Generation``: greedy (``num_beams=1``) or beam decoding.

    ``eos_token_id`` (one id or several) ends a beam; by default every stop id of the model's generation
    config (as transformers' ``generate``), else the backbone's end token (``backbone.facts.end_token``); with
    none, every beam runs ``max_new_tokens``. ``pad_token_id`` fills
    finished beams."""

    def __init__(
        self,
        tokenizer: Any = None,
        *,
        max_new_tokens: int = 32,
        num_beams: int = 1,
        eos_token_id: int | Sequence[int] | None = None,
        pad_token_id: int | None = None,
        method: str = "?",
    ) -> None:
        self.tokenizer = tokenizer
        self.method = method
        self.max_new_tokens = self._positive("max_new_tokens", max_new_tokens, 0)
        self.num_beams = self._positive("num_beams", num_beams, 1)
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id

    def _positive(self, name: str, value: int, least: int) -> int:
        if not isinstance(value, int) or value < least:
            raise ConfigError(
                f"method {self.method!r}: text head {name}={value!r}; expected an integer >= {least}"
            )
        return value

    def check(self, model: Any, method: str, backbone: str) -> None:
        """Generation needs a causal LM head."""
        target = facts.unwrap_peft(model)
        if not hasattr(target, "get_output_embeddings") or target.get_output_embeddings() is None:
            family = facts.family(target)
            raise ConfigError(
                f"method {method!r}: backbone {backbone!r} ({family}, {type(target).__name__}) has no LM "
                f"head; the text head expected a causal decoder"
            )

    def _eos(self, model: Any) -> list[int]:
        if self.eos_token_id is not None:
            return _ids(self.eos_token_id)
        # every stop id the model's generation config lists (Llama-3-Instruct lists two), as transformers'
        # generate does; else the kit's one end token (what the recipes close their answers with)
        ids = _ids(getattr(getattr(model, "generation_config", None), "eos_token_id", None))
        if ids:
            return ids
        try:
            return [facts.end_token(self.tokenizer, model)]
        except ConfigError:
            return []

    def _pad(self, model: Any, eos: list[int]) -> int:
        if self.pad_token_id is not None:
            return int(self.pad_token_id)
        for source in (
            self.tokenizer,
            getattr(model, "generation_config", None),
            getattr(model, "config", None),
        ):
            pad = getattr(source, "pad_token_id", None)
            if pad is not None:
                return int(pad)
        return eos[0] if eos else 0

    @torch.no_grad()
    def __call__(
        self,
        model: Any,
        inputs: ModelInputs,
        batch: Batch | None = None,
        *,
        max_new_tokens: int | None = None,
        num_beams: int | None = None,
    ) -> Generation:
        steps = (
            self.max_new_tokens
            if max_new_tokens is None
            else self._positive("max_new_tokens", max_new_tokens, 0)
        )
        beams = self.num_beams if num_beams is None else self._positive("num_beams", num_beams, 1)
        lm = facts.unwrap_peft(model)
        eos = self._eos(lm)
        pad = self._pad(lm, eos)
        inputs = left_align(inputs)
        device = inputs.inputs_embeds.device
        n = inputs.inputs_embeds.shape[0]
        if steps == 0:
            empty = torch.zeros((n, 1, 0), dtype=torch.long, device=device)
            return self._result(empty, torch.zeros((n, 1), dtype=torch.long), torch.zeros((n, 1)))
        logits, cache, mask, last = _prefill(lm, inputs)
        eos_t = torch.tensor(eos, dtype=torch.long, device=device)
        state = _Decoding.start(n, device)
        for step in range(steps):
            src, tok = self._extend(state, logits, n, beams, pad, eos_t)
            done = step == steps - 1 or bool(state.finished.all())
            keep_in_step = functools.partial(lm, input_ids=tok[:1].unsqueeze(1), use_cache=False)
            if parallel.finished_everywhere(done, keep_in_step):
                break
            if beams > 1:
                cache.reorder_cache(src)  # the first step also expands each prompt's cache to its beams
                mask, last = mask[src], last[src]
            logits, cache, mask, last = _feed(lm, cache, mask, last, tok)
        return self._ranked(state, n)

    def _extend(
        self, state: _Decoding, logits: torch.Tensor, n: int, beams: int, pad: int, eos_t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One token for every beam (greedy: the argmax; beam: the best continuations), in place on
        ``state``; the source beam of each new beam and its token."""
        logp = torch.log_softmax(logits, dim=-1)
        if beams == 1:
            src = torch.arange(n, device=state.seq.device)
            tok = logits.argmax(dim=-1)  # argmax of the logits, as generate's greedy search
            gain = logp.gather(1, tok.unsqueeze(1)).squeeze(1)
            carried = state.finished
            tok = torch.where(carried, pad, tok)
            state.scores = state.scores + torch.where(carried, 0.0, gain)
        else:
            src, tok, carried, state.scores = self._beam_step(
                logp, state.scores, state.finished, n, state.width, beams, pad
            )
            state.width = beams
        state.finished = carried | torch.isin(tok, eos_t) | ~torch.isfinite(state.scores)
        state.lengths = state.lengths[src] + (~carried).long()
        state.seq = torch.cat([state.seq[src], tok.unsqueeze(1)], dim=1)
        return src, tok

    def _ranked(self, state: _Decoding, n: int) -> Generation:
        """Each prompt's beams, best first."""
        k = state.width
        tokens = state.seq.view(n, k, -1)
        score_2d = state.scores.view(n, k)
        order = torch.argsort(score_2d, dim=1, descending=True, stable=True)  # best first
        tokens = tokens.gather(1, order.unsqueeze(-1).expand_as(tokens))
        return self._result(tokens, state.lengths.view(n, k).gather(1, order), score_2d.gather(1, order))

    @staticmethod
    def _beam_step(
        logp: torch.Tensor,
        scores: torch.Tensor,
        finished: torch.Tensor,
        n: int,
        width: int,
        beams: int,
        pad: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Top ``beams`` per row over every live beam's continuations plus every finished beam carried over
        (one extra column, log-probability 0). Returns flat source beams, tokens, carried flags, scores."""
        vocab = logp.shape[1]
        cand = (scores.unsqueeze(1) + logp).masked_fill(finished.unsqueeze(1), -float("inf"))
        carry = torch.where(finished, scores, -float("inf")).unsqueeze(1)
        cand = torch.cat([cand, carry], dim=1).view(n, width * (vocab + 1))
        kk = min(beams, cand.shape[1])
        best, idx = cand.topk(kk, dim=1)
        if kk < beams:  # fewer candidates than beams (tiny vocabularies): fill with dead beams
            best = torch.cat([best, best.new_full((n, beams - kk), -float("inf"))], dim=1)
            idx = torch.cat([idx, idx.new_full((n, beams - kk), vocab)], dim=1)
        beam, col = idx // (vocab + 1), idx % (vocab + 1)
        src = (torch.arange(n, device=logp.device).unsqueeze(1) * width + beam).view(-1)
        carried = (col == vocab).view(-1)
        tok = torch.where(carried, pad, col.view(-1))
        return src, tok, carried, best.view(-1)

    def _result(self, tokens: torch.Tensor, lengths: torch.Tensor, scores: torch.Tensor) -> Generation:
        texts = None
        if self.tokenizer is not None:
            toks, lens = tokens.tolist(), lengths.tolist()
            flat = [
                beam[:m]
                for row, row_lens in zip(toks, lens, strict=True)
                for beam, m in zip(row, row_lens, strict=True)
            ]
            decoded = self.tokenizer.batch_decode(flat, skip_special_tokens=True) if flat else []
            k = tokens.shape[1]
            texts = [decoded[i * k : (i + 1) * k] for i in range(tokens.shape[0])]
        return Generation(tokens=tokens, lengths=lengths, scores=scores.float(), texts=texts)
