"""The computed results table (theory/table.py). The one place a literal expectation lives."""

import json

import pytest

from fvtrust.theory.table import compute_table

#: Rows: class → verdicts for tasks A, B, C, D (I impossible, R reliable, ? no proof either
#: way). From the brief; small-L Lipschitz 2-AFC: proved on the cube by z3 (d = 2, κ = 1.2).
EXPECTED = {
    "all": "IIII", "relu": "IIII", "erm": "IIII", "lipschitz_large": "IIII",
    "lipschitz_small": "RRRR", "monotone": "IIII", "convex": "IIII", "affine": "IIIR",
    "affine_d1": "RRRR", "constant": "RRRR",
}


@pytest.fixture(scope="module")
def table():
    return compute_table(samples=4)


def test_table_has_the_expected_pattern(table):
    assert table.pattern() == EXPECTED


def test_impossible_entries_are_verified_witnesses(table):
    for e in table.entries:
        if e.verdict == "impossible":
            assert e.checks and all(e.checks.values()), e
            assert e.score >= 0.498 if e.task != "C" else e.score == 0.5


def test_table_serializes(table, tmp_path):
    paths = table.write(tmp_path)
    data = json.loads(paths[0].read_text())
    assert len(data["entries"]) == 40
    assert "impossible" in paths[1].read_text() and r"\begin{tabular}" in paths[2].read_text()


def test_reliable_entries_are_the_proven_closed_forms(table):
    from fvtrust.theory.classes.lipschitz import worst_case_error
    from fvtrust.theory.tasks import Task

    for task in (Task.SUP, Task.QUERY, Task.LOCAL):
        e = table.entry("lipschitz_small", task)
        assert e.score == pytest.approx(worst_case_error(1.2, 2, task)[0]) and "proven" in e.source
    assert table.entry("lipschitz_small", "A").score == pytest.approx(0.2)  # κ − 1 in d = 2
    assert table.entry("lipschitz_small", "D").score == pytest.approx(0.03)  # κρ/(2d)
    assert table.entry("affine", "D").score == pytest.approx(0.05)
    for e in table.entries:
        if e.verdict == "reliable":
            assert all(e.checks.values()), e


def test_small_lipschitz_2afc_is_a_proof_on_the_cube_not_a_sample(table):
    e = table.entry("lipschitz_small", "C")
    assert e.verdict == "reliable" and e.score == 1.0 and "z3 on the cube" in e.source
    assert e.checks == {"sampled decoder within the proven bound": True}


def test_open_cells_never_show_a_sampled_score():
    from fvtrust.theory.classes import KAPPA_SMALL, Lipschitz
    from fvtrust.theory.table import compute_entry
    from fvtrust.theory.tasks import Task

    cls = Lipschitz(KAPPA_SMALL)
    cls.proven_worst_case = lambda task: None  # type: ignore[method-assign]
    e = compute_entry(cls, Task.AFC, samples=1)
    assert e.verdict == "open" and e.cell == "? open" and "no proven bound" in e.source


def test_a_bound_above_chance_is_never_called_reliable():
    from fvtrust.theory.classes import Constant
    from fvtrust.theory.classes.base import ProvenBound
    from fvtrust.theory.table import compute_entry
    from fvtrust.theory.tasks import Task

    for score, verdict in ((0.6, "open"), (0.49, "reliable")):
        cls = Constant()
        cls.proven_worst_case = lambda task, s=score: ProvenBound(s, True, "test")  # type: ignore[method-assign]
        assert compute_entry(cls, Task.QUERY, samples=1).verdict == verdict


def test_sampled_decoder_score_is_measured_not_assumed():
    from fvtrust.theory.classes import KAPPA_SMALL, Lipschitz
    from fvtrust.theory.table import decoder_score
    from fvtrust.theory.tasks import Task

    sampled, _ = decoder_score(Lipschitz(KAPPA_SMALL), Task.QUERY, 4)
    assert 0.01 < sampled <= 0.2 + 1e-9  # positive (the decoder cannot read f) and within the proof


def test_every_impossible_cell_says_where_it_was_verified(table):
    for e in table.entries:
        if e.verdict == "impossible":
            assert "on the cube" in e.source or "exact on the" in e.source, e
            if e.class_key in ("relu", "erm"):
                assert "MILP" in e.source, e
            if e.class_key in ("monotone", "affine") or (e.class_key == "convex" and e.task != "D"):
                assert "z3" in e.source, e


def test_every_network_cell_carries_its_certified_eta_over_R(table):
    """The MILP's extremes are exact up to η: each network cell stores η/R of its own pair
    (recomputed here from the witness), the table its maximum, table.json both."""
    from fvtrust.theory.classes import all_classes
    from fvtrust.theory.tasks import Task

    classes = {c.key: c for c in all_classes()}
    network_cells = [e for e in table.entries if e.class_key in ("relu", "erm")]
    assert len(network_cells) == 8
    for e in network_cells:
        w = classes[e.class_key].witness(Task(e.task), table.eps)
        assert e.eta_over_R == pytest.approx(w.phi.eta / w.R, rel=1e-6) and 0 < e.eta_over_R < 1e-3
    assert all(e.eta_over_R is None for e in table.entries if e not in network_cells)
    data = json.loads(table.to_json())
    assert data["max_eta_over_R"] == max(e.eta_over_R for e in network_cells)
    assert f"η/R ≤ {data['max_eta_over_R']:.1e}" in table.to_markdown()
