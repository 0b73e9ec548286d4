"""Injectors: the one way collaborative signal enters a backbone's forward pass.

Every injector turns a collated ``Batch`` (``benchbed.llm.injectors.prompts``) plus the method's signal
(vectors, ids) into the keyword arguments of the backbone's forward call (``ModelInputs``); a head
(``benchbed.llm.heads``) then runs the model on them and reduces the output. Four kinds:

- ``slots.SlotVectors``: one vector per placeholder position (CoLLM, seed 003).
- ``slots.MultiTokenSlots``: N vectors per placeholder (ILM's Q-Former tokens; an "MLP to N tokens" baseline).
- ``prefix.LayerPrefix``: per-layer prefix hidden states through each layer's own key/value projections
  (RA-Rec; plain prefix tuning is its "without ID" ablation), decoders and encoders.
- ``vocab.VocabExtension``: new user/item tokens whose embedding rows alone train, with a head restricted to
  one token type (CLLM4Rec).
"""

from benchbed.llm.injectors.base import Injector, ModelInputs, plain_inputs

__all__ = ["Injector", "ModelInputs", "plain_inputs"]
