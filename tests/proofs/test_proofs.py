"""Every proof's machine-checked steps pass, and every proof names its code and test."""

from pathlib import Path

import pytest

from fvtrust.proofs import MODULES, all_proofs
from fvtrust.proofs.base import z3_step
from fvtrust.theory.symbolic import prove

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("proof", all_proofs(), ids=MODULES)
def test_proof_passes(proof, cached_proofs):
    report = cached_proofs(proof)
    failed = [s for s in report.steps if not s.passed]
    assert report.passed, failed


@pytest.mark.parametrize("proof", all_proofs(), ids=MODULES)
def test_proof_names_existing_code_and_test(proof):
    assert (ROOT / proof.code.split(" ")[0]).exists(), proof.code
    assert (ROOT / proof.test).exists(), proof.test
    assert proof.statement.strip() and proof.proof.strip()


def test_a_false_claim_fails_with_a_counterexample():
    import sympy as sp

    x = sp.Symbol("x", real=True)
    verdict = prove(x**2 >= x, [x], [x >= 0, x <= 2])
    assert not verdict.proved and "x" in verdict.counterexample
    assert not z3_step("false", x >= 1, [x], [x >= 0]).passed


def test_construction_steps_fail_a_pair_whose_gap_is_too_small():
    import dataclasses

    from fvtrust.proofs.base import construction_steps
    from fvtrust.theory.classes import Monotone

    cls = Monotone()
    loose = cls.counterexample_pair(cls.canonical_phi(), [0.5, 0.3], 0.2)  # gap 1 - 0.2
    # Claim eps = 1e-3 for it: every decoder is then held to R/2 - 1e-3, which it beats.
    claimed = dataclasses.replace(loose, eps=1e-3)
    step = next(s for s in construction_steps(cls, claimed, "claimed") if "every standard decoder" in s.name)
    assert not step.passed, step.detail
    true = next(s for s in construction_steps(cls, loose, "true") if "every standard decoder" in s.name)
    assert true.passed, true.detail
