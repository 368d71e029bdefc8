"""Every proof can fail: break the construction (or the claim) it checks, and its `check()`
must report a failed step. One mutation per proof module."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fvtrust.proofs import MODULES, all_proofs, run_proof


def _swap_members(cls_type, monkeypatch):
    """Mutant: the class's pair returns f+ twice (no gap, no flip)."""
    original = cls_type.counterexample_pair

    def broken(self, *args, **kwargs):
        pair = original(self, *args, **kwargs)
        return dataclasses.replace(pair, f_minus=pair.f_plus)
    monkeypatch.setattr(cls_type, "counterexample_pair", broken)


def _mutate(key: str, monkeypatch) -> None:
    from fvtrust.proofs import closure as proof_closure
    from fvtrust.proofs import lipschitz as proof_lipschitz
    from fvtrust.proofs import tent as proof_tent
    from fvtrust.theory.classes import Affine, AllFunctions, Convex, Monotone
    from fvtrust.theory.classes import erm as erm_class
    from fvtrust.theory.classes import relu_networks as relu_class
    from fvtrust.theory.decoders import ChanceDecoder
    from fvtrust.theory.relu import bump, minimum, tent_network

    if key in ("proposition1_chance", "constant"):
        monkeypatch.setattr(ChanceDecoder, "predict", lambda self, phi, pts: np.full(len(pts), phi.v_max + 1))
    elif key == "indistinguishability":
        original = Monotone.witness

        def no_flip(self, task, eps):
            w = original(self, task, eps)
            return dataclasses.replace(w, f_minus=w.f_plus)
        monkeypatch.setattr(Monotone, "witness", no_flip)
    elif key == "tent":
        monkeypatch.setattr(proof_tent, "tent_network", lambda z, r: tent_network(z, 1.1 * r))
    elif key == "closure":
        monkeypatch.setattr(proof_closure, "maximum", minimum)
    elif key in ("all_functions", "monotone", "convex", "affine"):
        _swap_members({"all_functions": AllFunctions, "monotone": Monotone, "convex": Convex,
                       "affine": Affine}[key], monkeypatch)
    elif key == "relu_networks":
        # v0.1's bug: the base of the bump above f's true minimum clips f everywhere.
        monkeypatch.setattr(relu_class, "bump",
                            lambda base, h, z, r: bump(base + 0.05 * abs(h), h, z, r))
    elif key == "erm":
        monkeypatch.setattr(erm_class, "bump", lambda base, h, z, r: bump(base + 0.5 * h, h, z, r))
    elif key == "lipschitz":
        monkeypatch.setattr(proof_lipschitz, "worst_case_error",
                            lambda kappa, d, task: (min(0.5, (kappa - 1) / 2), True))
    elif key == "variants":
        # the scale pair with equal slopes: no gap between its members
        from fvtrust.proofs import variants as proof_variants
        from fvtrust.theory.variants import scale_pair

        monkeypatch.setattr(proof_variants, "scale_pair", lambda d, z, eps: scale_pair(d, z, 1.0))
    else:  # a new proof module needs its mutation here
        raise AssertionError(f"no mutation for proof module {key!r}")


@pytest.mark.parametrize("proof", all_proofs(), ids=MODULES)
def test_a_broken_construction_fails_its_proof(proof, monkeypatch):
    _mutate(proof.key, monkeypatch)
    report = run_proof(proof)
    assert not report.passed, [s.name for s in report.steps]
