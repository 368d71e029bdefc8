"""What keeping freed memory (``fvtrust.cpus.reuse_freed_memory``) does to a render step, in
fresh processes, one run: each measurement is its own interpreter (the allocator setting is
process-wide and permanent), alternating default / kept, for our renderer and for batched
lucent, on the four networks of bench_render.py. Writes JSON with every time, the medians and
the ratios within the run.

    python -m benchmarks.bench_allocator --out benchmarks/results/allocator_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

RENDERERS = ("fvtrust", "lucent_batched")
ALLOCATORS = ("default", "kept")


def child(name: str, renderer: str, allocator: str, steps: int, n_units: int) -> None:
    """One measurement in this (fresh) process: warm-up, then one timed render of n_units."""
    from fvtrust import cpus

    kept = cpus.reuse_freed_memory() if allocator == "kept" else False
    cpus.use_threads()
    from benchmarks.bench_render import CASES, run_fvtrust, run_lucent
    from fvtrust.empirical.nets.registry import load_model

    layer, weights, size = CASES[name]
    model = load_model(name, weights=weights)
    units = list(range(n_units))
    if renderer == "fvtrust":
        run_fvtrust(model, layer, units, size, 2)
        run = run_fvtrust(model, layer, units, size, steps)
    else:
        run_lucent(model, layer, units, size, 2, True)
        run = run_lucent(model, layer, units, size, steps, True)
    print(json.dumps({"seconds": run.seconds, "final_objective": run.final_objective, "kept": kept}))


def measure(name: str, renderer: str, allocator: str, steps: int, n_units: int) -> dict:
    from fvtrust.cpus import MEMORY_ENV

    env = {**os.environ, MEMORY_ENV: "1" if allocator == "kept" else "0"}
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_allocator", "--child", name,
                          renderer, allocator, str(steps), str(n_units)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/allocator_cpu.json")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--units", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="efficientnet_lite0,efficientnet_lite2,googlenet,resnet50")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, renderer, allocator, steps, n_units = args.child
        child(name, renderer, allocator, int(steps), int(n_units))
        return
    from fvtrust import cpus

    t0 = time.perf_counter()
    cases: dict[str, dict] = {}
    for name in args.models.split(","):
        runs: dict[str, list[dict]] = {f"{r}_{a}": [] for r in RENDERERS for a in ALLOCATORS}
        for _ in range(args.rounds):  # alternate, so drift in machine load hits every cell
            for r in RENDERERS:
                for a in ALLOCATORS:
                    runs[f"{r}_{a}"].append(measure(name, r, a, args.steps, args.units))
                    print(name, r, a, f"{runs[f'{r}_{a}'][-1]['seconds']:.2f} s", flush=True)
        med = {k: float(np.median([m["seconds"] for m in v])) for k, v in runs.items()}
        cases[name] = {
            "seconds_median": med,
            "final_objective": {k: float(np.mean([m["final_objective"] for m in v]))
                                for k, v in runs.items()},
            "allocator_set": {k: [m["kept"] for m in v] for k, v in runs.items()},
            "seconds_all": {k: [m["seconds"] for m in v] for k, v in runs.items()},
            # ratios > 1: the first is faster
            "kept_vs_default_fvtrust": med["fvtrust_default"] / med["fvtrust_kept"],
            "kept_vs_default_lucent": med["lucent_batched_default"] / med["lucent_batched_kept"],
            "fvtrust_kept_vs_lucent_default": med["lucent_batched_default"] / med["fvtrust_kept"],
            "fvtrust_kept_vs_lucent_kept": med["lucent_batched_kept"] / med["fvtrust_kept"],
            "fvtrust_default_vs_lucent_default": med["lucent_batched_default"] / med["fvtrust_default"],
        }
    result = {"settings": {k: v for k, v in vars(args).items() if k not in ("out", "child")},
              "machine": {"python": platform.python_version(), "threads": cpus.threads(),
                          "processor": platform.processor() or platform.machine()},
              "seconds_total": time.perf_counter() - t0, "cases": cases}
    from fvtrust.io import atomic_write_json

    atomic_write_json(args.out, result)
    print(json.dumps({n: {k: round(v, 3) for k, v in c.items() if k.endswith(("default", "kept"))
                          and isinstance(v, float)} for n, c in cases.items()}, indent=2))


if __name__ == "__main__":
    main()
