"""OpenP5-style generative retrieval: item indexing, training examples, template banks, shared LM machinery."""
