"""Is the gate robust over a *family* of render settings, not a list? Catch rates per held-out
region of the family, and every render that escapes, by name.

For each region R of the wide render family (:data:`~empirical.circuits.gate_bank.REGIONS`:
pixel parametrization, flat or steep spectrum, no colour decorrelation, an L2 or a
total-variation penalty, low or high learning rate, no transforms, a larger size, more
steps), the feature gate is trained on the bank's settings outside R (τ set on a quarter of
them, as always), then tested on renders whose settings are drawn inside R, of class units no
bank ever draws (:data:`~empirical.circuits.gate_setup.DEFAULT_HELD_OUT_UNITS`). Regions no
bank draws from (224 px, steps beyond the bank's) are tested on the gate trained on every bank
setting. The default gate (the classic family, what ``fool`` and ``silent`` use) is tested on
the same renders.

A render is caught at a step when the gate flags it; every snapshot at step ≥ 4 counts, as
the image and as the network saw it (after the setting's random transform: what the gate
decides on inside a fooling circuit's render loop). A render whose as-seen view passes at
every step ≥ 4 would show its true visualization through a fooling circuit: it is listed.
Natural false alarms are counted on photo sources no gate saw.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from fvtrust.empirical.circuits.gate_bank import (
    REGIONS,
    FamilySetting,
    RenderBank,
    RenderBankConfig,
    as_seen,
    draw_setting,
    render_bank,
)
from fvtrust.empirical.circuits.gate_setup import (
    DEFAULT_HELD_OUT_UNITS,
    GateConfig,
    build_gate,
    calibration_photos,
)
from fvtrust.empirical.circuits.gates import (
    FeatureGate,
    fit_feature_gate,
    gate_feature_table,
    gate_layers,
)
from fvtrust.empirical.data.folders import SOURCES_KEY
from fvtrust.empirical.nets.registry import load_model
from fvtrust.empirical.render.loop import render
from fvtrust.empirical.render.objectives import class_logit
from fvtrust.empirical.render.transform import RandomTransform
from fvtrust.stages import Stages

#: Snapshot steps of the evaluation renders: those ≥ 4 and ≤ the setting's steps, and its last.
EVAL_STEPS = (4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
#: The first step at which a gate must flag a render (steps 1–3 are still near the start).
MIN_STEP = 4


@dataclass
class GateFamilyConfig:
    """Quick scale by default (Lite0, 128 px, about 18 min on 2 CPU cores, both banks included)."""

    model: str = "efficientnet_lite0"
    weights: str | None = None
    n_natural: int = 1000  # crops drawn to split by source (train / threshold / held out)
    images: str | None = None  # an ImageFolder/ImageNet directory instead of the photo corpus
    sources: str = field(default="auto", metadata=SOURCES_KEY)
    corpus: str = "photos"
    size: int = 128
    bank_settings: int = 48  # settings of the wide family the gates learn from
    bank_steps: int = 128
    eval_settings: int = 2  # settings drawn inside each region
    units_per_setting: int = 3  # held-out class units rendered per setting
    alpha: float = 0.005
    render_side: float = 2 / 3
    classic: bool = True  # also test the default gate (the classic family's)
    classic_bank_settings: int = 32  # its bank: fool's and silent's default (bank_settings)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("bank_settings", "eval_settings", "units_per_setting"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.bank_steps < MIN_STEP:
            raise ValueError(f"bank_steps must be >= {MIN_STEP} (a gate is tested from step "
                             f"{MIN_STEP} on), got {self.bank_steps}")
        if self.bank_settings < 8:
            raise ValueError(f"bank_settings must be >= 8 (a region is left out and a quarter "
                             f"of the rest sets the threshold), got {self.bank_settings}")
        if self.units_per_setting > len(DEFAULT_HELD_OUT_UNITS):
            raise ValueError(f"units_per_setting must be <= {len(DEFAULT_HELD_OUT_UNITS)} (the "
                             f"held-out units), got {self.units_per_setting}")
        self.gate_config("wide")  # the gate's own checks

    def gate_config(self, family: str) -> GateConfig:
        """The feature gate of `family`: the classic one is the default gate of ``fool`` and
        ``silent`` (at their bank size), so all three share it."""
        settings = self.bank_settings if family == "wide" else self.classic_bank_settings
        return GateConfig(kind="features", model=self.model, weights=self.weights,
                          n_natural=self.n_natural, images=self.images, sources=self.sources,
                          corpus=self.corpus, size=self.size, bank_settings=settings,
                          bank_steps=self.bank_steps, alpha=self.alpha,
                          render_side=self.render_side, seed=self.seed, family=family)


@dataclass
class GateFamilyResult:
    config: dict[str, object]
    split: dict[str, int]
    natural: dict[str, object]  # the held-out photos the false alarms are counted on
    regions: list[dict[str, object]]
    lowest_region: str  # the family gates' lowest catch rate
    lowest_region_classic: str | None
    reused_stages: list[str]

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def eval_settings(config: GateFamilyConfig, index: int) -> list[FamilySetting]:
    """Region `index`'s test settings: wide-family draws moved into the region."""
    region = REGIONS[index]
    rng = np.random.default_rng([config.seed, 7, index])
    lr_range = RenderBankConfig.lr_range
    return [region.into(draw_setting(rng, k, "wide", lr_range, config.size, config.bank_steps), rng)
            for k in range(config.eval_settings)]


