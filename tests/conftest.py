"""Hypothesis profiles: ``ci`` (default; derandomized, bounded), ``thorough`` (400 random
examples), ``ci_thorough`` (150 derandomized examples; CI runs it on tests/theory) and
``mutation`` (ci without shrinking; the mutation harness sets it).

Select with ``FVTRUST_HYPOTHESIS_PROFILE=thorough pytest``.
"""

import os

import pytest
from hypothesis import HealthCheck, Phase, settings

from fvtrust.cpus import reuse_freed_memory

settings.register_profile("ci", max_examples=15, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("thorough", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
# What CI runs on tests/theory: ten times ci's examples, derandomized so CI cannot flake.
settings.register_profile("ci_thorough", max_examples=150, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
# The mutation harness: ci's examples, no shrinking (a mutant needs to be caught, not minimized;
# shrinking a failure through z3 calls takes minutes).
settings.register_profile("mutation", max_examples=15, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile(os.environ.get("FVTRUST_HYPOTHESIS_PROFILE", "ci"))

# The suite's process renders as the CLI's does: freed blocks are kept for the next step.
reuse_freed_memory()


@pytest.fixture(scope="session")
def cached_proofs():
    """``run_proof`` that runs each proof module once per session: the proof tests, the
    appendix's proofs part and ``fvtrust proofs``'s CLI test read the same reports (CI runs
    ``fvtrust proofs --recheck`` on its own as well), and cvc5's answers to their SMT queries
    (``run.answers``). Patch both in with ``tests.support.use_cached_proofs``."""
    from fvtrust.proofs import run_proof

    reports = {}

    def run(proof):
        if proof.key not in reports:
            reports[proof.key] = run_proof(proof)
        return reports[proof.key]
    run.answers = {}  # SMT script → cvc5's answer: each query is re-checked once per session
    return run

