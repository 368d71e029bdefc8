"""The no-go constructions in one place: counterexample pairs, tents, closure, argmax moves.

``counterexample_pair(key, f, z, eps)`` dispatches to the class registered as `key`;
each class module holds its theorem's construction (and names its proof and test).
"""

from __future__ import annotations

from numpy.typing import ArrayLike

from fvtrust.theory.classes import get_class
from fvtrust.theory.classes.base import CounterexamplePair
from fvtrust.theory.classes.erm import move_argmax
from fvtrust.theory.classes.relu_networks import tent_pair
from fvtrust.theory.functions import UnitFunction
from fvtrust.theory.relu import affine_combination, bump, maximum, minimum, tent_network
from fvtrust.theory.visualization import Visualization


def counterexample_pair(class_key: str, f: UnitFunction | Visualization, z: ArrayLike,
                        eps: float) -> CounterexamplePair:
    """(f₊, f₋) in class `class_key` with Φ(f₊) = Φ(f₋) and |f₊(z) − f₋(z)| ≥ R − 2ε."""
    return get_class(class_key).counterexample_pair(f, z, eps)


__all__ = ["affine_combination", "bump", "counterexample_pair", "maximum", "minimum",
           "move_argmax", "tent_network", "tent_pair"]
