"""Sweep throughput with 1 vs 2 local Ray workers, in one run, written as JSON.

The same plan (render max/min + exemplars, all units of one layer) runs into fresh stores,
alternating 1 and 2 workers; units/s counts the whole sweep (Ray start, model loads, tasks).

    python benchmarks/bench_sweep.py --out benchmarks/results/sweep_cpu.json
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile

import numpy as np
import torch

from fvtrust.empirical.runs.sweep.driver import run_sweep
from fvtrust.empirical.runs.sweep.plan import SweepPlan
from fvtrust.io import atomic_write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layer", default="_blocks.2")
    ap.add_argument("--units", default="all")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/sweep_cpu.json")
    args = ap.parse_args()
    plan = SweepPlan(layers=[args.layer], units=args.units, steps=args.steps, size=args.size,
                     chunk=args.chunk, n_natural=60, n_references=5)
    rates: dict[int, list[float]] = {1: [], 2: []}
    n_units = 0
    for r in range(args.repeats):
        for workers in (1, 2) if r % 2 == 0 else (2, 1):
            with tempfile.TemporaryDirectory() as store:
                summary = run_sweep(plan, store, workers=workers, progress=False)
            assert summary.n_failed == 0
            n_units = summary.n_computed
            rates[workers].append(summary.units_per_second)
            print(f"workers={workers}: {summary.n_computed} units in {summary.seconds:.1f} s "
                  f"= {summary.units_per_second:.2f} units/s")
    ratio = float(np.median(rates[2]) / np.median(rates[1]))
    record = {"plan": {"layer": args.layer, "units": args.units, "steps": args.steps, "size": args.size,
                       "chunk": args.chunk, "measure": plan.measure},
              "n_units": n_units, "units_per_second": {str(k): v for k, v in rates.items()},
              "ratio_2_vs_1_workers": ratio, "cpu_cores": os.cpu_count(), "torch": torch.__version__,
              "machine": platform.processor() or platform.machine()}
    print(f"2 vs 1 workers: {ratio:.2f}x")
    atomic_write_json(args.out, record)


if __name__ == "__main__":
    main()
