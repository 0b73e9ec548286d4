"""ILM (seed 005): Q-Former item encoder, stage-1 pretraining, generative and item-to-text stage 2."""
