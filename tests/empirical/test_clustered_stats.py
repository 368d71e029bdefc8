"""Unit-clustered statistics (empirical/clustered_stats.py)."""

import numpy as np
import pytest

from fvtrust.empirical.experiments.sanity import bootstrap_ci
from fvtrust.empirical.observers.statistics import (
    ClusteredEstimate,
    clustered_mean,
    hierarchical_bootstrap_ci,
)


def _clustered_problem(seed: int, n_units: int = 12, n_trials: int = 20) -> list[np.ndarray]:
    """An uninformative observer whose trials are strongly clustered: each unit is mostly
    right or mostly wrong (p = 0.1 or 0.9), so the population accuracy is exactly 1/2."""
    rng = np.random.default_rng(seed)
    p = rng.choice([0.1, 0.9], size=n_units)
    return [(rng.random(n_trials) < pu).astype(float) for pu in p]


def test_uninformative_clustered_observer_ci_covers_chance():
    problems = [_clustered_problem(seed) for seed in range(120)]
    hier = [hierarchical_bootstrap_ci(v, n_boot=1000, seed=s) for s, v in enumerate(problems)]
    naive = [bootstrap_ci(np.concatenate(v), n_boot=1000, seed=s) for s, v in enumerate(problems)]
    hier_cover = np.mean([lo <= 0.5 <= hi for lo, hi in hier])
    naive_cover = np.mean([lo <= 0.5 <= hi for lo, hi in naive])
    # The clustered interval has (about) its nominal coverage; the trial-level one does not —
    # which is why the psychophysics never uses it.
    assert hier_cover >= 0.88, hier_cover
    assert naive_cover < 0.6, naive_cover


def test_clustered_mean_weighs_units_equally():
    assert clustered_mean([[1.0, 1.0, 1.0, 1.0], [0.0]]) == pytest.approx(0.5)


def test_one_unit_is_the_trial_bootstrap_and_interval_contains_mean():
    values = np.random.default_rng(3).random(40)
    lo, hi = hierarchical_bootstrap_ci([values], n_boot=4000, seed=1)
    lo2, hi2 = bootstrap_ci(values, n_boot=4000, seed=1)
    assert lo == pytest.approx(lo2, abs=0.02) and hi == pytest.approx(hi2, abs=0.02)
    est = ClusteredEstimate.of([values, values[:10]])
    assert est.ci[0] <= est.mean <= est.ci[1]
    assert (est.n_units, est.n_trials) == (2, 50)


def test_constant_trials_give_a_point_interval():
    assert hierarchical_bootstrap_ci([[1.0] * 5, [1.0] * 3]) == (1.0, 1.0)


@pytest.mark.parametrize("bad, message", [([], "at least one unit"),
                                          ([[1.0], []], r"units \[1\] have no trials"),
                                          ([[np.nan]], "NaN or infinite")])
def test_bad_clusters_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        hierarchical_bootstrap_ci(bad)
