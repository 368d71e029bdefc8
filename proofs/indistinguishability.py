"""The indistinguishability lemma: the engine of every no-go result."""

from __future__ import annotations

import sympy as sp

from fvtrust.proofs.base import Proof, Step, numeric_step, reals, z3_step

STATEMENT = r"""If $f, g \in F$ and $\Phi(f) = \Phi(g)$, then every decoder $D$ satisfies
$\max(\|D(\Phi f) - f\|_\infty, \|D(\Phi g) - g\|_\infty) \ge \tfrac12\|f - g\|_\infty$.
If moreover $f(z) > f(z')$ and $g(z) < g(z')$, every (deterministic) 2-AFC answer about
$(z, z')$ computed from $\Phi$ is wrong for one of $f, g$; a randomized answer is right with
probability $\le 1/2$ on one of them."""

PROOF = r"""$D$ sees the same input $\Phi(f) = \Phi(g)$, so it outputs one prediction $p$ at
$z$. By the triangle inequality $|f(z) - g(z)| \le |p - f(z)| + |p - g(z)| \le
2\max(|p - f(z)|, |p - g(z)|)$; take the supremum over $z$. For the 2-AFC, the answer is a
function of $\Phi$ alone; the true answers differ for $f$ and $g$, so one is wrong
(for a randomized answer with probability $q$ of "z", the accuracies are $q$ and $1-q$)."""


def check() -> list[Step]:
    from fvtrust.theory.classes import Affine, Monotone
    from fvtrust.theory.tasks import AFC_MARGIN, Task

    p, y1, y2 = reals("p y1 y2")
    steps = [z3_step("max(|p-y1|, |p-y2|) >= |y1-y2|/2 for every p",
                     sp.Max(sp.Abs(p - y1), sp.Abs(p - y2)) >= sp.Abs(y1 - y2) / 2, [p, y1, y2])]
    # The 2-AFC half on the implemented witnesses: the two members order (z, z') oppositely by
    # at least the task's margin, so any (randomized) answer is right for at most one of them.
    for cls in (Monotone(), Affine(2)):
        w = cls.witness(Task.AFC, 1e-3)
        z, z2 = w.queries
        R = w.phi.range
        up = float(w.f_plus(z)[0] - w.f_plus(z2)[0])
        down = float(w.f_minus(z2)[0] - w.f_minus(z)[0])
        steps.append(numeric_step(f"{cls.key}: the implemented 2-AFC witness flips the order by >= R/4",
                                  up >= AFC_MARGIN * R and down >= AFC_MARGIN * R,
                                  f"f+(z) - f+(z') = {up:.4f}, f-(z') - f-(z) = {down:.4f}, R = {R:.4f}"))
    return steps


PROOF_OBJECT = Proof("indistinguishability", "Lemma", "Indistinguishability", STATEMENT, PROOF,
                     "theory/tasks.py (Witness)", "tests/theory/test_tasks.py", check)
