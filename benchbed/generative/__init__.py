"""OpenP5-style generative retrieval: item index, training examples, template banks, shared LM machinery."""
