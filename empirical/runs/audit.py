"""``fvtrust audit``: per-unit trust verdicts for any network, on the sweep engine.

:func:`run_audit` checks everything first (the network, its layers and units, the natural
images, the calibration's fit), runs the ``audit`` measurement of every unit on Ray through
:func:`~empirical.runs.sweep.driver.run_sweep` (same store, same resume rule, same
progress), then judges every unit against a calibration: one given (``calibration``, made on
clean units of a clean network), or one fit here on the audited units themselves
(``calibrate_here``: only for a network you hold to be clean). It writes ``verdicts.parquet``
(scores, r, verdict, the detectors that fired), ``calibration.json`` when fit here, and a
report (:func:`~empirical.reports.audit.write_audit_report`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fvtrust.empirical.experiments.audit.calibration import (
    DEFAULT_ALPHA,
    MIN_LAYER_UNITS,
    Calibration,
    calibrate_detectors,
    min_units,
)
from fvtrust.empirical.experiments.audit.detectors import DETECTORS
from fvtrust.empirical.reports.audit import write_audit_report
from fvtrust.empirical.runs.sweep.driver import run_sweep
from fvtrust.empirical.runs.sweep.plan import SweepPlan, SweepSummary, check_plan
from fvtrust.empirical.runs.sweep.store import StoreMismatch, SweepStore, read_sweep
from fvtrust.empirical.runs.sweep.worker import audit_config
from fvtrust.io import atomic_write_with

VERDICTS_FILE = "verdicts.parquet"
CALIBRATION_FILE = "calibration.json"


@dataclass
class AuditPlan(SweepPlan):
    """A sweep whose one measurement is the audit (quick scale: 64 px, 64 steps)."""

    measure: list[str] = field(default_factory=lambda: ["audit"])
    steps: int = 64
    size: int = 64
    audit_seeds: int = 2
    n_random: int = 32
    n_gradient: int = 32
    observer: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.measure != ["audit"]:
            raise ValueError(f"an audit plan measures the audit only, got {self.measure}")
        config = audit_config(self)  # the audit's own checks (seeds, sizes)
        if self.n_natural < config.n_natural_needed:
            raise ValueError(f"--natural {self.n_natural} natural images are too few: the audit "
                             f"needs {config.n_exemplars} exemplars and a null of {config.n_random} "
                             f"random images per unit (>= {config.n_natural_needed})")


@dataclass
class AuditSummary:
    sweep: SweepSummary
    n_units: int
    n_suspicious: int | None
    calibration: str | None
    verdicts: str
    report: str


def run_audit(plan: AuditPlan, out_dir: str | Path, calibration: str | Path | None = None,
              calibrate_here: bool = False, alpha: float = DEFAULT_ALPHA, force: bool = False,
              address: str | None = None, workers: int | None = None, device: str = "auto",
              progress: bool = True) -> AuditSummary:
    """Audit every unit of `plan`, judge it, and write the verdicts and the report."""
    if calibration is not None and calibrate_here:
        raise ValueError("give --calibration or --calibrate, not both")
    if not 0 < alpha < 1:
        raise ValueError(f"--alpha must lie in (0, 1), got {alpha}")
    # A calibration belongs to an architecture, layers and settings: the point is to judge
    # other weights of the same network (a fine-tune, a checkpoint) against clean units.
    models = sorted({ref.name for ref in plan.model_refs})
    cal = None
    if calibration is not None:
        cal = Calibration.read(calibration)
        for name in models:
            cal.check(name, plan.layers, plan.settings_hash(), force)
    if calibrate_here:
        chosen = check_plan(plan)
        n = sum(len(u) for u in chosen.values())
        if n < min_units(alpha):
            raise ValueError(f"{n} units cannot calibrate a false-flag rate of {alpha:g}: need >= "
                             f"{min_units(alpha)} (audit more units, or raise --alpha)")
        per_layer: dict[str, int] = {}
        for (_, layer), units in chosen.items():
            per_layer[layer] = per_layer.get(layer, 0) + len(units)
        few = {layer: k for layer, k in per_layer.items() if k < MIN_LAYER_UNITS}
        if few:
            raise ValueError(f"layers {few} have too few units to calibrate: each layer's scales "
                             f"need >= {MIN_LAYER_UNITS} units (audit more of them)")
    # --force accepts a mismatched calibration and recomputes a store of other settings; it
    # does not recompute units already done with these settings.
    recompute = False
    if force:
        try:
            SweepStore(out_dir, plan.settings(), plan.settings_hash())
        except StoreMismatch:
            recompute = True
    summary = run_sweep(plan, out_dir, address=address, workers=workers, device=device, force=recompute,
                        progress=progress)
    table = read_sweep(out_dir)
    # the plan's networks and layers only (a store may hold others from earlier runs)
    table = table[(table.status == "ok") & table.model.isin(models)
                  & table.layer.isin(plan.layers)].reset_index(drop=True)
    scores = {d: table[f"audit_{d}"].to_numpy(dtype=np.float64) for d in DETECTORS}
    out = Path(out_dir)
    cal_path = None
    if calibrate_here:
        cal = calibrate_detectors(scores, alpha, models=models, layers=list(plan.layers),
                                  settings=plan.settings(), settings_hash=plan.settings_hash(),
                                  unit_layers=table.layer.tolist())
        cal_path = str(cal.write(out / CALIBRATION_FILE))
    elif calibration is not None:
        cal_path = str(calibration)
    if cal is not None:
        flagged, fired, r = cal.verdicts(scores, table.layer.tolist())
        table["combined"] = r
        table["verdict"] = np.where(flagged, "suspicious", "trusted")
        table["fired"] = [",".join(f) for f in fired]
        table["threshold"] = cal.threshold
    else:
        table["combined"] = np.nan
        table["verdict"] = "uncalibrated"
        table["fired"] = ""
        table["threshold"] = np.nan
    keep = ["model", "weights", "layer", "unit", *[f"audit_{d}" for d in DETECTORS],
            "audit_render_activation", "audit_png", "audit_exemplar_ids", "audit_exemplar_index",
            "combined", "verdict", "fired", "threshold"]
    verdicts = table[keep]
    path = atomic_write_with(out / VERDICTS_FILE, lambda tmp: verdicts.to_parquet(tmp, index=False))
    report = write_audit_report(verdicts, plan, out, cal)
    n_suspicious = int((verdicts.verdict == "suspicious").sum()) if cal is not None else None
    return AuditSummary(summary, len(verdicts), n_suspicious, cal_path, str(path), str(report))


def audit_table(out_dir: str | Path) -> Any:
    """The verdicts of an audit as a pandas DataFrame."""
    import pandas as pd

    path = Path(out_dir) / VERDICTS_FILE
    if not path.exists():
        raise FileNotFoundError(f"no {VERDICTS_FILE} under {out_dir}: run `fvtrust audit --out {out_dir}`")
    return pd.read_parquet(path)
