"""A proof: statement and proof in LaTeX, the code it is about, and machine-checked steps.

Every step says what kind of evidence it is (:data:`STEP_KINDS`): a check of the implemented
object, a mathematical lemma (z3 on a formula written here), or a consequence of earlier
steps. Every query z3 decides while a proof runs is kept as SMT-LIB 2
(:class:`~theory.symbolic.SmtQuery`), so a second solver can re-check it
(:mod:`proofs.recheck`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import sympy as sp

from fvtrust.theory.symbolic import SmtQuery, prove, recording_queries

#: a step's kind → what it is evidence of (the README and the appendix count each)
STEP_KINDS = {
    "implementation": "checks the implemented object",
    "lemma": "mathematical lemma (z3 on a formula written in the proof)",
    "follows": "follows from earlier steps",
}


@dataclass(frozen=True)
class Step:
    """One machine-checked step of a proof. `kind` is a key of :data:`STEP_KINDS`; a
    ``follows`` step names the earlier steps it rests on in `after`."""

    name: str
    passed: bool
    detail: str = ""
    kind: str = "implementation"
    after: tuple[str, ...] = ()


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
    """A proof's steps, and every query z3 decided while they ran (`queries`, in order)."""

    proof: Proof
    steps: list[Step]
    seconds: float
    queries: list[SmtQuery] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.steps) and all(s.passed for s in self.steps)

    def follows_from(self, step: Step) -> list[int]:
        """The 1-based numbers of the steps that `step` follows from."""
        names = [s.name for s in self.steps]
        return [names.index(n) + 1 for n in step.after]

    def kind_label(self, step: Step) -> str:
        """``implementation``, ``lemma`` or ``follows from 3, 4`` (step numbers in this proof)."""
        if step.kind == "follows":
            return f"follows from {', '.join(map(str, self.follows_from(step)))}"
        return step.kind

    def kind_counts(self) -> dict[str, int]:
        return {kind: sum(s.kind == kind for s in self.steps) for kind in STEP_KINDS}

    def to_dict(self) -> dict[str, object]:
        return {"key": self.proof.key, "kind": self.proof.kind, "title": self.proof.title,
                "passed": self.passed, "seconds": round(self.seconds, 3),
                "code": self.proof.code, "test": self.proof.test, "step_kinds": self.kind_counts(),
                "steps": [{"name": s.name, "passed": s.passed, "detail": s.detail, "kind": s.kind,
                           **({"follows_from": self.follows_from(s)} if s.kind == "follows" else {})}
                          for s in self.steps]}


def kind_totals(reports: Iterable[ProofReport]) -> dict[str, int]:
    """Steps of each kind over all `reports` (every kind of :data:`STEP_KINDS`, zeros included)."""
    totals = dict.fromkeys(STEP_KINDS, 0)
    for report in reports:
        for kind, n in report.kind_counts().items():
            totals[kind] += n
    return totals


def _checked_links(steps: list[Step]) -> list[Step]:
    """A step of an unknown kind, or one that follows from a step that is not before it, is
    a failed step: a proof cannot lean on evidence it does not show."""
    out: list[Step] = []
    for step in steps:
        earlier = {s.name for s in out}
        missing = [n for n in step.after if n not in earlier]
        if step.kind not in STEP_KINDS:
            step = Step(step.name, False, f"unknown step kind {step.kind!r}")
        elif step.kind == "follows" and (missing or not step.after):
            step = Step(step.name, False, f"follows from steps not shown before it: {missing}",
                        "follows", step.after)
        out.append(step)
    return out


def run_proof(proof: Proof) -> ProofReport:
    """Run every step; an exception in a step is a failed step, not a crash."""
    start = time.perf_counter()
    with recording_queries() as queries:
        try:
            steps = _checked_links(proof.check())
        except Exception as exc:  # a broken check must show up as a failure in the report
            steps = [Step("check ran", False, f"{type(exc).__name__}: {exc}")]
    return ProofReport(proof, steps, time.perf_counter() - start, list(queries))


def z3_step(name: str, claim: sp.Basic, variables: Iterable[sp.Symbol],
            assumptions: Iterable[sp.Basic] = (), kind: str = "lemma") -> Step:
    """A step proved by z3 over the reals: ∀ variables, assumptions ⇒ claim. A lemma unless
    the claim is about an expression the implementation returned (``kind="implementation"``)."""
    verdict = prove(claim, variables, assumptions, label=name)
    detail = verdict.detail if verdict.proved else f"{verdict.detail} {verdict.counterexample}"
    return Step(name, verdict.proved, detail, kind)


def numeric_step(name: str, ok: bool, detail: str) -> Step:
    """A step checked numerically on the real implementation (float64)."""
    return Step(name, bool(ok), detail)


def follows_step(name: str, ok: bool, detail: str, after: Iterable[str]) -> Step:
    """A step that follows from the earlier steps named in `after` (it is still checked, but
    it is not counted as separate evidence)."""
    return Step(name, bool(ok), detail, "follows", tuple(after))


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
    # one Φ, two values R − 2ε apart: any decoder is at least half of that from one of them
    # (the indistinguishability lemma), so this step adds no evidence of its own
    steps.append(follows_step(f"{label}: every standard decoder errs >= R/2 - eps",
                              worst >= floor - 1e-9, f"min over decoders {worst:.6f} >= {floor:.6f}",
                              after=(f"{label}: same visualization", f"{label}: gap >= R - 2 eps")))
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
