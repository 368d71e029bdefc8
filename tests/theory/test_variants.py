"""The table under the Φ variants (theory/variants.py): max-only and approximate extremes."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fvtrust.theory.classes import KAPPA_SMALL, Affine, Lipschitz
from fvtrust.theory.tasks import LOCAL_RADIUS, Task
from fvtrust.theory.variants import (
    TABLE_ETA,
    ApproxBandDecoder,
    MaxValueDecoder,
    SecantDecoder,
    Variant,
    compute_variant_table,
    scale_pair,
)
from fvtrust.theory.visualization import from_extremes

SMALL = Lipschitz(KAPPA_SMALL)
D1 = Affine(d=1)


@pytest.fixture(scope="module")
def table():
    return compute_variant_table(samples=3)


def test_patterns(table):
    assert table.pattern(Variant.MAX_ONLY) == {
        "all": "IIII", "relu": "IIII", "erm": "IIII", "lipschitz_large": "IIII",
        "lipschitz_small": "IIIR", "monotone": "IIII", "convex": "IIII", "affine": "IIIR",
        "affine_d1": "IIRR", "constant": "RRRR"}
    assert table.pattern(Variant.APPROX) == {
        "all": "IIII", "relu": "IIII", "erm": "IIII", "lipschitz_large": "IIII",
        "lipschitz_small": "RRRR", "monotone": "IIII", "convex": "IIII", "affine": "IIIR",
        "affine_d1": "RRRR", "constant": "RRRR"}


def test_impossible_cells_carry_over_with_the_same_verified_pair(table):
    for e in table.base.entries:
        if e.verdict == "impossible":
            for v in Variant:
                c = table.entry(v, e.class_key, e.task)
                assert c.verdict == "impossible" and c.checks == e.checks and "carried over" in c.source


def test_reliable_cells_are_proven_and_cross_checked(table):
    e = table.entry(Variant.APPROX, "lipschitz_small", "A")
    assert e.score == pytest.approx(KAPPA_SMALL / (1 - 2 * TABLE_ETA) - 1) and "proven bound" in e.source
    assert table.entry(Variant.MAX_ONLY, "lipschitz_small", "D").score == pytest.approx(0.06)
    assert table.entry(Variant.APPROX, "lipschitz_small", "D").score == pytest.approx(0.06)
    assert table.entry(Variant.APPROX, "affine", "D").score == pytest.approx(LOCAL_RADIUS)
    assert table.entry(Variant.MAX_ONLY, "affine_d1", "D").score == pytest.approx(LOCAL_RADIUS)
    for v in Variant:
        for e in table.entries[v.value]:
            if e.verdict == "reliable":
                assert all(e.checks.values()) and "proven" in e.source, e
    text = table.to_markdown()
    assert "max-only (A)" in text and "approximate (D)" in text


@given(st.floats(-3, 3), st.sampled_from([1e-3, 0.01, 0.1]))
def test_scale_pair_defeats_every_prediction(p, eps):
    for cls in (SMALL, D1):
        pair = scale_pair(cls.d, np.zeros(cls.d), eps)
        z = pair.z[None]
        worst = max(abs(p - pair.f_one(z)[0]) / pair.phi_one.range,
                    abs(p - pair.f_eps(z)[0]) / pair.phi_eps.range)
        assert worst >= pair.lower_bound() - 1e-12
        assert pair.lower_bound() == pytest.approx((1 - eps) / (1 + eps))
    assert all(scale_pair(2, np.zeros(2), 1e-3).verify(SMALL).values())


@given(D1.strategy(), st.floats(0, 1), st.floats(0, 1), st.lists(st.floats(0, 1), min_size=1, max_size=8))
def test_secant_is_exact_for_every_admissible_answer(f, t_min, t_max, queries):
    phi = D1.visualize(f)
    if phi.range == 0:
        return
    # the ηR-sublevel sets of an affine unit in d = 1 are intervals of length η at the extremes
    step = TABLE_ETA * np.sign(0.5 - phi.x_max[0])
    x_max = phi.x_max + step * t_max
    x_min = phi.x_min - step * t_min
    view = from_extremes(x_min, x_max, float(f(x_min[None])[0]), float(f(x_max[None])[0]))
    assert f(x_max[None])[0] >= phi.v_max - TABLE_ETA * phi.range - 1e-12
    q = np.array(queries)[:, None]
    assert np.allclose(SecantDecoder()(view, q), f(q), atol=1e-9 * max(1.0, phi.range))


@given(SMALL.strategy(), st.integers(0, 2**31 - 1))
def test_band_from_approximate_extremes_meets_its_bound_off_the_grid(f, seed):
    rng = np.random.default_rng(seed)
    pts = rng.random((3000, 2))
    phi = SMALL.visualize(f)
    values = f(pts)
    R = phi.range
    near_max = np.flatnonzero(values >= phi.v_max - TABLE_ETA * R)
    near_min = np.flatnonzero(values <= phi.v_min + TABLE_ETA * R)
    candidates = [(phi.x_min, phi.v_min, phi.x_max, phi.v_max)]
    if len(near_max) and len(near_min):
        i, j = rng.choice(near_min), rng.choice(near_max)
        candidates.append((pts[i], values[i], pts[j], values[j]))
    bound = KAPPA_SMALL / (1 - 2 * TABLE_ETA) - 1
    for a, va, b, vb in candidates:
        view = from_extremes(a, b, float(va), float(vb))
        err = np.abs(ApproxBandDecoder(KAPPA_SMALL, TABLE_ETA)(view, pts) - values)
        assert err.max() <= bound * R + 1e-9


@given(st.sampled_from([SMALL, Affine(d=2), D1]).flatmap(lambda c: st.tuples(st.just(c), c.strategy())))
def test_max_value_decoder_near_x_max_meets_its_bound(cls_and_f):
    cls, f = cls_and_f
    phi = cls.visualize(f)
    rng = np.random.default_rng(0)
    direction = rng.standard_normal((500, cls.d))
    near = np.clip(phi.x_max + direction / np.abs(direction).sum(1, keepdims=True)
                   * LOCAL_RADIUS * rng.random((500, 1)), 0, 1)
    bound = KAPPA_SMALL * LOCAL_RADIUS / cls.d if cls is SMALL else LOCAL_RADIUS
    err = np.abs(MaxValueDecoder()(phi.max_only(), near) - f(near))
    assert err.max() <= bound * phi.range + 1e-9


def test_eta_must_be_below_one_half():
    with pytest.raises(ValueError, match=r"eta must lie in \[0, 0.5\), got 0.5"):
        compute_variant_table(eta=0.5)


def test_max_only_2afc_flip_pair_for_small_L_is_verified_on_the_cube():
    from fvtrust.theory.tasks import AFC_MARGIN
    from fvtrust.theory.variants import max_only_afc_pair

    pair = max_only_afc_pair(SMALL)
    assert pair is not None and all(pair.verify(SMALL).values())
    assert pair.flip() >= AFC_MARGIN and pair.lower_bound() == 0.5
    # the two members differ only where the decoder cannot look: their minima
    assert not np.array_equal(pair.phi_one.x_min, pair.phi_two.x_min)
    assert pair.phi_one.max_only().same_as(pair.phi_two.max_only())
    assert max_only_afc_pair(Lipschitz(1.1)) is None  # flip below the margin: no pair, no claim


def test_approximate_2afc_is_exact_on_the_cube_and_fails_for_larger_eta(table):
    from fractions import Fraction

    from fvtrust.theory.classes.lipschitz import afc_margins

    e = table.entry(Variant.APPROX, "lipschitz_small", Task.AFC)
    assert e.verdict == "reliable" and e.score == 1.0 and "11/49" in e.source
    m = afc_margins(KAPPA_SMALL / (1 - 2 * TABLE_ETA), 2, slack=TABLE_ETA / (1 - 2 * TABLE_ETA))
    assert m.band_decoder_wrong == Fraction(11, 49)
    # η = 0.05: the widened band misorders gaps past R/4 — no proof, the cell is open
    wide = afc_margins(KAPPA_SMALL / 0.9, 2, slack=0.05 / 0.9)
    assert wide.band_decoder_wrong >= Fraction(1, 4)
    open_cell = compute_variant_table(classes=[SMALL], eta=0.05, samples=1).entry(
        Variant.APPROX, "lipschitz_small", Task.AFC)
    assert open_cell.verdict == "open" and open_cell.cell == "? open"
    assert open_cell.source == "no proof either way"


def test_the_table_is_written(table, tmp_path):
    paths = table.write(tmp_path)
    assert "lipschitz_small" in paths[0].read_text() and "max-only (C)" in paths[1].read_text()
    assert "multicolumn" in paths[2].read_text()


@given(st.sampled_from([SMALL, Affine(d=2)]).flatmap(lambda c: st.tuples(st.just(c), c.strategy())),
       st.integers(0, 2**31 - 1))
def test_approximate_max_value_near_x_max_meets_its_bound(cls_and_f, seed):
    cls, f = cls_and_f
    phi = cls.visualize(f)
    rng = np.random.default_rng(seed)
    pts = rng.random((3000, cls.d))
    values = f(pts)
    admissible = np.flatnonzero(values >= phi.v_max - TABLE_ETA * phi.range)
    shown = [phi.v_max] + ([float(values[rng.choice(admissible)])] if len(admissible) else [])
    near = pts[np.abs(pts - phi.x_max).sum(1) <= LOCAL_RADIUS]
    near_bound = KAPPA_SMALL * LOCAL_RADIUS / cls.d if cls is SMALL else LOCAL_RADIUS
    for v in shown:
        err = np.abs(v - f(near)) if len(near) else np.zeros(1)
        assert err.max() <= max(TABLE_ETA, near_bound) * phi.range + 1e-9
