"""Heads: run the backbone on an injector's ``ModelInputs`` and reduce its output to what a task scores.

- ``yesno``: the Yes/No answer logit at the last position (CTR: CoLLM, TALLRec, ICL).
- ``constrained``: trie-constrained beam search over item-id strings (generative retrieval).
- ``multinomial``: a softmax over all items from the last hidden state (CLLM4Rec).
- ``pooled``: a pooled representation for two-tower dot-product scoring (RA-Rec).
- ``text``: free-text generation, greedy or beam (item-to-text, ILM).
"""
