"""Throughput of the occlusion task's expensive part: scoring occluded images.

For one query image, every position of a sliding patch (its own mean colour as fill) is one
forward pass to the unit's layer; all channels of the layer come out of the same pass.
Measured: occluded images per second, the plain network vs the BatchNorm-folded,
channels-last copy the task uses (checked equivalent), alternating, in one run.

    python benchmarks/bench_occlusion.py --out benchmarks/results/occlusion_cpu.json
    python benchmarks/bench_occlusion.py --device cuda --size 224 --stride 2 --out ...gpu.json
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from fvtrust.empirical.nets.fuse import fuse_for_rendering
from fvtrust.empirical.nets.registry import load_model, resolve_device
from fvtrust.empirical.observers.occlusion import OcclusionGrid, occlusion_responses
from fvtrust.io import atomic_write_json


def _time(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--layers", default="_blocks.2,_blocks.10")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--patch", type=float, default=0.4)
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="benchmarks/results/occlusion_cpu.json")
    args = parser.parse_args()

    device = resolve_device(args.device)
    layers = args.layers.split(",")
    model = load_model(args.model, device=device)
    fused = fuse_for_rendering(model, keep=layers)
    grid = OcclusionGrid.from_fraction(args.size, args.patch, args.stride)
    image = torch.rand(3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    rows = []
    for layer in layers:
        for net in (model, fused):  # warm-up at the timed shapes
            occlusion_responses(net, layer, image, grid, args.batch_size)
        plain, fast = (_time(lambda net=net, layer=layer: occlusion_responses(net, layer, image, grid,
                                                                              args.batch_size), args.rounds)
                       for net in (model, fused))
        diff = float((occlusion_responses(model, layer, image, grid)
                      - occlusion_responses(fused, layer, image, grid)).abs().max())
        rows.append({"layer": layer, "positions": len(grid), "patch_px": grid.patch,
                     "plain_images_per_s": len(grid) / plain, "fused_images_per_s": len(grid) / fast,
                     "speedup": plain / fast, "max_abs_difference": diff})
        print(f"{layer:12s} {len(grid)} positions: plain {len(grid) / plain:7.1f} img/s, "
              f"fused {len(grid) / fast:7.1f} img/s ({plain / fast:.2f}x), max |diff| {diff:.1e}")
    atomic_write_json(args.out, {"model": args.model, "size": args.size, "stride": args.stride,
                                 "batch_size": args.batch_size, "device": str(device),
                                 "threads": torch.get_num_threads(), "rounds": args.rounds,
                                 "machine": platform.machine(), "torch": torch.__version__,
                                 "results": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
