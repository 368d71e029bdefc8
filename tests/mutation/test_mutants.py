"""The mutation suite stays applicable: every mutant's snippet occurs exactly once, its tests
exist, and the last recorded run killed at least 95 % of the mutants."""

import json
from pathlib import Path

import pytest

from tests.mutation.mutants import MUTANTS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.key for m in MUTANTS])
def test_mutant_applies_to_the_current_code(mutant):
    assert (ROOT / mutant.path).read_text().count(mutant.old) == 1, mutant.key
    for t in mutant.tests:
        assert (ROOT / t.split("::")[0]).exists(), t


def test_recorded_kill_ratio():
    data = json.loads((ROOT / "tests" / "mutation" / "results.json").read_text())
    assert {r["key"] for r in data["results"]} == {m.key for m in MUTANTS}
    assert data["kill_ratio"] >= 0.95, [r["key"] for r in data["results"] if not r["killed"]]