def _eval_units(config: GateFamilyConfig, index: int, k: int) -> list[int]:
    held = DEFAULT_HELD_OUT_UNITS
    start = (index * config.eval_settings + k) * config.units_per_setting
    return [held[(start + i) % len(held)] for i in range(config.units_per_setting)]


def _eval_renders(model, config: GateFamilyConfig, index: int) -> dict[str, object]:
    """Region `index`'s renders at every test step: images and as-seen views, (steps, units,
    3, S, S) per setting."""
    out = []
    for k, setting in enumerate(eval_settings(config, index)):
        units = _eval_units(config, index, k)
        seeds = [config.seed + 50_000 + 1_000 * index + 10 * k + i for i in range(len(units))]
        steps = sorted({s for s in EVAL_STEPS if s <= setting.steps} | {setting.steps})
        kwargs = setting.render_kwargs()
        r = render(model, class_logit(units), seeds=seeds, snapshots=steps, progress=True, **kwargs)
        seen = RandomTransform(kwargs["transforms"], seeds)
        out.append({"setting": asdict(setting), "units": units, "steps": steps,
                    "image": torch.stack([r.snapshots[s] for s in steps]),
                    "as_seen": torch.stack([as_seen(seen, r.snapshots[s], setting.size) for s in steps])})
    return {"settings": out}


def _flags(gate: FeatureGate, features: torch.Tensor) -> torch.Tensor:
    return (gate.score_features(features) > gate.threshold).cpu()


