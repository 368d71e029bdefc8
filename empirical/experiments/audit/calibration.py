"""Thresholds for the audit's verdicts, calibrated on clean units with a stated false-flag rate.

For detector d with statistic s_d, its tail t_d = s_d ("upper") or |s_d − med_d| ("both"),
standardized robustly on the clean calibration units *of the same layer*: r_d = (t_d −
med(t_d)) / s_d with s_d = max(1.4826·MAD(t_d), the detector's resolution). Per layer, because
a detector's clean level is a property of the layer: ``dormant`` is exactly 0 on every unit of
a linear layer and about 0.17 on a nonlinear block of Lite0, so one scale for both would make
every clean unit of the block look extreme.
The combined statistic is r = max_d r_d over the detectors in the verdict (a detector may be
standardized and reported without deciding anything), and its threshold τ is the
split-conformal quantile of r over the n clean units of every layer: the ⌈(n + 1)(1 − α)⌉-th
smallest. A new clean unit exchangeable with them exceeds τ with probability ≤ α (the medians
and MADs are fit on the same units, so the bound is approximate; the bench measures the rate
on clean units of held-out models).
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
#: the fewest clean units of one layer that its robust scales are fit on
MIN_LAYER_UNITS = 10
#: the group of units calibrated without layer names
ALL_LAYERS = "*"


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
    """What a verdict needs: per layer and detector the standardization, the combined
    threshold τ, and what it was calibrated on (network, weights, layers, audit settings)."""

    alpha: float
    threshold: float
    detectors: dict[str, dict[str, DetectorCalibration]]  # layer → detector → its standardization
    n_units: int
    models: list[str]
    layers: list[str]
    settings: dict[str, Any] = field(default_factory=dict)
    settings_hash: str = ""
    in_verdict: list[str] = field(default_factory=list)  # empty: every detector

    @property
    def detector_names(self) -> list[str]:
        return list(next(iter(self.detectors.values())))

    @property
    def verdict_detectors(self) -> list[str]:
        """The detectors whose maximum is the combined statistic."""
        return list(self.in_verdict or self.detector_names)

    def _group(self, layer: str | None) -> dict[str, DetectorCalibration]:
        if layer in self.detectors:
            return self.detectors[layer]
        if len(self.detectors) == 1:  # one layer (or units without layer names): it judges all
            return next(iter(self.detectors.values()))
        raise CalibrationMismatch(f"layer {layer!r} has no calibration; calibrated layers: "
                                  f"{', '.join(self.detectors)}")

    def standardized(self, detector: str, scores: np.ndarray,
                     layers: Sequence[str] | str | None = None) -> np.ndarray:
        """r_d of every unit, each standardized by its own layer's clean units."""
        scores = np.asarray(scores, dtype=np.float64)
        if layers is None or isinstance(layers, str):
            return self._group(layers)[detector].standardized(scores)
        layers = np.asarray(layers, dtype=object)
        if len(layers) != len(scores):
            raise ValueError(f"{len(scores)} scores but {len(layers)} layer names")
        out = np.empty(len(scores))
        for layer in dict.fromkeys(layers.tolist()):
            at = layers == layer
            out[at] = self._group(layer)[detector].standardized(scores[at])
        return out

    def combined(self, scores: Mapping[str, np.ndarray],
                 layers: Sequence[str] | str | None = None) -> np.ndarray:
        """r = max_d r_d per unit over the verdict's detectors (NaN scores are left out; all
        NaN → −inf, never flagged)."""
        return self._verdict_rows(scores, layers).max(0)

    def _verdict_rows(self, scores: Mapping[str, np.ndarray],
                      layers: Sequence[str] | str | None) -> np.ndarray:
        """(D, n): r_d of the verdict's detectors, NaN as −inf."""
        missing = [d for d in self.verdict_detectors if d not in scores]
        if missing:
            raise CalibrationMismatch(f"the calibration needs detector scores {missing}")
        rows = np.stack([self.standardized(d, scores[d], layers) for d in self.verdict_detectors])
        return np.where(np.isfinite(rows), rows, -np.inf)

    def verdicts(self, scores: Mapping[str, np.ndarray], layers: Sequence[str] | str | None = None
                 ) -> tuple[np.ndarray, list[list[str]], np.ndarray]:
        """(suspicious per unit, the verdict's detectors that fired per unit, r per unit)."""
        rows = self._verdict_rows(scores, layers)
        r = rows.max(0)
        fired = [[d for d, z in zip(self.verdict_detectors, rows[:, i], strict=True) if z > self.threshold]
                 for i in range(rows.shape[1])]
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
            data["detectors"] = {layer: {k: DetectorCalibration(**v) for k, v in group.items()}
                                 for layer, group in data["detectors"].items()}
            return cls(**data)
        except FileNotFoundError:
            raise ValueError(f"calibration file {str(path)!r} does not exist") from None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{str(path)!r} is not an audit calibration ({type(exc).__name__}: "
                             f"{str(exc)[:120]})") from None


