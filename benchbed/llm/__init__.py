"""The LLM method kit: parts with one job each, composed by the methods in ``benchbed/methods/``.

- ``backbone``: ``load_backbone(name_or_path, device=, dtype=)`` -> ``Backbone`` (presets ``tiny``/``minilm``,
  aliases, hub ids, local paths; padding side set; id/revision/dtype in ``info``).
- ``inject``: rendered prompts (text + ``Slot`` markers) -> ids with slot positions (``encode``, N positions
  per slot with ``slot_width``), left- or right-padded batches (``collate``), length bucketing.
- ``injectors``: how ID signal enters the forward pass (``Injector.inputs -> ModelInputs``): ``slots``
  (one or N vectors per placeholder), ``prefix`` (per-layer prefixes into each layer's K/V), ``vocab`` (new
  user/item tokens, only their rows train).
- ``heads``: what a task scores: ``yesno`` (CTR answer logit), ``constrained`` (trie beams
  over item ids), ``multinomial`` (softmax over all items), ``pooled`` (two-tower), ``text`` (free text).
- ``stages`` / ``train`` / ``budget``: one cached, resumable stage system (RNG state in checkpoints), one
  training loop, budgets in data terms.
- ``batching``: token-budget batches and prefix-KV reuse for Yes/No scoring (``score_batching``), the
  two-row answer head.
- ``lora``: peft LoRA (r=8, alpha=16, dropout=0.05, q_proj/v_proj) and per-stage freezing helpers.
- ``ctr_recipe`` / ``yesno`` and ``generative_recipe``: the two recipes existing methods subclass (Yes/No CTR
  prompts: icl, tallrec, collm; generative retrieval: p5-random, embedproj).
- ``synthetic``: planted-answer CTR splits for tests and benchmarks.
"""
