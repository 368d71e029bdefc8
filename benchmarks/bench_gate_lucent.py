"""Does the fooling gate catch renders made by another tool? torch-lucent's ``render_vis`` on
the manipulated network (permutation mode), with lucent's own parametrization and transforms.

Builds the quick-scale permutation circuit (reusing a saved gate with ``--shared DIR``, e.g.
the appendix's ``parts/fooling_shared``), renders its units with lucent, and records at
log-spaced steps whether the gate fires on lucent's image, and whether the final render shows
the decoy: the observer's similarity to lucent's render of unit i + offset in the original
network minus that to lucent's render of unit i itself. Needs ``pip install -e ".[bench]"``.

    python benchmarks/bench_gate_lucent.py --shared appendix/parts/fooling_shared
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fvtrust.empirical.experiments.fooling import FoolingConfig, run_fooling
from fvtrust.empirical.observers.embedding import Observer
from fvtrust.empirical.render.snapshots import log_steps

HERE = Path(__file__).resolve().parent


class LabelsLast(nn.Module):
    """lucent's "labels" is the output of the last registered module: make it the network's."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.labels = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.labels(self.net(x))


def lucent_renders(net: nn.Module, units: list[int], size: int, steps: int) -> dict[int, torch.Tensor]:
    from lucent.optvis import objectives as lobj
    from lucent.optvis import param as lparam
    from lucent.optvis import render as lrender

    torch.manual_seed(0)
    obj = sum(lobj.channel("labels", u, batch=i) for i, u in enumerate(units))
    thresholds = tuple(log_steps(steps))
    out = lrender.render_vis(LabelsLast(net).eval(), obj, lambda: lparam.image(size, batch=len(units)),
                             thresholds=thresholds, preprocess=False, progress=False,
                             show_image=False, fixed_image_size=size)
    return {t: torch.from_numpy(np.asarray(img)).permute(0, 3, 1, 2).float()
            for t, img in zip(thresholds, out, strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=None, help="directory with a saved fooling gate")
    parser.add_argument("--steps", type=int, default=512)
    parser.add_argument("--out", default=str(HERE / "results" / "gate_lucent.json"))
    args = parser.parse_args()
    config = FoolingConfig(mode="permute", steps=64, robustness=False)
    work = Path(args.shared).parent / "bench_gate_lucent" if args.shared else None
    result, _ = run_fooling(config, work, shared_dir=args.shared)
    # run_fooling keeps the circuit internal: rebuild it from the saved stages.
    from fvtrust.empirical.circuits.fooling import FoolingCircuit, PermutationDecoy, calibrate_constants
    from fvtrust.empirical.circuits.gate_setup import build_gate, calibration_photos
    from fvtrust.empirical.nets.registry import load_model

    model = load_model(config.model)
    gate_config = config.gate_config(model.num_classes)
    data = calibration_photos(gate_config)
    gate = build_gate(gate_config, model, data, args.shared or work)
    decoy = PermutationDecoy(config.offset)
    circuit = FoolingCircuit(model, gate, decoy, calibrate_constants(
        model, decoy, data.split.train.images))
    units = list(config.units)
    fooled = lucent_renders(circuit, units, config.size, args.steps)
    caught = {str(t): float(gate(img).mean()) for t, img in fooled.items()}
    own = lucent_renders(model, units, config.size, args.steps)[args.steps]
    goal = lucent_renders(model, [(u + config.offset) % model.num_classes for u in units],
                          config.size, args.steps)[args.steps]
    observer = Observer()
    final = fooled[args.steps]
    margin = (observer.similarity(final, goal).diagonal()
              - observer.similarity(final, own).diagonal()).tolist()
    report = {"tool": "torch-lucent 0.1.8 render_vis (its Fourier image, transforms, Adam 0.05)",
              "size": config.size, "steps": args.steps, "units": units,
              "caught_by_step": caught,
              "min_caught_from_step4": min(v for t, v in caught.items() if int(t) >= 4),
              "decoy_margin": margin, "decoy_shown": int(sum(m > 0 for m in margin)),
              "natural_heldout": result.natural_heldout}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "natural_heldout"}, indent=2))


if __name__ == "__main__":
    main()
