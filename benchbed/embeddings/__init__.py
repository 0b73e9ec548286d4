"""Services below methods and baselines: the content-keyed ID-embedding cache."""
