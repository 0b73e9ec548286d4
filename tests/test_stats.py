"""benchbed.stats: DeLong against its definition and a bootstrap, power and size of every paired test on
planted data, Holm / Benjamini-Hochberg against hand-worked tables, a run against itself."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from benchbed.errors import ConfigError, DataError
from benchbed.stats import canonical_test, default_test
from benchbed.stats.delong import (
    delong_from_components,
    delong_test,
    mean_components,
    structural_components,
    structural_components_direct,
)
from benchbed.stats.multiple import adjust, benjamini_hochberg, holm
from benchbed.stats.paired import (
    bootstrap_auc_difference,
    bootstrap_test,
    paired_t_test,
    randomisation_p,
    randomisation_test,
    wilcoxon_test,
)
from benchbed.stats.power import minimum_detectable_difference, paired_se, t_interval


def _ctr_rows(n: int, gain: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and two correlated score vectors; model b sees the label ``gain`` more clearly than a."""
    y = (rng.random(n) < 0.45).astype(np.int64)
    shared = rng.normal(size=n)
    a = 0.6 * y + shared + 0.7 * rng.normal(size=n)
    b = (0.6 + gain) * y + shared + 0.7 * rng.normal(size=n)
    return y, np.round(a, 1), np.round(b, 1)  # rounded: ties, which the midranks must handle


def test_delong_fast_equals_direct_definition_with_ties() -> None:
    rng = np.random.default_rng(1)
    y, a, b = _ctr_rows(400, 0.3, rng)
    fast_a, fast_b = structural_components(y, np.vstack([a, b]))
    for fast, scores in ((fast_a, a), (fast_b, b)):
        direct = structural_components_direct(y, scores)
        np.testing.assert_allclose(fast.v10, direct.v10, rtol=0, atol=1e-9)
        np.testing.assert_allclose(fast.v01, direct.v01, rtol=0, atol=1e-9)
        assert fast.auc == pytest.approx(direct.auc, abs=1e-12)
    from sklearn.metrics import roc_auc_score

    assert fast_a.auc == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    slow = delong_from_components(structural_components_direct(y, a), structural_components_direct(y, b))
    quick = delong_test(y, a, b)
    assert quick.se == pytest.approx(slow.se, abs=1e-9)
    assert quick.p_value == pytest.approx(slow.p_value, abs=1e-9)


@pytest.mark.parametrize("gain", [0.02, 0.08])
def test_delong_p_agrees_with_paired_bootstrap(gain: float) -> None:
    y, a, b = _ctr_rows(1000, gain, np.random.default_rng(7))
    result = delong_test(y, a, b)
    diff, se, p_boot = bootstrap_auc_difference(y, a, b, draws=2000, seed=3)
    assert diff == pytest.approx(result.difference, abs=1e-12)
    assert 0.01 < result.p_value < 0.6  # a region where the two can disagree
    assert abs(result.p_value - p_boot) < 0.02
    assert result.ci_low < result.difference < result.ci_high


def test_delong_detects_a_planted_gain_and_not_itself() -> None:
    y, a, b = _ctr_rows(500, 0.6, np.random.default_rng(2))
    assert delong_test(y, b, a).p_value < 0.01
    assert delong_test(y, b, a).difference > 0
    same = delong_test(y, a, a)
    assert (same.difference, same.p_value, same.ci_low, same.ci_high) == (0.0, 1.0, 0.0, 0.0)


def test_delong_over_seeds_averages_components() -> None:
    rng = np.random.default_rng(3)
    y, a, _ = _ctr_rows(300, 0.0, rng)
    seeds = structural_components(y, np.vstack([a + 0.3 * rng.normal(size=a.size) for _ in range(3)]))
    mean = mean_components(seeds)
    assert mean.auc == pytest.approx(np.mean([s.auc for s in seeds]), abs=1e-12)
    with pytest.raises(DataError, match="both positive and negative"):
        structural_components(np.ones(5), np.arange(5.0))


