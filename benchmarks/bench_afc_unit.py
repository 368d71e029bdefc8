"""One unit's complete 2-AFC measurement (both tasks: synthetic references, observer views,
queries, occlusion scoring, observers) as a sweep worker makes it, old and new code paths in
one run, alternating unit by unit:

* **old**: each task on its own, as the worker did through 0.3: per unit and task, the
  observer's views of the pool, the BatchNorm fold of the scoring network and the unit's K max
  and K min visualizations (rendered once per task);
* **new**: views and scoring network once per worker, the visualizations once per unit and
  shared by both tasks (``run_afc(views=, scorer=, renders=)``).

Both paths must give the same accuracies (checked). Also a profile of one new-path unit: where
its time goes. Writes JSON.

    python -m benchmarks.bench_afc_unit --out benchmarks/results/afc_unit_cpu.json
"""

from __future__ import annotations

import cProfile
import json
import platform
import pstats
import time

import numpy as np

from benchmarks.afc_bench import afc_bench, afc_parser

#: functions whose cumulative time the profile reports (name → where it is defined)
PROFILED = {"render": "render/loop.py", "views": "observers/embedding.py",
            "occlusion_responses": "observers/occlusion.py", "fuse_for_rendering": "nets/fuse.py",
            "_query_pair": "experiments/afc.py", "occlusion_pair": "experiments/afc.py"}


def main() -> None:
    args = afc_parser(__doc__.splitlines()[0], "benchmarks/results/afc_unit_cpu.json", "0,1,2").parse_args()
    bench = afc_bench(args)
    from fvtrust import cpus
    from fvtrust.empirical.experiments.afc import CONDITIONS, afc_scorer, run_afc
    from fvtrust.io import atomic_write_json

    plan, steps, units, model, config = bench.plan, bench.steps, bench.units, bench.model, bench.config
    pool, observer, responses = bench.pool, bench.observer, bench.responses
    setup = bench.setup_seconds  # what both paths share: once per worker in either
    t0 = time.perf_counter()
    views = observer.views(pool.images)
    scorer = afc_scorer(model, [args.layer])
    once = time.perf_counter() - t0  # the new path's once-per-worker work

    def unit_old(u: int) -> dict[str, list[float]]:
        out = {}
        for task in ("references", "occlusion"):
            r = run_afc(config(task, u), progress=False, model=model, observer=observer, pool=pool,
                        responses=responses)
            out[task] = [r.per_unit["mis"][c][f"{args.layer}:{u}"] for c in CONDITIONS]
        return out

    def unit_new(u: int) -> dict[str, list[float]]:
        out, renders = {}, {}
        for task in ("references", "occlusion"):
            r = run_afc(config(task, u), progress=False, model=model, observer=observer, pool=pool,
                        responses=responses, views=views, scorer=scorer, renders=renders)
            out[task] = [r.per_unit["mis"][c][f"{args.layer}:{u}"] for c in CONDITIONS]
        return out

    seconds: dict[str, list[float]] = {"old": [], "new": []}
    same = []
    for u in units:  # alternate, so drift in machine load hits both paths
        results = {}
        for name, run in (("old", unit_old), ("new", unit_new)):
            t0 = time.perf_counter()
            results[name] = run(u)
            seconds[name].append(time.perf_counter() - t0)
            print(f"unit {u} {name}: {seconds[name][-1]:.1f} s", flush=True)
        same.append(results["old"] == results["new"])

    profiler = cProfile.Profile()
    profiler.enable()
    unit_new(units[0])
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = max(v[3] for v in stats.stats.values())
    profile = {}
    for (file, _, name), (_, _, _, cum, _) in stats.stats.items():
        if name in PROFILED and file.endswith(PROFILED[name]):
            profile[name] = profile.get(name, 0.0) + cum
    med = {k: float(np.median(v)) for k, v in seconds.items()}
    result = {
        "settings": {"model": args.model, "layer": args.layer, "units": units, "steps": steps,
                     "size": plan.size, "n_references": plan.n_references, "n_trials": plan.n_trials,
                     "n_natural": plan.n_natural},
        "machine": {"python": platform.python_version(), "threads": cpus.threads(),
                    "processor": platform.processor() or platform.machine()},
        "seconds_setup_both_paths": setup, "seconds_once_per_worker_new": once,
        "seconds_per_unit": seconds, "seconds_per_unit_median": med,
        "new_vs_old": med["old"] / med["new"],  # > 1: the new path is faster
        "same_accuracies": same,
        "profile_new_unit_seconds": {"total": total, **profile},
    }
    atomic_write_json(args.out, result)
    print(json.dumps({k: result[k] for k in ("seconds_per_unit_median", "new_vs_old", "same_accuracies",
                                             "seconds_once_per_worker_new", "profile_new_unit_seconds")},
                     indent=2))


if __name__ == "__main__":
    main()
