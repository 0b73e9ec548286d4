"""Yes/No CTR scoring (CoLLM, TALLRec, ICL): everything here is specific to reading a Yes/No answer.

- ``scorer``: ``YesNoScorer``, (user, item, history) rows -> prompt -> answer-position score.
- ``head``: the decoder head (answer logit at the last position) and the score modes; ``masked_head``: the
  encoder head (answer read at an appended ``[MASK]``).
- ``fast_scoring``: token-budget batches and the two-row answer head (``score_batching=tokens``).
- ``prefix_reuse``: one user's rows share their prompt prefix, encoded once (``score_batching=prefix``).
"""
