"""The audit bench: every detector, and the combined verdict, against every zoo entry.

For each network: its clean units (a sample of the logits and of the zoo's conv layer, the
zoo's own units included) and every zoo entry's manipulated units are audited on natural
images of sources no manipulation was built on (the gate split's held-out sources).
Held out by model: the calibration (standardization and τ at α) is fit on the clean units of
``fit_model`` only and applied, unchanged, to the other networks. Per held-out network,
entry and detector: ROC AUC and the true-positive rate at the calibrated threshold, against
the clean units of every held-out network, each with a 95 % bootstrap interval that resamples
units (the clusters: a unit's seeds stay together); the clean units' false-flag rate beside.
Only units whose manipulation succeeded count as positives; failures are reported. An entry
whose natural cost exceeds :class:`ZooConfig`'s budget is kept and flagged (``within_budget``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fvtrust.empirical.experiments.audit.calibration import (
    DEFAULT_ALPHA,
    MIN_LAYER_UNITS,
    Calibration,
    calibrate_detectors,
)
from fvtrust.empirical.experiments.audit.detectors import (
    DETECTORS,
    AuditConfig,
    audit_scores,
    check_layer,
    default_observer,
)
from fvtrust.empirical.experiments.audit.zoo import (
    MANIPULATIONS,
    ZooConfig,
    ZooSetup,
    check_manipulations,
    natural_cost,
    success,
)
from fvtrust.empirical.nets.registry import load_model
from fvtrust.stages import Stages


@dataclass
class BenchConfig:
    """Quick scale: the three EfficientNet-Lite networks, 8 units per manipulation, CPU."""

    models: list[str] = field(default_factory=lambda: ["efficientnet_lite0", "efficientnet_lite1",
                                                       "efficientnet_lite2"])
    fit_model: str = "efficientnet_lite0"
    manipulations: list[str] = field(default_factory=lambda: list(MANIPULATIONS))
    n_clean_logits: int = 64
    n_clean_conv: int = 64
    n_clean_mid: int = 64  # only when a manipulation sits at the zoo's intermediate layer
    alpha: float = DEFAULT_ALPHA
    n_boot: int = 2000
    zoo: ZooConfig = field(default_factory=ZooConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.fit_model not in self.models:
            raise ValueError(f"fit_model {self.fit_model!r} must be one of the models {self.models}")
        if len(self.models) < 2:
            raise ValueError("the bench holds models out: it needs the fit model and at least one other")
        check_manipulations(self.manipulations)
        counts = {"n_clean_logits": self.n_clean_logits, "n_clean_conv": self.n_clean_conv,
                  **({"n_clean_mid": self.n_clean_mid} if "mid" in self.places else {})}
        few = {k: v for k, v in counts.items() if v < MIN_LAYER_UNITS}
        if few:
            raise ValueError(f"{few}: each layer's calibration needs >= {MIN_LAYER_UNITS} clean units")

    @property
    def places(self) -> list[str]:
        """Where clean units are sampled: the logits and the conv layer always (the
        calibration's population), the intermediate layer when a manipulation sits there."""
        used = {MANIPULATIONS[m].place for m in self.manipulations}
        return ["logits", "conv", *(["mid"] if "mid" in used else [])]

    def clean_units(self, place: str, n_units: int) -> list[int]:
        """The zoo's units at `place` (their clean versions) plus a seeded sample of the rest."""
        _, zoo_units = self.zoo.where(place)
        n = {"logits": self.n_clean_logits, "conv": self.n_clean_conv, "mid": self.n_clean_mid}[place]
        rng = np.random.default_rng(self.seed + {"logits": 1, "conv": 2, "mid": 3}[place])
        rest = [u for u in rng.permutation(n_units).tolist() if u not in zoo_units]
        return sorted([*zoo_units, *rest[:max(0, n - len(zoo_units))]])


def _rows(model: str, layer: str, units: list[int], kind: str, scores: dict[str, np.ndarray],
          **extra: Any) -> list[dict[str, Any]]:
    return [{"model": model, "layer": layer, "unit": u, "kind": kind,
             **{d: float(scores[d][i]) for d in scores},
             **{k: (v[i] if isinstance(v, list | np.ndarray) else v) for k, v in extra.items()}}
            for i, u in enumerate(units)]


def bench_model(config: BenchConfig, name: str, stages: Stages, device: str = "cpu") -> dict[str, Any]:
    """Clean and manipulated units of one network: score rows, zoo manifests and costs, and
    the natural images' counts."""
    from tqdm import tqdm

    model = load_model(name, device=device)
    gate_root = None if stages.root is None else stages.root.parent  # the gate's stages beside ours
    setup = ZooSetup(model, config.zoo, gate_root=gate_root)
    held = setup.photos.split.held_out
    observer = default_observer(config.audit, name, device)
    rows, entries, timing = [], [], []
    for place in config.places:
        layer = config.zoo.where(place)[0]
        units = config.clean_units(place, check_layer(model, layer))

        def clean(layer: str = layer, units: list[int] = units) -> dict[str, Any]:
            scores, ctx = audit_scores(model, layer, units, held, config.audit, observer=observer)
            return {"scores": scores, "renders": ctx.renders[:, 0].clone(), "seconds": ctx.timings}
        done = stages.run(f"{name}-clean-{layer}", clean)
        rows += _rows(name, layer, units, "clean", done["scores"], success=None, within_budget=None)
        timing.append({"model": name, "layer": layer, "n_units": len(units),
                       "seconds_per_unit": {k: v / len(units) for k, v in done["seconds"].items()}})
    for kind in tqdm(config.manipulations, desc=f"zoo of {name}", unit="entry"):
        def manipulated(kind: str = kind) -> dict[str, Any]:
            entry = MANIPULATIONS[kind].build(setup)
            cost = natural_cost(entry, model, held.images, held.sources, config.zoo)
            scores, ctx = audit_scores(entry.network, entry.layer, entry.units, held, config.audit,
                                       observer=observer)
            ok, to_decoy, to_original = success(entry, ctx.renders[:, 0],
                                                setup.originals(entry.layer, tuple(entry.units)), observer)
            return {"manifest": entry.manifest(), "cost": asdict(cost), "scores": scores,
                    "success": ok.tolist(), "to_decoy": to_decoy.tolist(),
                    "to_original": to_original.tolist(), "renders": ctx.renders[:, 0].clone(),
                    "decoys": entry.decoys.clone()}
        done = stages.run(f"{name}-{kind}", manipulated)
        m = done["manifest"]
        rows += _rows(name, m["layer"], m["units"], kind, done["scores"], success=done["success"],
                      within_budget=done["cost"]["within_budget"], to_decoy=done["to_decoy"],
                      to_original=done["to_original"])
        entries.append({**m, "cost": done["cost"], "n_units": len(m["units"]),
                        "n_succeeded": int(sum(done["success"]))})
    return {"rows": rows, "entries": entries, "natural": setup.photos.split.counts(), "timing": timing}


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half (Mann-Whitney)."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    pos, neg = pos[:, None], neg[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


def _boot(stat: Any, pos: np.ndarray, neg: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    """95 % percentile interval, resampling positive and negative units (the clusters)."""
    rng = np.random.default_rng(seed)
    if len(pos) == 0:
        return float("nan"), float("nan")
    vals = [stat(pos[rng.integers(0, len(pos), len(pos))], neg[rng.integers(0, len(neg), len(neg))])
            for _ in range(n_boot)]
    vals = np.asarray(vals, dtype=np.float64)
    vals = vals[np.isfinite(vals)]
    if len(vals) == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(vals, [0.025, 0.975])
    return float(lo), float(hi)


@dataclass
class BenchResult:
    config: dict[str, Any]
    calibration: dict[str, Any]
    table: list[dict[str, Any]]  # per held-out model, entry and detector (and "combined")
    clean: list[dict[str, Any]]  # per model: clean units and how many were flagged
    entries: list[dict[str, Any]]  # per model and entry: manifest, natural cost, success counts
    natural: dict[str, dict[str, int]]  # per model: images and sources of the source split
    #: per model and layer of clean units: wall seconds per unit of the shared work and of each
    #: detector (this machine, its torch threads)
    timing: list[dict[str, Any]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(repr=False, default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "rows"}


def score_table(rows: list[dict[str, Any]], calibration: Calibration, fit_model: str,
                detectors: list[str], n_boot: int = 2000, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(per held-out model × entry × detector metrics, per model clean false flags); each row
    gets its combined statistic r, its verdict and the detectors that fired."""
    import pandas as pd

    scores = {d: np.array([r[d] for r in rows], dtype=np.float64) for d in detectors}
    layers = [r["layer"] for r in rows]  # each unit is judged against its own layer's clean units
    flagged, fired, combined = calibration.verdicts(scores, layers)
    for row, f, names, c in zip(rows, flagged, fired, combined, strict=True):
        row.update(combined=float(c), flagged=bool(f), fired=",".join(names))
    df = pd.DataFrame(rows)
    for d in detectors:
        df[f"r_{d}"] = calibration.standardized(d, scores[d], layers)
    held = df[df.model != fit_model]
    neg_all = held[held.kind == "clean"]
    table = []
    for (model, kind), group in held[held.kind != "clean"].groupby(["model", "kind"], sort=True):
        pos = group[group.success.astype(bool)]  # an entry over its natural budget is flagged, kept
        within = bool(group.within_budget.astype(bool).all())
        for d in [*detectors, "combined"]:
            col = "combined" if d == "combined" else f"r_{d}"
            p, n = pos[col].to_numpy(), neg_all[col].to_numpy()
            p, n = np.where(np.isfinite(p), p, -np.inf), np.where(np.isfinite(n), n, -np.inf)
            tau = calibration.threshold

            def tpr(a: np.ndarray, _b: np.ndarray, tau: float = tau) -> float:
                return float((a > tau).mean()) if len(a) else float("nan")
            table.append({"model": model, "entry": kind, "detector": d, "within_budget": within,
                          "n_units": len(group),
                          "n_succeeded": int(group.success.astype(bool).sum()), "n_positive": len(pos),
                          "n_clean": len(n), "auc": auc(p, n), "auc_ci": _boot(auc, p, n, n_boot, seed),
                          "tpr_at_threshold": tpr(p, n), "tpr_ci": _boot(tpr, p, n, n_boot, seed),
                          "n_detected": int((p > tau).sum())})
    clean = []
    for model, group in df[df.kind == "clean"].groupby("model", sort=True):
        clean.append({"model": model, "held_out": model != fit_model, "n_clean": len(group),
                      "n_flagged": int(group.flagged.sum()),
                      "false_flag_rate": float(group.flagged.mean())})
    return table, clean


def bench_config(settings: dict[str, Any]) -> BenchConfig:
    """A :class:`BenchConfig` from plain settings (``zoo`` and ``audit`` as dicts)."""
    rest = {k: v for k, v in settings.items() if k not in ("zoo", "audit")}
    return BenchConfig(**rest, zoo=ZooConfig(**settings.get("zoo", {})),
                       audit=AuditConfig(**settings.get("audit", {})))


def run_bench(config: BenchConfig, out_dir: str | Path | None = None, device: str = "cpu",
              force: bool = False) -> BenchResult:
    """Build the zoo of every network, audit clean and manipulated units, calibrate on
    ``fit_model``'s clean units, score the other networks (resumable: one saved stage per
    network and entry under `out_dir`)."""
    stages = Stages(out_dir, config, force)
    per_model = {name: bench_model(config, name, stages, device) for name in config.models}
    rows = [r for m in per_model.values() for r in m["rows"]]
    detectors = list(DETECTORS)
    fit_clean = [r for r in rows if r["model"] == config.fit_model and r["kind"] == "clean"]
    calibration = calibrate_detectors({d: np.array([r[d] for r in fit_clean]) for d in detectors},
                                      config.alpha, models=[config.fit_model],
                                      layers=sorted({r["layer"] for r in fit_clean}),
                                      settings=asdict(config.audit),
                                      unit_layers=[r["layer"] for r in fit_clean])
    table, clean = score_table(rows, calibration, config.fit_model, detectors, config.n_boot, config.seed)
    entries = [{"model": name, **e} for name, m in per_model.items() for e in m["entries"]]
    natural = {name: m["natural"] for name, m in per_model.items()}
    timing = [t for m in per_model.values() for t in m["timing"]]
    return BenchResult(asdict(config), calibration.to_json(), table, clean, entries, natural, timing, rows)


def combined_summary(result: BenchResult) -> list[dict[str, Any]]:
    """The combined verdict per entry over the held-out networks: detected of positives."""
    out: dict[str, dict[str, Any]] = {}
    for row in result.table:
        if row["detector"] != "combined":
            continue
        e = out.setdefault(row["entry"], {"entry": row["entry"], "n_positive": 0, "n_detected": 0,
                                          "n_units": 0, "n_succeeded": 0})
        for k in ("n_positive", "n_detected", "n_units", "n_succeeded"):
            e[k] += row[k]
    for e in out.values():
        e["tpr"] = e["n_detected"] / e["n_positive"] if e["n_positive"] else float("nan")
    return list(out.values())
