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

from fvtrust._version import __version__  # noqa: E402
from fvtrust.cpus import reproducible_blas as _reproducible_blas  # noqa: E402

# MKL reads its reproducibility mode at its first call: set it before torch computes anything,
# so that a render (and a resumed one) is the same to the last bit in every run.
_reproducible_blas()

#: name → module that defines it.
_ENTRY_POINTS = {
    "load_model": "fvtrust.empirical.nets.registry",
    "render": "fvtrust.empirical.render.loop",
    "channel": "fvtrust.empirical.render.objectives",
    "neuron": "fvtrust.empirical.render.objectives",
    "class_logit": "fvtrust.empirical.render.objectives",
    "natural_images": "fvtrust.empirical.data.natural",
    "run_fooling": "fvtrust.empirical.experiments.fooling",
    "FoolingConfig": "fvtrust.empirical.experiments.fooling",
    "run_silent": "fvtrust.empirical.experiments.silent",
    "SilentConfig": "fvtrust.empirical.experiments.silent",
    "run_sanity": "fvtrust.empirical.experiments.sanity",
    "SanityConfig": "fvtrust.empirical.experiments.sanity",
    "run_afc": "fvtrust.empirical.experiments.afc",
    "AFCConfig": "fvtrust.empirical.experiments.afc",
    "run_sweep": "fvtrust.empirical.runs.sweep.driver",
    "SweepPlan": "fvtrust.empirical.runs.sweep.plan",
    "read_sweep": "fvtrust.empirical.runs.sweep.store",
    "build_appendix": "fvtrust.empirical.runs.appendix",
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
