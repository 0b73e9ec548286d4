"""The ``tiny`` backbones are initialised by benchbed's own seeded code: same weights whatever the library's
init does, and a revision that is a digest of those weights (a known answer pinned here)."""

from __future__ import annotations

import torch

from benchbed.llm.backbone.loader import build_tiny, load_backbone
from benchbed.llm.backbone.tiny_gpt2 import build_tiny_gpt2
from benchbed.llm.backbone.tiny_init import init_tiny_weights, weights_digest

# Known answers: the digest of the initial weights of each preset. If this changes, every committed record
# of a tiny backbone stops reproducing -- bump it only together with re-running those records.
TINY_WEIGHTS = "d58fee99d616"
TINY_GPT2_WEIGHTS = "3252dafb6aa3"


def test_tiny_weights_are_a_known_answer() -> None:
    model, _ = build_tiny()
    assert weights_digest(model) == TINY_WEIGHTS
    gpt2, _ = build_tiny_gpt2()
    assert weights_digest(gpt2) == TINY_GPT2_WEIGHTS


def test_weights_do_not_depend_on_the_library_init_or_global_rng() -> None:
    model, _ = build_tiny()
    reference = weights_digest(model)
    torch.manual_seed(12345)
    model.apply(model._init_weights)  # what a library release might do differently
    assert weights_digest(model) != reference
    init_tiny_weights(model, 0)
    assert weights_digest(model) == reference
    other, _ = build_tiny(seed=1)
    assert weights_digest(other) != reference


def test_init_shapes_norms_and_ties() -> None:
    model, _ = build_tiny()
    params = dict(model.named_parameters())
    norms = [p for n, p in params.items() if "norm" in n]
    assert norms and all(torch.equal(p, torch.ones_like(p)) for p in norms)
    emb = model.get_input_embeddings().weight
    assert abs(float(emb.detach().std()) - 0.02) < 0.002
    assert model.get_output_embeddings().weight.data_ptr() == emb.data_ptr()  # tied head stays tied


def test_revision_names_the_weights() -> None:
    info = load_backbone("tiny").info
    assert info["revision"].startswith("tiny-seed0-") and info["kind"] == "preset"