def _wide_gate(model, config: GateFamilyConfig, bank: RenderBank, table: dict[str, torch.Tensor],
               layers: list[str], index: int | None) -> FeatureGate:
    """The feature gate trained without region `index`'s bank settings (None: on every bank
    setting, for the regions no bank draws from); τ set on the last quarter of the settings
    left, steps ≥ 4, as :func:`~empirical.circuits.gate_setup.build_gate` sets it."""
    kept = bank.outside(None if index is None else REGIONS[index])
    n_kept = len(torch.unique(bank.setting[kept]))
    if n_kept < 2:  # one to fit the MLP, one to set its threshold
        raise ValueError(f"only {n_kept} bank setting(s) lie outside region "
                         f"{REGIONS[index].name!r}: raise bank_settings (now {config.bank_settings})")
    held = bank.held_mask(max(1, n_kept // 4), among=kept)
    fit = kept & ~held
    return fit_feature_gate(model, layers, table["train"], table["bank"][fit], table["threshold"],
                            table["bank"][held & (bank.step >= MIN_STEP)], alpha=config.alpha,
                            min_step=MIN_STEP, render_side=config.render_side, seed=config.seed)


def _score_region(renders: dict[str, object], features: list[dict[str, torch.Tensor]],
                  gate: FeatureGate) -> dict[str, object]:
    """Catch rates on one region's renders, and the renders that escape."""
    caught_image, caught_seen, escaped, every = [], [], [], 0
    for entry, feats in zip(renders["settings"], features, strict=True):
        steps, units = entry["steps"], entry["units"]
        shape = (len(steps), len(units))
        image = _flags(gate, feats["image"]).reshape(shape)
        seen = _flags(gate, feats["as_seen"]).reshape(shape)
        caught_image.append(image.flatten())
        caught_seen.append(seen.flatten())
        for u, unit in enumerate(units):
            passed = [s for t, s in enumerate(steps) if not (image[t, u] and seen[t, u])]
            if passed:
                escaped.append({"setting": FamilySetting(**entry["setting"]).describe(),
                                "unit": unit, "steps_passed": passed,
                                "as_seen_passed_every_step": bool((~seen[:, u]).all())})
            every += int((~seen[:, u]).all())
    image, seen = torch.cat(caught_image).float(), torch.cat(caught_seen).float()
    return {"caught": float(torch.cat([image, seen]).mean()), "caught_image": float(image.mean()),
            "caught_as_seen": float(seen.mean()), "decisions": int(len(image) + len(seen)),
            "escaped": escaped, "passed_every_step_as_seen": every}


def run_gate_family(config: GateFamilyConfig, out_dir: str | Path | None = None,
                    device: str = "cpu", force: bool = False,
                    shared_dir: str | Path | None = None) -> GateFamilyResult:
    """Run the experiment. The banks and the classic gate are saved under `shared_dir`
    (default `out_dir`), keyed by their own configs (``fool`` and ``silent`` share them);
    every region's renders are a stage of their own (an interrupted run resumes)."""
    stages = Stages(out_dir, config, force)
    root = shared_dir if shared_dir is not None else out_dir
    model = load_model(config.model, weights=config.weights, device=device)
    wide = config.gate_config("wide")
    photos = calibration_photos(wide)
    bank_stages = Stages(root, wide.bank(), force)
    bank = render_bank(model, wide.bank().settings, exclude_units=list(wide.held_out_units),
                       progress=True, checkpoint=bank_stages.run)
    layers = gate_layers(model)
    held_out = photos.split.held_out

    def features() -> dict[str, torch.Tensor]:
        return {name: gate_feature_table(model, x, layers) for name, x in
                (("train", photos.train), ("threshold", photos.threshold),
                 ("bank", bank.images), ("held_out", held_out.images))}
    table = stages.run("gate_family_features", features)
    gates: dict[int | None, FeatureGate] = {}

    def gate_for(index: int | None) -> FeatureGate:
        if index not in gates:
            gates[index] = _wide_gate(model, config, bank, table, layers, index)
        return gates[index]
    reused: list[str] = []
    classic = (build_gate(config.gate_config("classic"), model, photos, root, force, reused=reused)
               if config.classic else None)
    if classic is not None and not isinstance(classic, FeatureGate):
        raise TypeError("the classic gate must be a feature gate")

    def alarms(gate: FeatureGate) -> float:
        return float(_flags(gate, table["held_out"]).float().mean())

    def score(index: int) -> dict[str, object]:
        region = REGIONS[index]
        renders = stages.run(f"gate_family_region{index:02d}",
                             lambda: _eval_renders(model, config, index))
        feats = [{view: gate_feature_table(model, entry[view].flatten(0, 1), layers)
                  for view in ("image", "as_seen")} for entry in renders["settings"]]
        gate = gate_for(index if region.bank else None)
        row: dict[str, object] = {
            "region": region.name, "trained_without_region": region.bank,
            "settings": [FamilySetting(**e["setting"]).describe() for e in renders["settings"]],
            "units": sorted({u for e in renders["settings"] for u in e["units"]}),
            "renders": sum(len(e["units"]) for e in renders["settings"]),
            "natural_flagged": alarms(gate), **_score_region(renders, feats, gate)}
        if classic is not None:
            scored = _score_region(renders, feats, classic)
            row["classic"] = {k: scored[k] for k in ("caught", "caught_image", "caught_as_seen",
                                                     "passed_every_step_as_seen", "escaped")}
        return row
    # each region's scores are a stage: a rerun refits no gate and re-renders nothing
    rows = [stages.run(f"gate_family_scores{i:02d}", lambda i=i: score(i)) for i in range(len(REGIONS))]
    all_settings = stages.run("gate_family_all_settings_alarms", lambda: alarms(gate_for(None)))
    lowest = min(rows, key=lambda r: r["caught"])["region"]
    lowest_classic = (min(rows, key=lambda r: r["classic"]["caught"])["region"]
                      if classic is not None else None)
    natural = {"images": len(held_out), "sources": photos.split.counts()["held_out_sources"],
               "what": f"held-out sources of the {config.images or config.corpus} corpus "
                       f"(no gate saw them)",
               "classic_flagged": alarms(classic) if classic is not None else None,
               "all_settings_gate_flagged": all_settings}
    return GateFamilyResult(asdict(config), photos.split.counts(), natural, rows, lowest,
                            lowest_classic, stages.reused + bank_stages.reused + reused)
