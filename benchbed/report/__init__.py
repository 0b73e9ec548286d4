"""The HTML report: one self-contained file with every board, its figures and what produced it."""
