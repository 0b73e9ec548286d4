"""``benchbed plan``: what a run will cost (parameters, memory, FLOPs, wall time) before it runs.

Layers: ``configs`` (backbone configs as data, meta-device models), ``counts`` (total / trainable parameters),
``flops`` and ``memory`` (per batch, from the architecture), ``gpus`` (published peaks), ``ctr`` (the stages
of the Yes/No CTR methods from the real split and templates), ``estimate`` (stages x GPUs -> a plan) and
``measure`` (what the estimates are checked against: FLOP counts and the peak of live tensors).
"""
