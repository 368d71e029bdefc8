"""The one snapshot rule: where renders are saved along an optimization."""

from __future__ import annotations

import numpy as np


def log_steps(steps: int) -> list[int]:
    """1, 2, 4, … up to `steps` (always included)."""
    out = [2 ** k for k in range(int(np.log2(steps)) + 1)]
    return out if out[-1] == steps else [*out, steps]
