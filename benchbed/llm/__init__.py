"""LLM machinery shared by every LLM method, written once.

- ``backbone``: ``load_backbone(name_or_path, device=, dtype=)`` -> ``Backbone`` (presets ``tiny``/``minilm``,
  aliases, hub ids, local paths; padding side set; id/revision/dtype in ``info``).
- ``inject``: rendered prompts (text + ``Slot`` markers) -> ids with slot positions (``encode``), left-padded
  batches (``collate``), vectors spliced into ``inputs_embeds`` (``embed``/``splice``), length bucketing.
- ``scoring``: Yes/No answer-token logits at the last position, BCE, prefix-KV-cache candidate scoring.
- ``lora``: peft LoRA (r=8, alpha=16, dropout=0.05, q_proj/v_proj) and per-stage freezing helpers.
- ``train``: AdamW + warmup/cosine, grad accumulation, early stopping, time budget, resumable checkpoints.
- ``stages``: finished stages on disk keyed by what determines them (shared between methods, resumable).
- ``yesno`` / ``ctr_method``: the CTR prompt scorer and the base class of ``icl``, ``tallrec``, ``collm``.
- ``synthetic``: planted-answer CTR splits for tests and benchmarks.
"""
