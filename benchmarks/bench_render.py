"""Render speed against the peer, torch-lucent, in one run (alternating), written as JSON.

Both render the same channels of one layer at the same size for the same number of steps,
with lucid's standard transforms, Fourier parametrization, decorrelated colour and Adam
(lr 0.05). lucent gets the same [0, 1]-input network (``preprocess=False``) and
``fixed_image_size`` = the render size, so neither upsamples. Both final images are scored
the same way: the target channel's mean activation on the untransformed image.

    pip install -e ".[bench]"
    python benchmarks/bench_render.py --out benchmarks/results/render_cpu.json
    python benchmarks/bench_render.py --device cuda --size 224 --units 64 --out ...gpu.json
    python benchmarks/bench_render.py --precisions float32   # a CPU without bfloat16 units
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from dataclasses import dataclass

import numpy as np
import torch

from fvtrust.empirical.nets.layers import count_prefix_tokens, describe_layers, forward_activations
from fvtrust.empirical.nets.registry import Network, load_model
from fvtrust.empirical.render.loop import PRECISIONS, render
from fvtrust.empirical.render.objectives import channel
from fvtrust.empirical.render.transform import TransformConfig
from fvtrust.io import atomic_write_json

#: network → (layer, weights, render size in px); the four CNNs, and a ViT block (its 224 px
#: patch grid: both renderers resample to it through the same wrapper).
CASES = {"efficientnet_lite0": ("_blocks.10", None, 128), "efficientnet_lite2": ("_blocks.10", None, 224),
         "googlenet": ("inception4a", "random", 128), "resnet50": ("layer3", "random", 128),
         "torchvision:vit_b_16": ("encoder.layers.encoder_layer_6", "random", 224)}


@dataclass
class Run:
    seconds: float
    final_objective: float


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def score(model: Network, layer: str, units: list[int], images: torch.Tensor) -> float:
    """Mean over units of the target channel's mean activation on the final image."""
    with torch.no_grad():
        acts = forward_activations(model, images.to(model.device), [layer])[layer]
    return float(np.mean([float(acts[i, u].mean()) for i, u in enumerate(units)]))


def run_fvtrust(model: Network, layer: str, units: list[int], size: int, steps: int,
                precision: str = "float32") -> Run:
    _sync(model.device)
    t0 = time.perf_counter()
    # lucent resamples its transformed image to `size` (fixed_image_size): so do we.
    result = render(model, channel(layer, units), steps=steps, size=size, seed=0,
                    transforms=TransformConfig(output=size), precision=precision)
    _sync(model.device)
    return Run(time.perf_counter() - t0, score(model, layer, units, result.images))


def _lucent_layer(layer: str) -> str:
    # lucent names modules by joining the attribute path with "_" (our wrapper adds "net").
    return "net_" + layer.replace(".", "_")


def _lucent_objective(name: str, unit: int, batch: int | None, prefix: int | None):
    """lucent's ``channel``; on a transformer's (B, T, D) tokens, its channel indexes tokens,
    so the same objective as ours is written as a lucent objective: feature `unit` averaged
    over the patch tokens (those after the `prefix` tokens)."""
    from lucent.optvis import objectives as lobj

    if prefix is None:
        return lobj.channel(name, unit, batch=batch)

    @lobj.wrap_objective()
    def token_channel(layer: str, n: int, batch: int | None = None):
        @lobj.handle_batch(batch)
        def inner(model):
            return -model(layer)[:, prefix:, n].mean()
        return inner
    return token_channel(name, unit, batch=batch)


def run_lucent(model: Network, layer: str, units: list[int], size: int, steps: int,
               batched: bool, prefix: int | None = None) -> Run:
    from lucent.optvis import param as lparam
    from lucent.optvis import render as lrender

    name = _lucent_layer(layer)
    device = model.device
    torch.manual_seed(0)
    _sync(device)
    t0 = time.perf_counter()
    if batched:
        obj = sum(_lucent_objective(name, u, i, prefix) for i, u in enumerate(units))
        out = lrender.render_vis(model, obj, lambda: lparam.image(size, batch=len(units)),
                                 thresholds=(steps,), preprocess=False, progress=False,
                                 show_image=False, fixed_image_size=size)
        images = torch.from_numpy(np.asarray(out[-1])).permute(0, 3, 1, 2).float()
    else:
        finals = []
        for u in units:
            out = lrender.render_vis(model, _lucent_objective(name, u, None, prefix),
                                     lambda: lparam.image(size),
                                     thresholds=(steps,), preprocess=False, progress=False,
                                     show_image=False, fixed_image_size=size)
            finals.append(torch.from_numpy(np.asarray(out[-1])).permute(0, 3, 1, 2).float())
        images = torch.cat(finals)
    _sync(device)
    return Run(time.perf_counter() - t0, score(model, layer, units, images))


