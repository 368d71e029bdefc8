"""fvtrust: put feature visualizations on trial.

``fvtrust.theory`` (function classes, visualizations Φ, decoders, the results table),
``fvtrust.proofs`` (machine-checked proofs) and ``fvtrust.empirical`` (renderer, fooling
circuits, silent units, sanity check, 2-AFC psychophysics, sweeps). The main entry points are
importable from here and load on first use (importing fvtrust does not import torch)::

    import fvtrust
    fvtrust.render(fvtrust.load_model(), fvtrust.channel("_blocks.10", [0, 1]), steps=64)
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path as _Path
from typing import Any

_here = _Path(__file__).resolve().parent
if not (_here / "theory").is_dir() and (_here.parent / "theory" / "__init__.py").is_file():
    # A source tree (checkout, or a copy of it on PYTHONPATH): theory/, empirical/ and proofs/
    # sit beside this folder; an installed fvtrust has them inside (setuptools' package-dir).
    __path__.append(str(_here.parent))

from fvtrust.theory import __version__  # noqa: E402

#: name → module that defines it.
_ENTRY_POINTS = {
    "load_model": "fvtrust.empirical.models",
    "render": "fvtrust.empirical.render",
    "channel": "fvtrust.empirical.objectives",
    "neuron": "fvtrust.empirical.objectives",
    "class_logit": "fvtrust.empirical.objectives",
    "natural_images": "fvtrust.empirical.data",
    "run_fooling": "fvtrust.empirical.fooling_experiment",
    "FoolingConfig": "fvtrust.empirical.fooling_experiment",
    "run_silent": "fvtrust.empirical.silent_experiment",
    "SilentConfig": "fvtrust.empirical.silent_experiment",
    "run_sanity": "fvtrust.empirical.sanity",
    "SanityConfig": "fvtrust.empirical.sanity",
    "run_afc": "fvtrust.empirical.psychophysics",
    "AFCConfig": "fvtrust.empirical.psychophysics",
    "run_sweep": "fvtrust.empirical.sweep",
    "SweepPlan": "fvtrust.empirical.sweep",
    "read_sweep": "fvtrust.empirical.sweep_store",
    "build_appendix": "fvtrust.empirical.appendix",
    "compute_table": "fvtrust.theory.table",
    "run_all_proofs": "fvtrust.proofs",
}

__all__ = ["__version__", *_ENTRY_POINTS]


def __getattr__(name: str) -> Any:
    if name not in _ENTRY_POINTS:
        raise AttributeError(f"module 'fvtrust' has no attribute {name!r}")
    attr = "run_all" if name == "run_all_proofs" else name
    return getattr(import_module(_ENTRY_POINTS[name]), attr)


def __dir__() -> list[str]:
    return sorted(__all__)
