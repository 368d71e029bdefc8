"""Render speed with torch's default threads vs the threads fvtrust chooses, on an idle machine
and under a CPU-bound background load that the benchmark starts and stops itself.

Each measurement runs in a fresh process (so torch's default is its own, untouched), renders
4 units of Lite0's ``_blocks.8`` at 64 px for a fixed number of steps after a warm-up, and
reports steps/s. Thread settings:

* ``default``: torch's default (it counts the cores of the affinity mask, not a cgroup quota);
* ``fvtrust``: :func:`fvtrust.cpus.use_threads` (affinity mask and cgroup quota);
* ``1``: what fvtrust chooses inside an allocation of one CPU that only a cgroup quota
  enforces (Kubernetes ``cpu: 1``, ``docker --cpus 1``), where torch still takes every core.

Background load: one busy-looping process per CPU of the machine, each stopped when the
measurement ends (and killed after ``--load-limit`` seconds whatever happens).

    python benchmarks/bench_threads.py --out benchmarks/results/threads_cpu.json
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
import torch

from fvtrust import cpus
from fvtrust.io import atomic_write_json

_RENDER = """
import json, sys, time, torch
from fvtrust import cpus
setting, steps = sys.argv[1], int(sys.argv[2])
if setting == "fvtrust":
    cpus.use_threads()
elif setting != "default":
    cpus.use_threads(int(setting))
from fvtrust.empirical.nets.registry import load_model
from fvtrust.empirical.render.loop import render
from fvtrust.empirical.render.objectives import channel
model = load_model("efficientnet_lite0")
objective = channel("_blocks.8", [0, 1, 2, 3])
render(model, objective, steps=4, size=64, seeds=[0, 1, 2, 3])  # warm-up
start = time.perf_counter()
render(model, objective, steps=steps, size=64, seeds=[0, 1, 2, 3])
print(json.dumps({"threads": torch.get_num_threads(), "steps_per_s": steps / (time.perf_counter() - start)}))
"""

_BUSY = "import time\nend = time.time() + float(__import__('sys').argv[1])\nwhile time.time() < end: pass\n"


def _measure(setting: str, steps: int, loaded: bool, load_limit: float) -> dict:
    load = [subprocess.Popen([sys.executable, "-c", _BUSY, str(load_limit)])
            for _ in range(os.cpu_count() or 1)] if loaded else []
    env = {k: v for k, v in os.environ.items() if k not in (cpus.ENV, "OMP_NUM_THREADS")}
    env["TQDM_DISABLE"] = "1"
    try:
        time.sleep(0.5 if loaded else 0)  # the load is running before the render starts
        out = subprocess.run([sys.executable, "-c", _RENDER, setting, str(steps)], env=env, check=True,
                             capture_output=True, text=True, timeout=load_limit)
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        for p in load:
            p.kill()
            p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--load-limit", type=float, default=300.0, help="seconds a background load may live")
    ap.add_argument("--out", default="benchmarks/results/threads_cpu.json")
    args = ap.parse_args()
    settings = ["default", "fvtrust", "1"]
    rates: dict[str, dict[str, list[float]]] = {c: {s: [] for s in settings} for c in ("idle", "loaded")}
    threads: dict[str, int] = {}
    for r in range(args.repeats):
        for condition in ("idle", "loaded"):
            for setting in settings if r % 2 == 0 else settings[::-1]:  # alternate the order
                m = _measure(setting, args.steps, condition == "loaded", args.load_limit)
                threads[setting] = m["threads"]
                rates[condition][setting].append(m["steps_per_s"])
                print(f"{condition:6s} threads={setting:8s} ({m['threads']}): {m['steps_per_s']:.2f} steps/s",
                      flush=True)
    med = {c: {s: float(np.median(v)) for s, v in d.items()} for c, d in rates.items()}
    record = {
        "render": {"model": "efficientnet_lite0", "layer": "_blocks.8", "units": 4, "size": 64,
                   "steps": args.steps, "repeats": args.repeats},
        "threads": threads, "available_cpus": cpus.available_cpus(), "affinity_cpus": cpus.affinity_cpus(),
        "cgroup_cpus": cpus.cgroup_cpus(), "machine_cpus": os.cpu_count(),
        "background_load": f"{os.cpu_count()} busy-looping processes (one per CPU of the machine)",
        "steps_per_second": rates, "median": med,
        "ratio_fvtrust_vs_default": {c: med[c]["fvtrust"] / med[c]["default"] for c in med},
        "ratio_1_vs_default": {c: med[c]["1"] / med[c]["default"] for c in med},
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
    }
    for c in med:
        print(f"{c}: fvtrust/default {record['ratio_fvtrust_vs_default'][c]:.2f}x, "
              f"1 thread/default {record['ratio_1_vs_default'][c]:.2f}x")
    atomic_write_json(args.out, record)


if __name__ == "__main__":
    main()
