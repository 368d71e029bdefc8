"""Unit-clustered statistics (empirical/clustered_stats.py)."""

import numpy as np
import pytest

from fvtrust.empirical.experiments.sanity import bootstrap_ci
from fvtrust.empirical.observers.statistics import (
    ClusteredEstimate,
    VarianceComponents,
    clustered_mean,
    hierarchical_bootstrap_ci,
    paired_differences,
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


# ------------------------------------------------------------------ paired comparisons, power


def _paired_problem(seed: int, n_units: int = 16, n_trials: int = 20, effect: float = 0.1,
                    spread: float = 0.3) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Two conditions on the same units and trials: each unit's own difficulty (spread) is
    shared by both, condition a is `effect` more often right, and each trial is its own draw."""
    rng = np.random.default_rng(seed)
    base = np.clip(0.6 + spread * (rng.random(n_units) - 0.5), 0.05, 0.85)
    u = [rng.random(n_trials) for _ in range(n_units)]  # a trial's difficulty, shared by both
    a = [(x < p + effect).astype(float) for x, p in zip(u, base, strict=True)]
    b = [(x < p).astype(float) for x, p in zip(u, base, strict=True)]
    return a, b


def test_a_paired_difference_is_the_difference_of_the_cells_and_narrower_than_them():
    a, b = _paired_problem(0)
    d = paired_differences(a, b)
    assert clustered_mean(d) == pytest.approx(clustered_mean(a) - clustered_mean(b))
    lo, hi = hierarchical_bootstrap_ci(d, n_boot=2000)
    (alo, ahi), (blo, bhi) = hierarchical_bootstrap_ci(a), hierarchical_bootstrap_ci(b)
    assert lo > 0  # the shared unit and trial cancel: the effect is decided ...
    assert alo < bhi  # ... where the two cells' own intervals overlap
    assert hi - lo < 0.7 * min(ahi - alo, bhi - blo)


@pytest.mark.parametrize("a, b, message", [
    ([[1.0, 0.0]], [[1.0, 0.0], [1.0]], "the same units: 1 vs 2"),
    ([[1.0, 0.0], [1.0]], [[1.0, 0.0], [1.0, 1.0]], r"the same trials: units \[1\] differ"),
])
def test_unpaired_cells_are_refused(a, b, message):
    with pytest.raises(ValueError, match=message):
        paired_differences(a, b)


def test_variance_components_recover_the_design():
    rng = np.random.default_rng(5)
    n, m, sb, sw = 400, 30, 0.04, 0.2  # variances: between units, between trials of a unit
    values = [rng.normal(mu, np.sqrt(sw), m) for mu in rng.normal(0, np.sqrt(sb), n)]
    parts = VarianceComponents.of(values)
    assert parts.between == pytest.approx(sb, rel=0.2)
    assert parts.within == pytest.approx(sw, rel=0.05)
    assert (parts.n_units, parts.trials) == (n, m)


@pytest.mark.parametrize("seed", range(3))
def test_the_planned_half_width_is_the_bootstrap_s(seed):
    a, b = _paired_problem(seed, n_units=24)
    d = paired_differences(a, b)
    parts = VarianceComponents.of(d)
    lo, hi = hierarchical_bootstrap_ci(d, n_boot=4000, seed=seed)
    assert parts.half_width(24, 20) == pytest.approx((hi - lo) / 2, rel=0.2)
    # planned from this pilot, a new run of that many units reaches about ±3 pp
    need = parts.units_needed(0.03)
    assert need > 24
    big = paired_differences(*_paired_problem(seed + 100, n_units=need))
    blo, bhi = hierarchical_bootstrap_ci(big, n_boot=2000, seed=seed)
    assert 0.02 <= (bhi - blo) / 2 <= 0.036
    # more trials per unit help only with the within-unit part
    assert parts.units_needed(0.03, trials=50) < need


@pytest.mark.parametrize("values, kwargs, message", [
    ([[1.0, 0.0]], {}, "need >= 2 units of >= 2 trials"),
    ([[1.0, 0.0], [1.0]], {}, "need >= 2 units of >= 2 trials"),
    ([[1.0, 0.0], [1.0, 1.0]], {"half_width": 0.0}, "half_width must lie in"),
    ([[1.0, 0.0], [1.0, 1.0]], {"trials": 0}, "trials per unit must be >= 1"),
])
def test_bad_power_inputs_are_named(values, kwargs, message):
    with pytest.raises(ValueError, match=message):
        VarianceComponents.of(values).units_needed(**kwargs)
