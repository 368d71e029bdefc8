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
    each proof through `run` (the `cached_proofs` fixture)."""
    import fvtrust.proofs

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fvtrust.proofs, "run_proof", run)
        yield