def bench_case(name: str, size: int | None, steps: int, n_units: int, rounds: int,
               device: str, sequential: bool,
               precisions: tuple[str, ...] = PRECISIONS) -> dict[str, object]:
    layer, weights, case_size = CASES[name]
    size = size or case_size
    model = load_model(name, weights=weights, device=device)
    # lucent leaves forward hooks on every module it rendered through: give it its own copy.
    lucent_model = copy.deepcopy(model)
    units = list(range(n_units))
    (info,) = [row for row in describe_layers(model, [layer]) if row.name == layer]
    prefix = count_prefix_tokens(model, info.shape[0]) if info.kind == "tokens" else None
    ours = {"float32": "fvtrust", "bfloat16": "fvtrust_bfloat16"}
    runs: dict[str, list[Run]] = {ours[p]: [] for p in precisions}
    runs["lucent_batched"] = []
    if sequential:
        runs["lucent_sequential"] = []
    # Warm-up at the timed shapes for both (oneDNN/cuDNN build kernels per shape on first use,
    # and whichever runs first would otherwise pay for both).
    for p in precisions:
        run_fvtrust(model, layer, units, size, 2, p)
    run_lucent(lucent_model, layer, units, size, 2, True, prefix)
    for _ in range(rounds):  # alternate, so drift in machine load hits both
        for p in precisions:
            runs[ours[p]].append(run_fvtrust(model, layer, units, size, steps, p))
        runs["lucent_batched"].append(run_lucent(lucent_model, layer, units, size, steps, True,
                                                 prefix))
        if sequential:
            runs["lucent_sequential"].append(
                run_lucent(lucent_model, layer, units, size, steps, False, prefix))
    summary: dict[str, object] = {"layer": layer, "weights": weights or "imagenet (bundled)", "size": size,
                                  "lucent_objective": "channel" if prefix is None else
                                  f"custom: tokens[:, {prefix}:, unit].mean() (lucent's channel "
                                  f"would index tokens)"}
    for key, rs in runs.items():
        secs = float(np.median([r.seconds for r in rs]))
        summary[key] = {"seconds_median": secs, "seconds_per_step": secs / steps,
                        "units_per_second": n_units / secs,
                        "final_objective": float(np.mean([r.final_objective for r in rs])),
                        "seconds_all": [r.seconds for r in rs]}
    for p in precisions:
        for key in runs:
            if key.startswith("lucent"):
                summary[f"speedup_{ours[p]}_vs_{key}"] = (summary[ours[p]]["units_per_second"]
                                                          / summary[key]["units_per_second"])
    if set(precisions) == set(ours):
        summary["bfloat16_objective_change"] = (summary["fvtrust_bfloat16"]["final_objective"]
                                                / summary["fvtrust"]["final_objective"] - 1)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/render_cpu.json")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=None,
                        help="render size in px for every network (default: each case's own)")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--units", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default=",".join(CASES))
    parser.add_argument("--no-sequential", action="store_true",
                        help="skip lucent one-unit-at-a-time (slow for many units)")
    parser.add_argument("--precisions", default="float32,bfloat16",
                        help="our renders' precisions (bfloat16 is slow without bf16 units)")
    args = parser.parse_args()
    precisions = tuple(args.precisions.split(","))
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        parser.error(f"unknown precision {bad[0]!r}; known: {', '.join(PRECISIONS)}")
    if args.device == "cpu":
        torch.set_num_threads(max(1, torch.get_num_threads()))
    result = {
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None},
        "cases": {name: bench_case(name, args.size, args.steps, args.units, args.rounds,
                                   args.device, not args.no_sequential, precisions)
                  for name in args.models.split(",")},
    }
    atomic_write_json(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
