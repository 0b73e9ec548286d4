"""Yes/No CTR scoring: the prompt scorer, the decoder and masked-encoder answer heads, and the fast
scoring paths.
"""
