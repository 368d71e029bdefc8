"""A proof: statement and proof in LaTeX, the code it is about, and machine-checked steps."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import sympy as sp

from fvtrust.theory.symbolic import prove


@dataclass(frozen=True)
class Step:
    """One machine-checked step of a proof."""

    name: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class Proof:
    """A result with its LaTeX text, its encoding in ``theory/`` and its test in ``tests/``."""

    key: str
    kind: str  # Proposition, Lemma, Theorem
    title: str
    statement: str
    proof: str
    code: str
    test: str
    check: Callable[[], list[Step]] = field(repr=False)


@dataclass(frozen=True)
class ProofReport:
    proof: Proof
    steps: list[Step]
    seconds: float

    @property
    def passed(self) -> bool:
        return bool(self.steps) and all(s.passed for s in self.steps)

    def to_dict(self) -> dict[str, object]:
        return {"key": self.proof.key, "kind": self.proof.kind, "title": self.proof.title,
                "passed": self.passed, "seconds": round(self.seconds, 3),
                "code": self.proof.code, "test": self.proof.test,
                "steps": [{"name": s.name, "passed": s.passed, "detail": s.detail}
                          for s in self.steps]}


def run_proof(proof: Proof) -> ProofReport:
    """Run every step; an exception in a step is a failed step, not a crash."""
    start = time.perf_counter()
    try:
        steps = proof.check()
    except Exception as exc:  # a broken check must show up as a failure in the report
        steps = [Step("check ran", False, f"{type(exc).__name__}: {exc}")]
    return ProofReport(proof, steps, time.perf_counter() - start)


def z3_step(name: str, claim: sp.Basic, variables: Iterable[sp.Symbol],
            assumptions: Iterable[sp.Basic] = ()) -> Step:
    """A step proved by z3 over the reals: ∀ variables, assumptions ⇒ claim."""
    verdict = prove(claim, variables, assumptions)
    detail = verdict.detail if verdict.proved else f"{verdict.detail} {verdict.counterexample}"
    return Step(name, verdict.proved, detail)


def numeric_step(name: str, ok: bool, detail: str) -> Step:
    """A step checked numerically on the real implementation (float64)."""
    return Step(name, bool(ok), detail)


def reals(names: str) -> tuple[sp.Symbol, ...]:
    out = sp.symbols(names, real=True)
    return out if isinstance(out, tuple) else (out,)


def construction_steps(cls: object, pair: object, label: str) -> list[Step]:
    """Numeric steps on the real implementation: `pair.verify(cls)` and every standard
    decoder driven to error ≥ R/2 − ε on one member at z."""
    from fvtrust.theory.decoders import standard_decoders

    steps = [numeric_step(f"{label}: {claim}", ok, "checked on the implementation")
             for claim, ok in pair.verify(cls).items()]
    floor = pair.phi.range / 2 - pair.eps
    worst = min(max(abs(float(dec(pair.phi, pair.z)[0] - f(pair.z)[0]))
                    for f in (pair.f_plus, pair.f_minus)) for dec in standard_decoders())
    steps.append(numeric_step(f"{label}: every standard decoder errs >= R/2 - eps",
                              worst >= floor - 1e-9, f"min over decoders {worst:.6f} >= {floor:.6f}"))
    return steps


def witness_steps(cls: object, witness: object, label: str) -> list[Step]:
    """Numeric steps on a table witness as implemented: both members in the class and the
    same Φ (on the cube for closed forms), every standard decoder held to the bound, and the
    bound at chance."""
    from fvtrust.theory.table import verify_witness
    from fvtrust.theory.tasks import Task

    steps = [numeric_step(f"{label}: {claim}", ok, "checked on the implementation")
             for claim, ok in verify_witness(cls, witness).items()]
    bound = witness.lower_bound()
    at_chance = bound <= 0.5 if witness.task is Task.AFC else bound >= 0.5 - 2e-3
    steps.append(numeric_step(f"{label}: the bound is chance", at_chance, f"bound {bound:.6f}"))
    return steps
