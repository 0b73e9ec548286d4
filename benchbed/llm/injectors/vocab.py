"""Vocabulary extension: new user/item tokens whose embedding rows alone train (CLLM4Rec, seed 001).

CLLM4Rec extends GPT-2's vocabulary with one atomic token per user and per item; GPT-2 and its ``wte`` stay
frozen and only the new rows learn [paper §3.2; code: yaochenzhu/LLM4Rec src/libs/model.py
``GPT4RecommendationBaseModel.embed``]. Here the new rows are **held by the injector**, never written into
the backbone's embedding matrix (no ``resize_token_embeddings``), so the base vocabulary stays bit-identical
whatever the optimizer does, and the backbone can be shared by several extensions.

Id layout, as in the authors' tokenizer [code: src/libs/tokenizer.py]: with ``N`` = rows of the backbone's
input embedding matrix, the first declared type occupies ids ``N .. N+n_0-1``, the next one follows, and so
on (``user`` then ``item`` gives ``user_i -> N+i``, ``item_j -> N+U+j``). Ids below ``N`` look up the
frozen matrix; ids at or above it look up the injector's rows; any other id is an error.

Several named **tables** (``tables=("collab", "content")``) live in one instance: every table has rows for
every type, and ``inputs(..., table=...)`` picks one. That is CLLM4Rec's pair of collaborative and content
embeddings on one shared GPT-2 [code: src/training.py], with both sets addressed by the same ids, which is
what the mutual-regularisation term compares.

Tokenization: the HF tokenizer is not modified. ``encode`` splits text on the new token strings (the
authors' ``_pre_tokenize``: ID tokens become single pieces, the text between keeps its leading space and
loses its trailing one), tokenizes the text pieces in one batched call and inserts the new ids. Adding
thousands of tokens with ``tokenizer.add_tokens`` is slow on fast tokenizers and would change the
tokenizer every other method shares; a regex split is exact and costs nothing. A new token string that the
tokenizer already knows is refused by ``check`` (one-line ``ConfigError``).

Heads restricted to one token type (paper Eqs. 4-5, soft+hard prompting §3.3.2): ``type_logits`` scores
only one type's rows (tied: ``hidden @ rows.T``, the item head *is* the item table, as in
``CollaborativeGPTwithItemLMHeadBatch``); ``base_logits`` is the backbone's own LM head over the base
vocabulary (content documents), new rows excluded. For backbones whose LM head is not tied to the input
embeddings, ``head="separate"`` gives each (table, type) its own randomly initialised output matrix
(CLLM4Rec's T5/LLaMA variants, paper App. B.3.1); ``for_model(head="auto")`` picks it from the backbone.

Families: the Llama-like ``tiny`` and GPT-2 (causal decoders, both heads), and BERT/MiniLM encoders for
the input side and ``type_logits`` (an encoder ``AutoModel`` has no LM head, so ``base_logits`` refuses).
The injector only replaces ``inputs_embeds``: attention masks and position ids pass through, so left and
right padding behave as with the plain model. It does not freeze the backbone; the method does
(``benchbed.llm.lora.freeze``), which leaves LLM-FtAll-style ablations possible.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from benchbed.errors import ConfigError
from benchbed.llm.injectors.base import Injector, ModelInputs
from benchbed.llm.injectors.prompts import Batch, EncodedPrompts, special_prefix

DEFAULT_PATTERN = "<{type}_{i}>"
# N(0, 0.02^2): GPT-2's initializer_range, which the authors use for the new rows [code: src/libs/model.py].
INIT_STD = 0.02
HEAD_KINDS = ("tied", "separate")
IGNORE_INDEX = -100  # torch.nn.functional.cross_entropy's default ignore_index
_NAME = re.compile(r"^[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*$")


class VocabExtension(Injector):
    """New token types (``{"user": U, "item": I}``) with their own embedding rows, one set per table.

    ``base_vocab``: rows of the backbone's input embedding matrix (``N``); ``hidden``: its width.
    ``pattern``: how a token is written in text (``{type}`` and ``{i}`` once each; the authors wrote
    ``user_{i}``, the default adds brackets so that no English word can collide). ``head``: ``"tied"`` (the
    type head is the type's rows) or ``"separate"`` (its own output matrix). ``bias``: a learned bias per
    type head. ``method``/``backbone`` only label construction errors.
    """

    kind: ClassVar[str] = "vocab"
    families: ClassVar[frozenset[str]] = frozenset({"llama", "gpt2", "bert"})

    def __init__(
        self,
        base_vocab: int,
        hidden: int,
        types: Mapping[str, int] | Sequence[tuple[str, int]],
        *,
        tables: Sequence[str] = ("default",),
        pattern: str = DEFAULT_PATTERN,
        head: str = "tied",
        bias: bool = False,
        init_std: float = INIT_STD,
        method: str = "?",
        backbone: str = "?",
    ) -> None:
        super().__init__()
        where = f"method {method!r}, backbone {backbone!r}: vocabulary extension"
        pairs = list(types.items()) if isinstance(types, Mapping) else [(str(n), int(c)) for n, c in types]
        names = [n for n, _ in pairs]
        _check_spec(where, pairs, tables, pattern, head)
        self.base_vocab = int(base_vocab)
        self.hidden = int(hidden)
        self.types: tuple[str, ...] = tuple(names)
        self.counts: dict[str, int] = {n: int(c) for n, c in pairs}
        starts = np.cumsum([0, *self.counts.values()])
        self.offsets: dict[str, int] = {
            n: self.base_vocab + int(s) for n, s in zip(names, starts[:-1], strict=True)
        }
        self.n_new = int(starts[-1])
        self.table_names: tuple[str, ...] = tuple(tables)
        self.pattern = pattern
        self.head = head
        self._regex = _token_regex(pattern, names)
        self._check_distinct_tokens(where)
        self.rows = nn.ParameterDict()
        self.out = nn.ParameterDict()  # separate output matrices ("separate" head only)
        self.out_bias = nn.ParameterDict()
        self._init_tables(init_std, bias)

    def _check_distinct_tokens(self, where: str) -> None:
        """A separator-free pattern such as ``{type}{i}`` lets two types write one string: refused."""
        seen: dict[str, str] = {}
        for name in self.types:
            for i in range(self.counts[name]):
                tok = self.token(name, i)
                if seen.setdefault(tok, name) != name:
                    raise ConfigError(
                        f"{where}: token types {seen[tok]!r} and {name!r} both write {tok!r}; expected a "
                        "token pattern that separates the type name from the index"
                    )

    def _init_tables(self, init_std: float, bias: bool) -> None:
        """N(0, init_std^2) rows per (table, type), drawn in table then type order (and the separate head's
        matrix right after its rows), so the global torch RNG gives every instance of a spec the same rows."""
        for table in self.table_names:
            for name in self.types:
                key = _key(table, name)
                n = self.counts[name]
                self.rows[key] = nn.Parameter(torch.randn(n, self.hidden) * init_std)
                if self.head == "separate":
                    self.out[key] = nn.Parameter(torch.randn(n, self.hidden) * init_std)
                if bias:
                    self.out_bias[key] = nn.Parameter(torch.zeros(n))

    # -- construction and checks ------------------------------------------------------------------------

    @classmethod
    def for_model(
        cls,
        model: Any,
        types: Mapping[str, int] | Sequence[tuple[str, int]],
        *,
        tokenizer: Any = None,
        method: str = "?",
        backbone: str = "?",
        head: str = "auto",
        **kwargs: Any,
    ) -> VocabExtension:
        """Size the extension from ``model``'s input embeddings and ``check`` it (and ``tokenizer``).

        ``head="auto"``: ``"separate"`` when the backbone has an LM head that is not tied to its input
        embeddings (LLaMA, T5 in the paper), else ``"tied"`` (GPT-2, the tiny preset, encoders).
        """
        emb = model.get_input_embeddings().weight
        if head == "auto":
            out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
            head = "separate" if out is not None and out.weight is not emb else "tied"
        ext = cls(
            int(emb.shape[0]),
            int(emb.shape[1]),
            types,
            head=head,
            method=method,
            backbone=backbone,
            **kwargs,
        )
        ext.to(device=emb.device)
        ext.check(model, method, backbone, tokenizer=tokenizer)
        return ext

    def check(self, model: Any, method: str, backbone: str, tokenizer: Any = None) -> None:
        """Family, sizes and (with ``tokenizer``) token clashes: one-line ``ConfigError`` each."""
        super().check(model, method, backbone)
        where = f"method {method!r}: the vocab injector on backbone {backbone!r}"
        emb = model.get_input_embeddings().weight
        if tuple(emb.shape) != (self.base_vocab, self.hidden):
            raise ConfigError(
                f"{where} has input embeddings {tuple(emb.shape)}; expected ({self.base_vocab}, "
                f"{self.hidden}) as the extension was built"
            )
        if tokenizer is None:
            return
        if len(tokenizer) > self.base_vocab:
            raise ConfigError(
                f"{where}: the tokenizer has {len(tokenizer)} tokens but the embedding matrix "
                f"{self.base_vocab} rows; expected ids below {self.base_vocab} so that new ids start there"
            )
        known = tokenizer.get_vocab()
        for name in self.types:
            for i in range(self.counts[name]):
                tok = self.token(name, i)
                if tok in known:
                    raise ConfigError(
                        f"{where}: new {name} token {tok!r} is already in the tokenizer's vocabulary (id "
                        f"{known[tok]}); expected new token strings (change the token pattern)"
                    )

    # -- ids and strings --------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Base rows plus every new token: the id bound of an extended batch."""
        return self.base_vocab + self.n_new

    def token(self, token_type: str, i: int) -> str:
        """The text form of token ``i`` of ``token_type`` (e.g. ``<item_5>``)."""
        self._type(token_type)
        return self.pattern.replace("{type}", token_type).replace("{i}", str(int(i)))

    def token_id(self, token_type: str, i: int) -> int:
        n = self.counts[self._type(token_type)]
        if not 0 <= int(i) < n:
            raise ValueError(f"{token_type} index {i} out of range: expected 0..{n - 1}")
        return self.offsets[token_type] + int(i)

    def ids(self, token_type: str, indices: torch.Tensor | np.ndarray | Sequence[int]) -> torch.Tensor:
        """Extended ids of ``indices`` (type-local, 0..n-1) of ``token_type``."""
        idx = torch.as_tensor(np.asarray(indices) if not isinstance(indices, torch.Tensor) else indices)
        n = self.counts[self._type(token_type)]
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
            raise ValueError(f"{token_type} indices out of range: expected 0..{n - 1}")
        return idx.long() + self.offsets[token_type]

    def local(self, input_ids: torch.Tensor, token_type: str) -> torch.Tensor:
        """Type-local index of each id of ``token_type``, ``IGNORE_INDEX`` elsewhere: the target of a loss
        through ``type_logits`` (the homogeneous main text of soft+hard prompting)."""
        lo = self.offsets[self._type(token_type)]
        inside = (input_ids >= lo) & (input_ids < lo + self.counts[token_type])
        return torch.where(inside, input_ids - lo, torch.full_like(input_ids, IGNORE_INDEX))

    def pieces(self, text: str) -> list[str | int]:
        """Split ``text`` into base-text pieces and new token ids (the authors' ``_pre_tokenize``).

        A text piece keeps its leading space (GPT-2's BPE marks word starts with it) and loses its trailing
        one; whitespace-only pieces vanish. A token of a declared type with a bad index is an error.
        """
        out: list[str | int] = []
        pos = 0
        for m in self._regex.finditer(text):
            piece = text[pos : m.start()].rstrip()
            if piece:
                out.append(piece)
            name, digits = m.group("type"), m.group("i")
            if digits != str(int(digits)):
                raise ValueError(f"token {m.group(0)!r} in text: expected {self.token(name, int(digits))!r}")
            n = self.counts[name]
            if int(digits) >= n:
                raise ValueError(
                    f"token {m.group(0)!r} in text is out of range: type {name!r} has {n} tokens (0..{n - 1})"
                )
            out.append(self.offsets[name] + int(digits))
            pos = m.end()
        tail = text[pos:].rstrip()
        if tail:
            out.append(tail)
        return out

    def encode(
        self, tokenizer: Any, texts: Sequence[str], *, add_special_tokens: bool = True
    ) -> EncodedPrompts:
        """Texts with new tokens -> ids (one batched tokenizer call), ready for ``injectors.prompts.collate``.

        ``add_special_tokens`` puts the tokenizer's prefix (Llama ``<s>``, the tiny preset's ``[CLS]``, none
        for GPT-2) first, as ``injectors.prompts.encode`` does; turn it off for a main text that continues a
        prompt.
        """
        split = [self.pieces(t) for t in texts]
        plain = [p for row in split for p in row if isinstance(p, str)]
        tokenized = tokenizer(plain, add_special_tokens=False)["input_ids"] if plain else []
        prefix = special_prefix(tokenizer) if add_special_tokens else []
        ids: list[np.ndarray] = []
        k = 0
        for row in split:
            out = list(prefix)
            for p in row:
                if isinstance(p, str):
                    out.extend(tokenized[k])
                    k += 1
                else:
                    out.append(p)
            ids.append(np.asarray(out, dtype=np.int64))
        return EncodedPrompts(ids=ids, slot_names=(), slot_pos=np.zeros((len(ids), 0), dtype=np.int64))

    # -- embeddings -------------------------------------------------------------------------------------

    def type_rows(self, token_type: str, table: str | None = None) -> nn.Parameter:
        """The input rows of ``token_type`` in ``table`` (the default is the first table)."""
        return self.rows[_key(self._table(table), self._type(token_type))]

    def table_parameters(self, table: str) -> list[nn.Parameter]:
        """Every parameter of one table (rows, separate heads, biases): what one CLLM4Rec step trains."""
        self._table(table)
        keys = [_key(table, n) for n in self.types]
        return [d[k] for d in (self.rows, self.out, self.out_bias) for k in keys if k in d]

    def embed(self, model: Any, input_ids: torch.Tensor, table: str | None = None) -> torch.Tensor:
        """(B, T, H) embeddings: the backbone's frozen lookup below ``N``, this table's rows above it.

        ``torch.where`` (not the authors' masked sum) so a base position is exactly the backbone's own
        lookup, bit for bit, and no gradient reaches a new row from a base position.
        """
        self._check_range(input_ids)
        wte = model.get_input_embeddings()
        is_base = input_ids < self.base_vocab
        base = wte(torch.where(is_base, input_ids, torch.zeros_like(input_ids)))
        if bool(is_base.all()):
            return base
        weight = torch.cat([self.type_rows(n, table) for n in self.types], dim=0).to(base.dtype)
        new = nn.functional.embedding(torch.where(is_base, 0, input_ids - self.base_vocab), weight)
        return torch.where(is_base.unsqueeze(-1), base, new)

    def inputs(self, model: Any, batch: Batch, table: str | None = None, **signal: Any) -> ModelInputs:
        if signal:
            raise TypeError(
                f"vocab injector: unexpected signal {sorted(signal)}; it reads ids from the batch"
            )
        return ModelInputs(
            inputs_embeds=self.embed(model, batch.input_ids, table),
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
        )

    # -- heads ------------------------------------------------------------------------------------------

    def type_logits(
        self, hidden_states: torch.Tensor, token_type: str, table: str | None = None
    ) -> torch.Tensor:
        """(..., n_type) logits over ``token_type`` only: ``hidden @ W.T (+ b)`` with ``W`` the type's rows
        (tied head) or its own output matrix (``head="separate"``)."""
        key = _key(self._table(table), self._type(token_type))
        weight = self.rows[key] if self.head == "tied" else self.out[key]
        bias = self.out_bias[key].to(hidden_states.dtype) if key in self.out_bias else None
        return nn.functional.linear(hidden_states, weight.to(hidden_states.dtype), bias)

    @staticmethod
    def base_logits(model: Any, hidden_states: torch.Tensor) -> torch.Tensor:
        """(..., N) logits of the backbone's own LM head: the base vocabulary only (content documents)."""
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        if head is None:
            raise ValueError(
                f"vocab injector: {type(model).__name__} has no LM head, so there is no base-vocabulary "
                "head; use type_logits or load the backbone as a causal LM"
            )
        return head(hidden_states)

    def extended_logits(
        self, model: Any, hidden_states: torch.Tensor, table: str | None = None
    ) -> torch.Tensor:
        """(..., N + n_new) logits in id order: base head, then every type head (free decoding over all)."""
        parts = [self.base_logits(model, hidden_states)]
        parts += [self.type_logits(hidden_states, n, table) for n in self.types]
        return torch.cat(parts, dim=-1)

    # -- internals --------------------------------------------------------------------------------------

    def _type(self, token_type: str) -> str:
        if token_type not in self.counts:
            raise ValueError(f"unknown token type {token_type!r}: expected one of {list(self.types)}")
        return token_type

    def _table(self, table: str | None) -> str:
        if table is None:
            return self.table_names[0]
        if table not in self.table_names:
            raise ValueError(f"unknown table {table!r}: expected one of {list(self.table_names)}")
        return table

    def _check_range(self, input_ids: torch.Tensor) -> None:
        if input_ids.numel() == 0:
            return
        lo, hi = int(input_ids.min()), int(input_ids.max())
        if lo < 0 or hi >= self.vocab_size:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"token id {bad} out of range for the extended vocabulary: expected 0..{self.vocab_size - 1} "
                f"({self.base_vocab} base + {self.n_new} new: "
                + ", ".join(
                    f"{n} {self.offsets[n]}..{self.offsets[n] + self.counts[n] - 1}" for n in self.types
                )
                + ")"
            )


