"""The registry of function classes the theory knows.

A new class = a subclass of :class:`FunctionClass` (sampler, strategy, membership, and a
counterexample pair or a decoder), registered here; the table and tests pick it up.
"""

from __future__ import annotations

from collections.abc import Callable

from fvtrust.theory.classes.affine import Affine
from fvtrust.theory.classes.all_functions import AllFunctions
from fvtrust.theory.classes.base import CounterexamplePair, FunctionClass, Membership
from fvtrust.theory.classes.constant import Constant
from fvtrust.theory.classes.convex import Convex
from fvtrust.theory.classes.erm import ERMNetworks, FittedNetwork
from fvtrust.theory.classes.lipschitz import Lipschitz
from fvtrust.theory.classes.monotone import Monotone
from fvtrust.theory.classes.relu_networks import ReLUNetworks

#: κ for the two Lipschitz rows: small (reliable) and large (impossible).
KAPPA_SMALL, KAPPA_LARGE = 1.2, 20.0

REGISTRY: dict[str, Callable[[], FunctionClass]] = {
    "all": AllFunctions,
    "relu": ReLUNetworks,
    "erm": ERMNetworks,
    "lipschitz_large": lambda: Lipschitz(KAPPA_LARGE),
    "lipschitz_small": lambda: Lipschitz(KAPPA_SMALL),
    "monotone": Monotone,
    "convex": Convex,
    "affine": lambda: Affine(2),
    "affine_d1": lambda: Affine(1),
    "constant": Constant,
}


def get_class(key: str) -> FunctionClass:
    """The registered class `key` (a ValueError lists the known keys)."""
    if key not in REGISTRY:
        raise ValueError(f"unknown function class {key!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[key]()


def all_classes() -> list[FunctionClass]:
    return [make() for make in REGISTRY.values()]


__all__ = ["REGISTRY", "Affine", "AllFunctions", "Constant", "Convex", "CounterexamplePair",
           "ERMNetworks", "FittedNetwork", "FunctionClass", "Lipschitz", "Membership",
           "Monotone", "ReLUNetworks", "all_classes", "get_class"]
