"""No answer leaks into an input (issue 22, item 3): ILM's semantic input embeds ``semantic_fields`` (the
title by default), never the item columns that item-to-text sub-tasks ask for.

Planted data: titles are nonsense syllables and genres are the target of the ``genres`` sub-task. Before the
fix the builder read a parameter that never exists (``text_fields``), so every item column was embedded and a
1-nearest-neighbour probe on the semantic vectors recovered a held-out item's genres.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_method_ilm import write_planted  # noqa: E402  (tests/ is on sys.path under pytest)

from benchbed.api import RunContext
from benchbed.data.prepare import prepare_split
from benchbed.methods import build_method
from benchbed.methods.ilm.inputs import build_inputs, item_texts, sentence_embeddings
from benchbed.methods.ilm.params import ILMParams


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory):
    return prepare_split(
        str(write_planted(tmp_path_factory.mktemp("leak") / "planted")), "leave-one-out"
    ).split


def _genre_probe(vectors: np.ndarray, genres: list[str]) -> float:
    """Share of items whose nearest other item (cosine) has the same genre set."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    nearest = sim.argmax(axis=1)
    return float(np.mean([genres[i] == genres[j] for i, j in enumerate(nearest)]))


def test_semantic_input_embeds_the_title_only(split) -> None:
    params = dict(build_method("ilm", {"input": "semantic"}, task="item2text").params)
    assert params["semantic_fields"] == "title"
    tables = build_inputs(split, RunContext(), ILMParams.view(params))
    assert tables.identity["semantic"]["fields"] == ["title"]
    titles = sentence_embeddings(item_texts(split, ["title"]), str(params["semantic_encoder"]))
    got = tables.item.numpy()
    scale = float(np.sqrt(np.mean(np.square(titles))))
    np.testing.assert_allclose(got, titles / scale, rtol=1e-5, atol=1e-6)

    # the probe that found the leak: genre words in the input make neighbours share genres
    genres = [str(g) for g in split.data.items["genres"]]
    everything = sentence_embeddings(item_texts(split, None), str(params["semantic_encoder"]))
    assert _genre_probe(everything, genres) > _genre_probe(got, genres) + 0.3
