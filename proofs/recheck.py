"""A second solver for every SMT query: cvc5 re-checks what z3 decided.

Each :class:`~theory.symbolic.SmtQuery` is a complete SMT-LIB 2 script (declarations,
assertions, ``check-sat``) with z3's answer. cvc5 (an independent code base; ``pip install
cvc5``, in the ``dev`` and ``proofs`` extras) reads the script from text alone and answers
again; non-linear queries go to its cylindrical algebraic coverings, a procedure unlike z3's
nlsat. The two agree when cvc5's answer is z3's; ``unknown`` (cvc5's time limit) is never
counted as agreement.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from fvtrust.theory.symbolic import SmtQuery


def require_cvc5() -> Any:
    """Import cvc5, or say in one line how to install it."""
    try:
        import cvc5
    except ImportError as exc:
        raise ImportError("--recheck needs cvc5: pip install 'fvtrust[proofs]' (or: pip install cvc5)"
                          ) from exc
    return cvc5


@dataclass(frozen=True)
class Recheck:
    """cvc5's answer to one query z3 decided."""

    query: SmtQuery
    answer: str  # sat, unsat, unknown, or "error: …" when cvc5 could not read the script
    seconds: float

    @property
    def agrees(self) -> bool:
        return self.answer == self.query.expected


def cvc5_answer(script: str, timeout_s: float = 120.0) -> str:
    """cvc5's answer to the ``check-sat`` of an SMT-LIB 2 script: sat, unsat or unknown
    (out of time), or ``error: …`` when the script does not parse or has no ``check-sat``."""
    cvc5 = require_cvc5()
    tm = cvc5.TermManager()
    solver = cvc5.Solver(tm)
    solver.setOption("tlimit-per", str(max(1, int(timeout_s * 1000))))
    # non-linear real arithmetic (the convex pairs' squares, the tent's 1/r) by cylindrical
    # algebraic coverings alone: a complete procedure, where cvc5's default incremental
    # linearization answers "unknown" on these queries
    solver.setOption("nl-cov", "true")
    solver.setOption("nl-ext", "none")
    symbols = cvc5.SymbolManager(tm)
    parser = cvc5.InputParser(solver, symbols)
    parser.setStringInput(cvc5.InputLanguage.SMT_LIB_2_6, script, "query")
    answers = []
    try:
        while not (command := parser.nextCommand()).isNull():
            text = command.invoke(solver, symbols).strip()
            if command.getCommandName() == "check-sat":
                answers.append(text)
    except RuntimeError as exc:  # cvc5 raises its parse and solver errors as RuntimeError
        return f"error: {' '.join(str(exc).split())}"
    if len(answers) != 1:
        return f"error: {len(answers)} check-sat commands, expected 1"
    return answers[0] if answers[0] in ("sat", "unsat") else "unknown"


def recheck(queries: Iterable[SmtQuery], timeout_s: float = 120.0) -> Iterator[Recheck]:
    """cvc5 on each query in turn (a generator, so a caller can show progress)."""
    require_cvc5()
    for query in queries:
        start = time.perf_counter()
        answer = cvc5_answer(query.script, timeout_s)
        yield Recheck(query, answer, time.perf_counter() - start)


def recheck_reports(reports: Iterable[Any], timeout_s: float = 300.0,
                    progress: bool = False) -> dict[str, list[Recheck]]:
    """cvc5 on every query of every :class:`~proofs.base.ProofReport`: proof key → its
    rechecks, in query order."""
    reports = list(reports)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(r.queries) for r in reports), desc="cvc5 re-checks", unit="query")
    out: dict[str, list[Recheck]] = {}
    for report in reports:
        out[report.proof.key] = []
        for item in recheck(report.queries, timeout_s):
            out[report.proof.key].append(item)
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    return out


def summary(rechecks: Iterable[Recheck]) -> dict[str, int | float]:
    """Counts: queries, agree, disagree (cvc5 decided the other way or could not read it),
    unknown (cvc5 ran out of time), and cvc5's total seconds."""
    rechecks = list(rechecks)
    agree = sum(r.agrees for r in rechecks)
    unknown = sum(r.answer == "unknown" for r in rechecks)
    return {"queries": len(rechecks), "agree": agree, "disagree": len(rechecks) - agree - unknown,
            "unknown": unknown, "seconds": round(sum(r.seconds for r in rechecks), 2)}
