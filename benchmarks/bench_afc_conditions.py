"""The papers' other 2-AFC conditions of one unit, measured after its main measurement (what an
``afc_conditions_*`` appendix part, or ``fvtrust sweep --measure afc_references_max,...``
into a second store, does), old and new code paths in one run, alternating unit by unit:

* **old**: the unit's K max and K min visualizations rendered again (they were kept in the
  first run's memory only);
* **new**: loaded from the folder where the main measurement kept them (``--renders``,
  ``run_afc(shared_dir=)``, keyed by :class:`SyntheticReferences`).

The five conditions: Max-K, Max-1, Min+Max-1 (Borowski et al.), 30 % and 50 % patches
(Zimmermann et al.). Both paths must give the same accuracies (checked). Writes JSON.

    python -m benchmarks.bench_afc_conditions --out benchmarks/results/afc_conditions_cpu.json
"""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
import time

import numpy as np

from benchmarks.afc_bench import afc_bench, afc_parser


def main() -> None:
    args = afc_parser(__doc__.splitlines()[0], "benchmarks/results/afc_conditions_cpu.json",
                      "0,1").parse_args()
    bench = afc_bench(args)
    from fvtrust import cpus
    from fvtrust.empirical.experiments.afc import CONDITIONS, afc_scorer, run_afc
    from fvtrust.empirical.runs.appendix import AFC_CONDITIONS
    from fvtrust.io import atomic_write_json

    plan, steps, units, model, config = bench.plan, bench.steps, bench.units, bench.model, bench.config
    pool, observer, responses = bench.pool, bench.observer, bench.responses
    views = observer.views(pool.images)
    scorer = afc_scorer(model, [args.layer])
    shared = {"progress": False, "model": model, "observer": observer, "pool": pool,
              "responses": responses, "views": views, "scorer": scorer}
    kept = tempfile.mkdtemp(prefix="fvtrust-bench-renders-")
    t0 = time.perf_counter()
    for u in units:  # the main measurement, keeping its renders (not timed in either path)
        run_afc(config("references", u), shared_dir=kept, renders={}, **shared)
    main_seconds = (time.perf_counter() - t0) / len(units)

    def conditions(u: int, folder: str | None) -> dict[str, list[float]]:
        out, renders = {}, {}  # within a unit, the conditions share renders in memory either way
        for name in AFC_CONDITIONS:
            key = name.removeprefix("afc_")
            r = run_afc(config(key, u), shared_dir=folder, renders=renders, **shared)
            out[key] = [r.per_unit["mis"][c][f"{args.layer}:{u}"] for c in CONDITIONS]
        return out

    seconds: dict[str, list[float]] = {"old": [], "new": []}
    same = []
    for u in units:  # alternate, so drift in machine load hits both paths
        results = {}
        for name, folder in (("old", None), ("new", kept)):
            t0 = time.perf_counter()
            results[name] = conditions(u, folder)
            seconds[name].append(time.perf_counter() - t0)
            print(f"unit {u} {name}: {seconds[name][-1]:.1f} s", flush=True)
        same.append(results["old"] == results["new"])
    shutil.rmtree(kept)  # the benchmark's own temporary folder
    med = {k: float(np.median(v)) for k, v in seconds.items()}
    result = {
        "settings": {"model": args.model, "layer": args.layer, "units": units, "steps": steps,
                     "size": plan.size, "n_references": plan.n_references, "n_trials": plan.n_trials,
                     "n_natural": plan.n_natural, "conditions": list(AFC_CONDITIONS)},
        "machine": {"python": platform.python_version(), "threads": cpus.threads(),
                    "processor": platform.processor() or platform.machine()},
        "seconds_main_measurement_per_unit": main_seconds,
        "seconds_per_unit": seconds, "seconds_per_unit_median": med,
        "new_vs_old": med["old"] / med["new"],  # > 1: the new path is faster
        "same_accuracies": same,
    }
    atomic_write_json(args.out, result)
    print(json.dumps({k: result[k] for k in ("seconds_per_unit_median", "new_vs_old", "same_accuracies",
                                             "seconds_main_measurement_per_unit")}, indent=2))


if __name__ == "__main__":
    main()
