"""The LLM method kit: parts with one job each, composed by the methods in ``benchbed/methods/``.

- ``backbone``: ``load_backbone(name_or_path, device=, dtype=)`` -> ``Backbone`` (presets ``tiny``,
  ``tiny-gpt2``, ``minilm``, aliases, hub ids, local paths; id/revision/dtype in ``info``);
  ``backbone.facts`` answers what every part asks about a backbone (family, encoder or decoder, body, end
  token, padding side).
- ``injectors``: how ID signal enters the forward pass (``Injector.inputs -> ModelInputs``): ``slots``
  (one or N vectors per placeholder), ``prefix`` (per-layer prefixes into each layer's K/V), ``vocab`` (new
  user/item tokens, only their rows train); ``injectors.prompts`` turns rendered prompts (text + ``Slot``
  markers) into ids with slot positions (``encode``), left- or right-padded batches (``collate``) and
  length buckets.
- ``heads``: what a task reads from the forward pass: ``constrained`` (trie beams over item ids),
  ``multinomial`` (softmax over all items), ``pooled`` (two-tower), ``text`` (free text).
- ``yesno``: everything Yes/No CTR scoring needs: the prompt scorer (``scorer``), the decoder and
  masked-encoder answer heads (``head``, ``masked_head``), token-budget batches and the two-row answer head
  (``fast_scoring``), shared-prefix reuse (``prefix_reuse``).
- ``recipes``: one per training flow, which methods subclass or compose: ``ctr`` (Yes/No CTR prompts: icl,
  tallrec, collm), ``generative`` (generative retrieval: p5-random, embedproj, ilm), ``item2text``.
- ``stages`` / ``train`` (+ ``train_resume``) / ``budget``: one cached, resumable stage system (RNG state in
  checkpoints), one training loop, budgets in data terms.
- ``lora``: peft LoRA (r=8, alpha=16, dropout=0.05, q_proj/v_proj) and per-stage freezing helpers.
- ``synthetic``: planted-answer CTR splits for tests and benchmarks.
"""
