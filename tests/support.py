"""What tests share beyond fixtures: the small gate's settings and the cached proofs."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

#: The one small gate the tests share: the default kind (`features`) on the quick-scale photos,
#: trained once per session from scratch on a quarter of the quick-scale render bank (8 random
#: render settings × 128 steps instead of 32 × 128). Tests that do not test the gate's training
#: pass these fields and the `shared_stages` folder, so every one of them reuses the same saved
#: gate. The shipped default's own numbers come from a run (docs/results/fooling_permute.json).
SMALL_GATE = {"bank_settings": 8, "bank_steps": 128}


@contextmanager
def use_cached_proofs(run: Callable) -> Iterator[None]:
    """Inside the block, ``fvtrust.proofs.run_all`` (and so the CLI and the appendix) runs
    each proof through `run` (the `cached_proofs` fixture), and cvc5 answers each SMT script
    once (``run.answers``)."""
    import fvtrust.proofs
    import fvtrust.proofs.recheck

    answer = fvtrust.proofs.recheck.cvc5_answer

    def cached_answer(script: str, timeout_s: float = 300.0) -> str:
        if script not in run.answers:
            run.answers[script] = answer(script, timeout_s)
        return run.answers[script]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fvtrust.proofs, "run_proof", run)
        mp.setattr(fvtrust.proofs.recheck, "cvc5_answer", cached_answer)
        yield
