"""Heads: run the backbone on an injector's ``ModelInputs`` and reduce its output to what a task scores.

- ``constrained``: trie-constrained beam search over item-id strings (generative retrieval); the trie is
  ``item_trie``.
- ``multinomial``: a softmax over all items from the last hidden state (CLLM4Rec).
- ``pooled``: a pooled representation for two-tower dot-product scoring (RA-Rec).
- ``text``: free-text generation, greedy or beam (item-to-text, ILM).

The Yes/No CTR heads (the answer logit at the last position, or at ``[MASK]`` for encoders) live with the rest
of Yes/No scoring in ``benchbed.llm.yesno``.
"""
