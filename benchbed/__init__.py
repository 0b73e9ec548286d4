"""benchbed: one harness for recommenders that feed collaborative-filtering embeddings into LLMs."""

__version__ = "0.1.0"
