"""Is a difference real? Paired significance tests, confidence intervals, multiple-comparison corrections and
the smallest difference a test could detect; pure numpy/scipy, no knowledge of records or boards.

- :mod:`benchbed.stats.delong`: DeLong's test for two AUCs on the same rows (fast midrank form);
- :mod:`benchbed.stats.paired`: randomisation (sign-flip), paired t, Wilcoxon and paired bootstrap on
  per-unit values (users, rows, items);
- :mod:`benchbed.stats.multiple`: Holm and Benjamini-Hochberg adjusted p-values;
- :mod:`benchbed.stats.power`: minimum detectable difference at 80% power, t intervals over seeds.
"""

from __future__ import annotations

TESTS = ("delong", "randomisation", "t", "wilcoxon", "bootstrap")
TEST_ALIASES = {"permutation": "randomisation", "fisher": "randomisation", "paired-t": "t", "ttest": "t"}
AUC_TEST = "delong"  # AUC's default: the standard paired test for two CTR models on the same rows
UNIT_TEST = "randomisation"  # every per-unit metric's default (Smucker et al. 2007)


def canonical_test(name: str) -> str:
    """A test name or alias -> its canonical name; unknown names are a one-line usage error."""
    from benchbed.errors import ConfigError

    key = TEST_ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in TESTS:
        raise ConfigError(f"--test: unknown test {name!r}; expected one of {', '.join(TESTS)}")
    return key


def default_test(metric: str) -> str:
    """The test a metric key uses unless told otherwise: DeLong for ``auc``, randomisation for the rest."""
    return AUC_TEST if metric == "auc" else UNIT_TEST
