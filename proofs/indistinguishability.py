"""The indistinguishability lemma: the engine of every no-go result."""

from __future__ import annotations

import sympy as sp

from proofs.base import Proof, Step, reals, z3_step

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
    p, y1, y2, q = reals("p y1 y2 q")
    return [
        z3_step("max(|p-y1|, |p-y2|) >= |y1-y2|/2 for every p",
                sp.Max(sp.Abs(p - y1), sp.Abs(p - y2)) >= sp.Abs(y1 - y2) / 2, [p, y1, y2]),
        z3_step("a randomized 2-AFC answer has min(q, 1-q) <= 1/2",
                sp.Min(q, 1 - q) <= sp.Rational(1, 2), [q], [q >= 0, q <= 1]),
    ]


PROOF_OBJECT = Proof("indistinguishability", "Lemma", "Indistinguishability", STATEMENT, PROOF,
                     "theory/tasks.py (Witness)", "tests/theory/test_tasks.py", check)
