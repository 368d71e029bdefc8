"""Machine-checked proofs: one module per result, mirrored by name in ``theory/`` and ``tests/``.

Each module holds ``PROOF_OBJECT``: the statement and proof in LaTeX (our words, after
Sec. 5 of *Don't trust your eyes*), the code it is about, its test, and ``check()`` whose
steps sympy, z3 and the implementation itself verify. ``fvtrust proofs`` runs them all.
"""

from __future__ import annotations

from importlib import import_module

from fvtrust.proofs.base import STEP_KINDS, Proof, ProofReport, Step, run_proof

#: Order of presentation: chance, engine, building blocks, then one theorem per class.
MODULES = ["proposition1_chance", "indistinguishability", "tent", "closure", "all_functions",
           "relu_networks", "erm", "lipschitz", "monotone", "convex", "affine", "constant", "variants"]


def all_proofs() -> list[Proof]:
    return [import_module(f"fvtrust.proofs.{name}").PROOF_OBJECT for name in MODULES]


def run_all(progress: bool = False) -> list[ProofReport]:
    proofs = all_proofs()
    if progress:
        from tqdm import tqdm

        proofs = tqdm(proofs, desc="proofs", unit="proof")
    return [run_proof(p) for p in proofs]


__all__ = ["MODULES", "STEP_KINDS", "Proof", "ProofReport", "Step", "all_proofs", "run_all", "run_proof"]
