"""When can a feature visualization predict a unit? The no-go theory, executable.

After Sec. 5 of *Don't trust your eyes* (Geirhos, Zimmermann, Bilodeau, Brendel, Kim;
ICML 2024); the formulation and all code are ours. Modules:

* :mod:`theory.domain` — the cube [0, 1]^d, grids, norms;
* :mod:`theory.functions`, :mod:`theory.relu` — units, real ReLU networks, tents, closure;
* :mod:`theory.visualization` — Φ(f) = (x_min, x_max, f(x_min), f(x_max));
* :mod:`theory.decoders`, :mod:`theory.tasks` — decoders and tasks (A)–(D) with chance levels;
* :mod:`theory.classes` — the registry of function classes, each with its construction;
* :mod:`theory.constructions` — counterexample pairs, tents, argmax moves in one place;
* :mod:`theory.minimax` — exact grid verification by linear programming;
* :mod:`theory.table` — the computed results table.
"""

from fvtrust._version import __version__  # noqa: F401 (theory.__version__ stays)
