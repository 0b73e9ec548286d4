"""RA-Rec (seed 002): ID representation alignment through per-layer prefixes, two towers."""