def _fit(scores: Mapping[str, np.ndarray], sides: Mapping[str, str],
         resolution: Mapping[str, float] | None, what: str) -> dict[str, DetectorCalibration]:
    n = len(next(iter(scores.values())))
    fitted = {}
    for name, values in scores.items():
        s = np.asarray(values, dtype=np.float64)
        finite = s[np.isfinite(s)]
        if len(finite) < max(3, n // 2):
            raise ValueError(f"detector {name!r} gave a finite score for only {len(finite)} of {n} "
                             f"clean units{what}")
        side = sides[name]
        if side not in ("upper", "both"):
            raise ValueError(f"side must be 'upper' or 'both', got {side!r}")
        center = float(np.median(finite))
        tail = np.abs(finite - center) if side == "both" else finite
        med = float(np.median(tail))
        scale = 1.4826 * float(np.median(np.abs(tail - med)))
        scale = max(scale if scale > 0 else float(np.std(tail)), (resolution or {}).get(name, 1e-12))
        fitted[name] = DetectorCalibration(side, center, med, scale, len(finite))
    return fitted


def calibrate(scores: Mapping[str, np.ndarray], sides: Mapping[str, str], alpha: float = DEFAULT_ALPHA,
              models: Sequence[str] = (), layers: Sequence[str] = (),
              settings: Mapping[str, Any] | None = None, settings_hash: str = "",
              resolution: Mapping[str, float] | None = None,
              in_verdict: Sequence[str] | None = None,
              unit_layers: Sequence[str] | None = None) -> Calibration:
    """Fit the standardization and τ on the scores of clean units (detector → (n,)), each
    unit standardized among the units of its layer (`unit_layers`; None: one group); a
    detector's scale is at least its `resolution` (default 1e-12); τ is set on the maximum
    over `in_verdict` (default: every detector)."""
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
    groups = np.asarray(unit_layers if unit_layers is not None else [ALL_LAYERS] * n, dtype=object)
    if len(groups) != n:
        raise ValueError(f"{n} units but {len(groups)} layer names")
    fitted = {}
    for layer in dict.fromkeys(groups.tolist()):
        at = groups == layer
        if at.sum() < MIN_LAYER_UNITS:
            raise ValueError(f"layer {layer!r} has {int(at.sum())} clean units: its detectors' scales "
                             f"need >= {MIN_LAYER_UNITS}")
        fitted[layer] = _fit({d: np.asarray(v, dtype=np.float64)[at] for d, v in scores.items()}, sides,
                             resolution, "" if layer == ALL_LAYERS else f" of layer {layer!r}")
    verdict = list(in_verdict) if in_verdict is not None else list(scores)
    unknown = [d for d in verdict if d not in scores]
    if unknown or not verdict:
        raise ValueError(f"the verdict's detectors {unknown or verdict} must be among the scored "
                         f"{list(scores)}")
    draft = Calibration(alpha, math.inf, fitted, n, list(models), list(layers), dict(settings or {}),
                        settings_hash, verdict)
    r = np.sort(draft.combined(scores, None if unit_layers is None else groups.tolist()))
    draft.threshold = float(r[math.ceil((n + 1) * (1 - alpha)) - 1])
    return draft


def calibrate_detectors(scores: Mapping[str, np.ndarray], alpha: float = DEFAULT_ALPHA,
                        **meta: Any) -> Calibration:
    """:func:`calibrate` with each registered detector's side, resolution and place in the
    verdict."""
    from fvtrust.empirical.experiments.audit.detectors import DETECTORS

    return calibrate(scores, {d: DETECTORS[d].side for d in scores}, alpha,
                     resolution={d: DETECTORS[d].resolution for d in scores},
                     in_verdict=[d for d in scores if DETECTORS[d].verdict], **meta)
