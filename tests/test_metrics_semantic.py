"""SC (sentence-embedding cosine x100) and attribute F1 on real MiniLM embeddings (the bundled model)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchbed.errors import ConfigError, DataError
from benchbed.metrics import resolve
from benchbed.metrics.semantic import (
    attribute_f1,
    cosine_rows,
    find_attributes,
    load_encoder,
    semantic_consistency,
    set_f1,
)

REF = [
    "Toy Story (1995). Genres: Animation, Children's, Comedy.",
    "GoldenEye (1995). Genres: Action, Adventure, Thriller.",
    "The 1940s.",
]


@pytest.fixture(scope="module")
def encoder():
    return load_encoder()


def test_identical_texts_score_100_and_sc_is_symmetric(encoder) -> None:
    assert semantic_consistency(REF, REF, encoder).value == pytest.approx(100.0, abs=1e-3)
    other = ["A cartoon comedy for children.", "A spy thriller.", "It is from the forties."]
    ab = semantic_consistency(other, REF, encoder)
    ba = semantic_consistency(REF, other, encoder)
    assert ab.value == pytest.approx(ba.value, abs=1e-4) and ab.n == 3
    assert 0 < ab.value < 100


def test_sc_orders_paraphrase_above_mismatch(encoder) -> None:
    para = semantic_consistency(["Toy Story, a 1995 animated comedy for children."], REF[:1], encoder).value
    wrong = semantic_consistency(["GoldenEye, a 1995 action thriller."], REF[:1], encoder).value
    empty = semantic_consistency([""], REF[:1], encoder).value
    assert para > wrong > empty


def test_long_texts_are_pooled_by_sentence(encoder) -> None:
    long = " ".join(["Toy Story is an animated comedy about toys that come alive."] * 40)
    assert encoder._too_long([long])[0]
    emb = encoder.encode([long, REF[0]])
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert cosine_rows(emb[:1], emb[1:])[0] > 0.3


def test_encoder_info_and_registry() -> None:
    info = load_encoder().info()
    assert info["id"] == "sentence-transformers/all-MiniLM-L6-v2" and info["dim"] == 384 and info["revision"]
    assert resolve("sc").higher_is_better and resolve("attr_f1").meta["kind"] == "text"


def test_unknown_encoder_is_one_line_error() -> None:
    with pytest.raises(ConfigError, match="not installed") as err:
        load_encoder("no-such-org/no-such-sentence-model")
    assert "\n" not in str(err.value)


def test_attribute_f1() -> None:
    vocab = ["Comedy", "Drama", "Sci-Fi", "1990s", "Children's"]
    assert find_attributes("a drama and sci-fi film of the 1990s", vocab) == {"Drama", "Sci-Fi", "1990s"}
    assert find_attributes("dramatic", vocab) == frozenset()
    assert math.isnan(set_f1(set(), set())) and set_f1({"a"}, set()) == 0.0 and set_f1(set(), {"a"}) == 0.0
    assert set_f1({"a", "b"}, {"a"}) == pytest.approx(2 / 3)
    got = attribute_f1(["Comedy, Drama.", "nothing"], [frozenset({"Comedy"}), frozenset({"Drama"})], vocab)
    assert got.value == pytest.approx(100 * (2 / 3 + 0) / 2) and got.n == 2
    # a row where neither text names an attribute is undefined, not 100: an empty answer gains nothing
    got = attribute_f1(["", "Comedy"], [frozenset(), frozenset({"Comedy"})], vocab)
    assert got.value == pytest.approx(100.0) and got.n == 1
    assert math.isnan(attribute_f1([""], [frozenset()], vocab).value)
    with pytest.raises(DataError, match="attribute sets"):
        attribute_f1(["x"], [], vocab)