def _per_user(n: int, gain: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-user metric values (like NDCG@10 in [0, 1]) of two systems; b is ``gain`` better in expectation."""
    base = rng.beta(2, 5, size=n)
    a = np.clip(base + 0.15 * rng.normal(size=n), 0, 1)
    b = np.clip(base + gain + 0.15 * rng.normal(size=n), 0, 1)
    return a, b


def test_planted_per_user_gain_is_detected_by_every_test() -> None:
    a, b = _per_user(500, 0.04, np.random.default_rng(4))
    results = [
        randomisation_test(b, a, seed=1),
        paired_t_test(b, a),
        wilcoxon_test(b, a, seed=1),
        bootstrap_test(b, a, seed=1),
    ]
    for r in results:
        assert r.p_value < 0.01, r
        assert r.difference == pytest.approx(float(np.mean(b - a)))
        assert 0 < r.ci_low < r.difference < r.ci_high, r
        assert r.n == 500


def test_size_of_each_test_on_exchangeable_nulls() -> None:
    """400 simulated nulls: each test rejects at alpha 0.05 at a rate in [0.025, 0.08]."""
    rng = np.random.default_rng(5)
    sims, n = 400, 60
    base = rng.beta(2, 5, size=(sims, n))
    a = base + 0.1 * rng.normal(size=(sims, n))  # the two systems' values are exchangeable per unit
    b = base + 0.1 * rng.normal(size=(sims, n))
    rates = {
        "t": np.mean(sps.ttest_rel(a, b, axis=1).pvalue < 0.05),  # scipy, vectorised over simulations
        "wilcoxon": np.mean(sps.wilcoxon(a - b, axis=1).pvalue < 0.05),
        "randomisation": np.mean(
            [randomisation_p(a[i] - b[i], np.ones(n), draws=2000, seed=i) < 0.05 for i in range(sims)]
        ),
        "bootstrap": np.mean(
            [bootstrap_test(a[i], b[i], draws=1000, seed=i).p_value < 0.05 for i in range(sims)]
        ),
    }
    # and our wrappers agree with scipy on one simulation
    assert paired_t_test(a[0], b[0]).p_value == pytest.approx(sps.ttest_rel(a[0], b[0]).pvalue)
    assert wilcoxon_test(a[0], b[0]).p_value == pytest.approx(sps.wilcoxon(a[0] - b[0]).pvalue)
    # DeLong: 400 pairs of exchangeable score vectors on the same 200 labeled rows, all ranked in one call
    y = (rng.random(200) < 0.4).astype(np.int64)
    shared = rng.normal(size=(sims, 200)) + 0.5 * y
    scores = np.concatenate([shared + rng.normal(size=(sims, 200)), shared + rng.normal(size=(sims, 200))])
    comps = structural_components(y, scores)
    rates["delong"] = np.mean(
        [delong_from_components(comps[i], comps[sims + i]).p_value < 0.05 for i in range(sims)]
    )
    for test, rate in rates.items():
        assert 0.025 <= rate <= 0.08, (test, rate)


def test_randomisation_exact_when_small_and_weighted() -> None:
    d = np.array([0.5, 0.3, 0.2, -0.1])
    # all 16 sign vectors: |sum| >= 0.9 for (+,+,+,-), (+,+,+,+) and their mirrors: 4 of 16
    assert randomisation_p(d, np.ones(4), draws=10_000) == pytest.approx(4 / 16)
    # weights: a unit with weight 0 does not count: |±1 ±1| >= 2 for 2 of the 4 signs of the others, x2
    assert randomisation_p(np.array([1.0, 1.0, 5.0]), np.array([1.0, 1.0, 0.0])) == pytest.approx(4 / 8)
    assert randomisation_p(np.array([1.0, 1.0, 5.0]), np.ones(3)) == pytest.approx(2 / 8)
    same = randomisation_test(np.arange(5.0), np.arange(5.0))
    assert (same.difference, same.p_value, same.ci_low, same.ci_high) == (0.0, 1.0, 0.0, 0.0)
    for fn in (paired_t_test, wilcoxon_test, bootstrap_test):
        r = fn(np.arange(30.0), np.arange(30.0))
        assert (r.difference, r.p_value) == (0.0, 1.0)
    with pytest.raises(DataError, match="same"):
        randomisation_test(np.ones(3), np.ones(4))


def test_holm_and_bh_known_answers() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted .005*4=.02, .01*3=.03, .03*2=.06, .04*1=.04 -> running max .06; back in input order
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    # BH: .005*4/1=.02, .01*4/2=.02, .03*4/3=.04, .04*4/4=.04 -> running min from the top
    np.testing.assert_allclose(benjamini_hochberg(p), [0.02, 0.04, 0.04, 0.02])
    q = [0.01, 0.02, 0.03, 0.04, 0.05]
    np.testing.assert_allclose(holm(q), [0.05, 0.08, 0.09, 0.09, 0.09])
    np.testing.assert_allclose(benjamini_hochberg(q), [0.05] * 5)
    np.testing.assert_allclose(holm([0.3, 0.6]), [0.6, 0.6])  # capped by the running max, then 1
    np.testing.assert_allclose(holm([0.7, 0.9]), [1.0, 1.0])
    np.testing.assert_allclose(adjust(p, "none"), p)
    with pytest.raises(ConfigError, match="--correction"):
        adjust(p, "bonferroni")


def test_power_and_intervals() -> None:
    # (1.95996 + 0.84162) * se
    assert minimum_detectable_difference(0.01) == pytest.approx(0.0280158, abs=1e-6)
    d = np.array([0.1, -0.1, 0.2, 0.0])
    assert paired_se(d) == pytest.approx(np.std(d, ddof=1) / 2)
    assert paired_se(d, np.ones(4)) == pytest.approx(paired_se(d))
    lo, hi = t_interval([0.5, 0.6, 0.7])  # type: ignore[misc]
    assert (lo + hi) / 2 == pytest.approx(0.6)
    assert hi - lo == pytest.approx(2 * sps.t.ppf(0.975, 2) * 0.1 / np.sqrt(3))
    assert t_interval([0.5]) is None


def test_test_names() -> None:
    assert canonical_test("permutation") == "randomisation"
    assert default_test("auc") == "delong" and default_test("ndcg@10") == "randomisation"
    with pytest.raises(ConfigError, match="unknown test 'anova'"):
        canonical_test("anova")
