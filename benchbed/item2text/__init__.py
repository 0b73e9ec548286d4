"""Item-to-text generation (ELM / ILM style) from item metadata: facts, sub-tasks, templates, item split,
examples, planted data, and the LM recipe the item2text baselines share (no methods/tasks imports)."""
