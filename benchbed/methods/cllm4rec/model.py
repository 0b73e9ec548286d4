"""CLLM4Rec's losses over one frozen causal LM, a two-table ``VocabExtension`` and a ``MultinomialHead``.

- Collaborative LLM [paper Eq. 4]: the prompt runs once; its KV cache feeds the main text (positions go on
  after the prompt), and the item tokens of the main text are predicted through the item head of the
  ``collab`` table (tied: the item rows themselves; untied backbones: a separate matrix).
- Content LLM [paper Eq. 5]: the same with the ``content`` table and the backbone's own LM head over words.
- First main token: predicted from the last prompt state (paper App. A.1, the default) or never a target
  (``code_shift``: logits at main position t predict main token t+1, as src/libs/model.py).
- LM loss: mean over target tokens (the code's ``CrossEntropyLoss``).
- Mutual regularisation [paper Eqs. 7-8]: the squared distance between this table's rows and the other
  table's (detached) rows at every ID token of the document, summed over the batch. ``mr_form="code"``:
  ``lambda * sum(delta^2)`` (``MSELoss(reduction='sum')``, no 1/2); ``"paper"``: ``lambda/2 * sum(delta^2)``.
- RecLLM [paper Eq. 9-10]: multinomial NLL of a multi-hot target from the last prompt state through the head
  tied to the item collaborative table, plus the MR term on the prompt's ID tokens (the code's main-part MR
  contributes ~0, protocol §2d), lambda_l = 0 (code).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from benchbed.compat.hf_cache import output_cache
from benchbed.llm.backbone.facts import backbone_body
from benchbed.llm.heads.multinomial import MultinomialHead, multi_hot
from benchbed.llm.injectors.base import ModelInputs
from benchbed.llm.injectors.prompts import Batch
from benchbed.llm.injectors.vocab import IGNORE_INDEX, VocabExtension
from benchbed.methods.cllm4rec.docs import DocBatch, RecBatch

COLLAB, CONTENT = "collab", "content"
MR_FORMS = ("code", "paper")


class CLLM4RecCore(nn.Module):
    """The backbone (frozen by the caller), the extension (both tables) and the RecLLM head."""

    def __init__(self, model: Any, ext: VocabExtension, *, code_shift: bool, mr_form: str) -> None:
        super().__init__()
        self.model = model
        self.ext = ext
        self.code_shift = bool(code_shift)
        self.mr_form = mr_form
        # RecLLM head: tied to the item collaborative table (GPT-2), or to the collaborative LLM's separate
        # item matrix when the backbone's LM head is untied (paper App. B.3.1)
        if ext.head == "tied":
            source = lambda: ext.type_rows("item", COLLAB)  # noqa: E731
        else:
            source = lambda: ext.out[f"{COLLAB}__item"]  # noqa: E731
        self.rec_head = MultinomialHead(source, n_items=ext.counts["item"])

    # --- documents ------------------------------------------------------------------------------------------
    def _main_states(self, batch: DocBatch, table: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states that predict main tokens, and those tokens (IGNORE_INDEX at padding)."""
        body = backbone_body(self.model)
        prompt_pos = (batch.prompt_mask.cumsum(dim=1) - 1).clamp(min=0)
        first = ModelInputs(
            inputs_embeds=self.ext.embed(self.model, batch.prompt, table),
            attention_mask=batch.prompt_mask,
            position_ids=prompt_pos,
        )
        out = body(**first.kwargs(use_cache=True))
        h_prompt = out.last_hidden_state[:, -1:]  # left padded: the last column is every row's last token
        feed = batch.main[:, :-1]  # the last main token predicts nothing
        targets = torch.where(batch.main_mask.bool(), batch.main, torch.full_like(batch.main, IGNORE_INDEX))
        if self.code_shift:
            targets = targets[:, 1:]
        if feed.shape[1] == 0:
            states = h_prompt if not self.code_shift else h_prompt[:, :0]
            return states, targets
        start = batch.prompt_mask.sum(dim=1, keepdim=True)
        second = ModelInputs(
            inputs_embeds=self.ext.embed(self.model, feed, table),
            attention_mask=torch.cat([batch.prompt_mask, batch.main_mask[:, : feed.shape[1]]], dim=1),
            position_ids=start + torch.arange(feed.shape[1], device=feed.device)[None, :],
            past_key_values=output_cache(out),
        )
        h_main = body(**second.kwargs(use_cache=True)).last_hidden_state
        states = h_main if self.code_shift else torch.cat([h_prompt, h_main], dim=1)
        return states, targets

    def lm_loss(self, batch: DocBatch, table: str) -> torch.Tensor:
        """Mean next-token NLL of the main text through the head of its token type."""
        states, targets = self._main_states(batch, table)
        if batch.kind == "collab":
            logits = self.ext.type_logits(states, "item", table)
            targets = self._local_items(targets)
        else:
            logits = self.ext.base_logits(self.model, states)
        valid = targets != IGNORE_INDEX
        if not bool(valid.any()):
            return logits.sum() * 0.0
        return nn.functional.cross_entropy(logits[valid].float(), targets[valid])

    def _local_items(self, targets: torch.Tensor) -> torch.Tensor:
        lo = self.ext.offsets["item"]
        return torch.where(targets == IGNORE_INDEX, targets, targets - lo)

    # --- mutual regularisation ----------------------------------------------------------------------------
    def _rows(self, table: str) -> torch.Tensor:
        return torch.cat([self.ext.type_rows(t, table) for t in self.ext.types], dim=0)

    def mr(self, ids: torch.Tensor, mask: torch.Tensor, table: str, lam: float) -> torch.Tensor:
        """``lambda (/2) * sum ||z_this - stopgrad(z_other)||^2`` over the ID tokens of ``ids``."""
        other = CONTENT if table == COLLAB else COLLAB
        new = (ids >= self.ext.base_vocab) & mask.bool()
        idx = ids[new] - self.ext.base_vocab
        if lam == 0 or idx.numel() == 0:
            return self._rows(table).sum() * 0.0
        delta = self._rows(table)[idx] - self._rows(other)[idx].detach()
        scale = lam if self.mr_form == "code" else lam / 2.0
        return scale * (delta.float() ** 2).sum()

    def doc_loss(self, batch: DocBatch, table: str, lam: float) -> torch.Tensor:
        """L-step (``table="collab"``) or C-step (``"content"``) objective of one batch."""
        loss = self.lm_loss(batch, table)
        if lam:
            ids = torch.cat([batch.prompt, batch.main], dim=1)
            mask = torch.cat([batch.prompt_mask, batch.main_mask], dim=1)
            loss = loss + self.mr(ids, mask, table, lam)
        return loss

    # --- RecLLM -------------------------------------------------------------------------------------------
    def rec_logits(self, batch: Batch) -> torch.Tensor:
        inputs = self.ext.inputs(self.model, batch, table=COLLAB)
        return self.rec_head(self.model, inputs, batch)

    def rec_loss(self, rb: RecBatch, lam: float) -> torch.Tensor:
        logits = self.rec_logits(rb.batch)
        target = multi_hot([t.tolist() for t in rb.targets], self.ext.counts["item"], logits.device)
        loss = MultinomialHead.loss(logits, target)
        if lam:
            loss = loss + self.mr(rb.batch.input_ids, rb.batch.attention_mask, COLLAB, lam)
        return loss

    def next_item_logits(self, batch: Batch) -> torch.Tensor:
        """LLM-PreRec: the collaborative LLM's next-item distribution after the whole history."""
        inputs = self.ext.inputs(self.model, batch, table=COLLAB)
        h = self.rec_head.last_hidden(self.model, inputs)
        return self.ext.type_logits(h, "item", COLLAB).float()