def final_hidden(model: Any, inputs: ModelInputs) -> torch.Tensor:
    """(B, T, H) last hidden state after the final norm (what the LM head reads), via the bare base model
    (``LlamaModel``, ``GPT2Model``, ``BertModel``): no (B, T, N) base logits are computed."""
    return model.base_model(**inputs.kwargs()).last_hidden_state


def _key(table: str, token_type: str) -> str:
    return f"{table}__{token_type}"


def _check_spec(
    where: str, pairs: list[tuple[str, int]], tables: Sequence[str], pattern: str, head: str
) -> None:
    """One-line ``ConfigError`` for a bad type/table name, an empty type, a pattern or a head kind."""
    _check_names(where, "token type", [n for n, _ in pairs])
    _check_names(where, "table", list(tables))
    for name, count in pairs:
        if int(count) < 1:
            raise ConfigError(f"{where}: token type {name!r} has {count} tokens; expected at least 1")
    if pattern.count("{type}") != 1 or pattern.count("{i}") != 1:
        raise ConfigError(f"{where}: token pattern {pattern!r} must contain {{type}} and {{i}} once each")
    if head not in HEAD_KINDS:
        raise ConfigError(f"{where}: head {head!r}; expected one of {HEAD_KINDS}")


def _check_names(where: str, what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if not _NAME.match(name) or "__" in name:
            raise ConfigError(
                f"{where}: {what} name {name!r}; expected letters and digits joined by single '_'"
            )
        if name in seen:
            raise ConfigError(f"{where}: {what} {name!r} is declared twice; expected distinct {what} names")
        seen.add(name)
    if not names:
        raise ConfigError(f"{where}: no {what} declared; expected at least one")


def _token_regex(pattern: str, names: Sequence[str]) -> re.Pattern[str]:
    """``<{type}_{i}>`` -> ``<(?P<type>user|item)_(?P<i>\\d+)>``, longest type name first."""
    alt = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    out = []
    for part in re.split(r"(\{type\}|\{i\})", pattern):
        if part == "{type}":
            out.append(f"(?P<type>{alt})")
        elif part == "{i}":
            out.append(r"(?P<i>\d+)")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))
