"""What MKL's reproducible mode (``MKL_CBWR=AUTO``, set by ``import fvtrust``:
:func:`fvtrust.cpus.reproducible_blas`) costs a float32 render, in fresh processes, one run:
each measurement is its own interpreter (MKL reads the mode once, at its first call),
alternating MKL's default (``MKL_CBWR=`` empty) and AUTO, with freed memory kept as every
command keeps it, on the four networks of bench_render.py. Writes JSON with every time, the
final objectives, the medians and the ratios within the run.

    python -m benchmarks.bench_blas_mode --out benchmarks/results/blas_mode_cpu.json
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

MODES = {"default": "", "reproducible": "AUTO"}  # MKL_CBWR's value: empty keeps MKL's default


def measure(name: str, mode: str, steps: int, n_units: int) -> dict:
    from fvtrust.cpus import BLAS_ENV

    env = {**os.environ, BLAS_ENV: MODES[mode]}
    # bench_allocator's child: warm-up, then one timed render with freed memory kept
    out = subprocess.run([sys.executable, "-W", "ignore", "-m", "benchmarks.bench_allocator",
                          "--child", name, "fvtrust", "kept", str(steps), str(n_units)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/blas_mode_cpu.json")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--units", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="efficientnet_lite0,efficientnet_lite2,googlenet,resnet50")
    args = parser.parse_args()
    from fvtrust import cpus

    t0 = time.perf_counter()
    cases: dict[str, dict] = {}
    for name in args.models.split(","):
        runs: dict[str, list[dict]] = {m: [] for m in MODES}
        for _ in range(args.rounds):  # alternate, so drift in machine load hits both modes
            for mode in MODES:
                runs[mode].append(measure(name, mode, args.steps, args.units))
                print(name, mode, f"{runs[mode][-1]['seconds']:.2f} s", flush=True)
        med = {m: float(np.median([r["seconds"] for r in v])) for m, v in runs.items()}
        cases[name] = {
            "seconds_median": med,
            "seconds_all": {m: [r["seconds"] for r in v] for m, v in runs.items()},
            "final_objective_all": {m: [r["final_objective"] for r in v] for m, v in runs.items()},
            # > 1: the reproducible mode is faster; < 1: what reproducibility costs
            "reproducible_vs_default": med["default"] / med["reproducible"],
        }
    result = {"settings": vars(args) | {"out": None},
              "machine": {"python": platform.python_version(), "threads": cpus.threads(),
                          "processor": platform.processor() or platform.machine()},
              "seconds_total": time.perf_counter() - t0, "cases": cases}
    from fvtrust.io import atomic_write_json

    atomic_write_json(args.out, result)
    print(json.dumps({n: round(c["reproducible_vs_default"], 3) for n, c in cases.items()}, indent=2))


if __name__ == "__main__":
    main()
