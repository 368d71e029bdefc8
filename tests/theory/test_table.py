"""The computed results table (theory/table.py). The one place a literal expectation lives."""

import json

import pytest

from theory.table import compute_table

#: Rows: class → verdicts for tasks A, B, C, D (I impossible, R reliable). From the brief.
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
