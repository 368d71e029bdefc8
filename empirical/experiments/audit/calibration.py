"""Thresholds for the audit's verdicts, calibrated on clean units with a stated false-flag rate.

For detector d with statistic s_d, its tail t_d = s_d ("upper") or |s_d − med_d| ("both"),
standardized robustly on the clean calibration units: r_d = (t_d − med(t_d)) / s_d with
s_d = max(1.4826·MAD(t_d), the detector's resolution).
The combined statistic is r = max_d r_d, and its threshold τ is the split-conformal quantile
of r over the n clean units: the ⌈(n + 1)(1 − α)⌉-th smallest. A new clean unit exchangeable
with them exceeds τ with probability ≤ α (the medians and MADs are fit on the same units, so
the bound is approximate; the bench measures the rate on clean units of held-out models).
A unit is *suspicious* when r > τ; the detectors that fired are those with r_d > τ.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fvtrust.io import atomic_write_json

#: the default false-flag rate of clean units
DEFAULT_ALPHA = 0.01


class CalibrationMismatch(ValueError):
    """A calibration made for another network, layer or settings."""


def min_units(alpha: float) -> int:
    """The fewest clean units that can certify `alpha`: ⌈(n + 1)(1 − α)⌉ ≤ n."""
    return math.ceil(1 / alpha) - 1


@dataclass
class DetectorCalibration:
    side: str
    center: float  # med(s_d) ("both": the centre of the two-sided tail)
    tail_median: float  # med(t_d)
    tail_scale: float  # 1.4826·MAD(t_d)
    n_finite: int

    def tail(self, scores: np.ndarray) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        return np.abs(s - self.center) if self.side == "both" else s

    def standardized(self, scores: np.ndarray) -> np.ndarray:
        return (self.tail(scores) - self.tail_median) / self.tail_scale


@dataclass
class Calibration:
    """What a verdict needs: per-detector standardization, the combined threshold τ, and what
    it was calibrated on (network, weights, layers, audit settings)."""

    alpha: float
    threshold: float
    detectors: dict[str, DetectorCalibration]
    n_units: int
    models: list[str]
    layers: list[str]
    settings: dict[str, Any] = field(default_factory=dict)
    settings_hash: str = ""

    def combined(self, scores: Mapping[str, np.ndarray]) -> np.ndarray:
        """r = max_d r_d per unit (NaN scores are left out; all NaN → −inf, never flagged)."""
        missing = [d for d in self.detectors if d not in scores]
        if missing:
            raise CalibrationMismatch(f"the calibration needs detector scores {missing}")
        rows = np.stack([self.detectors[d].standardized(scores[d]) for d in self.detectors])
        rows = np.where(np.isfinite(rows), rows, -np.inf)
        return rows.max(0)

    def verdicts(self, scores: Mapping[str, np.ndarray]) -> tuple[np.ndarray, list[list[str]], np.ndarray]:
        """(suspicious per unit, the detectors that fired per unit, r per unit)."""
        r = self.combined(scores)
        fired = [[d for d in self.detectors
                  if np.isfinite(z := self.detectors[d].standardized(np.asarray(scores[d])[i:i + 1])[0])
                  and z > self.threshold] for i in range(len(r))]
        return r > self.threshold, fired, r

    def check(self, model: str, layers: Sequence[str], settings_hash: str, force: bool = False) -> None:
        """Refuse (unless `force`) to judge units of another network, layer or settings."""
        problems = []
        if model not in self.models:
            problems.append(f"it was made for {', '.join(self.models)}, not {model}")
        other = [layer for layer in layers if layer not in self.layers]
        if other:
            problems.append(f"layers {other} are not among its layers {self.layers}")
        if self.settings_hash and settings_hash != self.settings_hash:
            problems.append("the audit settings differ (steps, size, seeds, natural images …)")
        if problems and not force:
            raise CalibrationMismatch(f"calibration mismatch: {'; '.join(problems)}; pass --force "
                                      f"to use it anyway")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: str | Path) -> Path:
        return atomic_write_json(Path(path), self.to_json())

    @classmethod
    def read(cls, path: str | Path) -> Calibration:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            data["detectors"] = {k: DetectorCalibration(**v) for k, v in data["detectors"].items()}
            return cls(**data)
        except FileNotFoundError:
            raise ValueError(f"calibration file {str(path)!r} does not exist") from None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{str(path)!r} is not an audit calibration ({type(exc).__name__}: "
                             f"{str(exc)[:120]})") from None


def calibrate(scores: Mapping[str, np.ndarray], sides: Mapping[str, str], alpha: float = DEFAULT_ALPHA,
              models: Sequence[str] = (), layers: Sequence[str] = (),
              settings: Mapping[str, Any] | None = None, settings_hash: str = "",
              resolution: Mapping[str, float] | None = None) -> Calibration:
    """Fit the standardization and τ on the scores of clean units (detector → (n,)); a
    detector's scale is at least its `resolution` (default 1e-12)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if not scores:
        raise ValueError("no detector scores to calibrate")
    lengths = {len(np.asarray(v)) for v in scores.values()}
    if len(lengths) != 1:
        raise ValueError(f"every detector needs one score per unit, got lengths {sorted(lengths)}")
    n = lengths.pop()
    if n < min_units(alpha):
        raise ValueError(f"{n} clean units cannot calibrate a false-flag rate of {alpha:g}: need "
                         f">= {min_units(alpha)} (audit more units or raise alpha)")
    fitted = {}
    for name, values in scores.items():
        s = np.asarray(values, dtype=np.float64)
        finite = s[np.isfinite(s)]
        if len(finite) < max(3, n // 2):
            raise ValueError(f"detector {name!r} gave a finite score for only {len(finite)} of {n} "
                             f"clean units")
        side = sides[name]
        if side not in ("upper", "both"):
            raise ValueError(f"side must be 'upper' or 'both', got {side!r}")
        center = float(np.median(finite))
        tail = np.abs(finite - center) if side == "both" else finite
        med = float(np.median(tail))
        scale = 1.4826 * float(np.median(np.abs(tail - med)))
        scale = max(scale if scale > 0 else float(np.std(tail)), (resolution or {}).get(name, 1e-12))
        fitted[name] = DetectorCalibration(side, center, med, scale, len(finite))
    draft = Calibration(alpha, math.inf, fitted, n, list(models), list(layers), dict(settings or {}),
                        settings_hash)
    r = np.sort(draft.combined(scores))
    draft.threshold = float(r[math.ceil((n + 1) * (1 - alpha)) - 1])
    return draft


def calibrate_detectors(scores: Mapping[str, np.ndarray], alpha: float = DEFAULT_ALPHA,
                        **meta: Any) -> Calibration:
    """:func:`calibrate` with each registered detector's side and resolution."""
    from fvtrust.empirical.experiments.audit.detectors import DETECTORS

    return calibrate(scores, {d: DETECTORS[d].side for d in scores}, alpha,
                     resolution={d: DETECTORS[d].resolution for d in scores}, **meta)
