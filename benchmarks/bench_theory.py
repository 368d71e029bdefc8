"""Benchmark the theory core: the full results table, and 1,000 counterexample
constructions + verifications (round-robin over the impossible classes). Writes JSON.

    python benchmarks/bench_theory.py --out benchmarks/results/theory.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from fvtrust.io import atomic_write_json
from fvtrust.theory.classes import get_class
from fvtrust.theory.table import compute_table


def _interior(cls, f, k):
    """The k-th grid point that is neither extreme of f."""
    phi = cls.visualize(f)
    pts = cls.grid.points
    keep = ~(np.all(pts == phi.x_min, axis=1) | np.all(pts == phi.x_max, axis=1))
    return pts[keep][(37 * k) % int(keep.sum())]


#: Classes whose pair is built from a sampled member and a query the theorem covers.
QUERIES = {
    "all": _interior,
    "relu": _interior,
    "monotone": lambda cls, f, k: np.array([0.5, 0.2 + 0.001 * (k % 100)]),
    "lipschitz_large": lambda cls, f, k: np.array([1.0, 0.0]),
    "affine": lambda cls, f, k: np.array([float(f.w[0] >= 0), float(f.w[1] < 0)]),
    "convex": lambda cls, f, k: np.array([0.0, 0.0]),
}


def bench_constructions(n: int) -> dict[str, object]:
    classes = {key: get_class(key) for key in QUERIES}
    members = {key: [cls.sample(s) for s in range(8)] for key, cls in classes.items()}
    per_class: dict[str, list[float]] = {key: [] for key in QUERIES}
    failures = 0
    start = time.perf_counter()
    for k in range(n):
        key = list(QUERIES)[k % len(QUERIES)]
        cls, f = classes[key], members[key][k % 8]
        t0 = time.perf_counter()
        subject = cls.canonical_phi() if key == "lipschitz_large" else f
        phi_range = cls.visualize(f).range if key != "lipschitz_large" else 1.0
        pair = cls.counterexample_pair(subject, QUERIES[key](cls, f, k), 0.01 * phi_range)
        failures += not all(pair.verify(cls).values())
        per_class[key].append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    return {"n": n, "seconds": total, "per_construction_ms": 1000 * total / n,
            "failures": failures,
            "per_class_ms": {k: 1000 * float(np.mean(v)) for k, v in per_class.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="benchmarks/results/theory.json")
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    t0 = time.perf_counter()
    table = compute_table()
    table_s = time.perf_counter() - t0
    result = {
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "cpu_count": torch.get_num_threads(), "platform": platform.platform()},
        "table": {"seconds": table_s, "entries": len(table.entries)},
        "constructions": bench_constructions(args.n),
    }
    atomic_write_json(Path(args.out), result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
