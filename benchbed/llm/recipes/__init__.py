"""Recipes: one per training flow (Yes/No CTR, generative retrieval, item-to-text); methods compose or
subclass them.
"""
