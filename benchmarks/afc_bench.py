"""What the 2-AFC benchmarks share: their options, and one unit's setting as a sweep worker
builds it (the plan's defaults, the `mis` observer, the pool and its responses)."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any


def afc_parser(description: str, out: str, units: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=out)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--layer", default="_blocks.10")
    parser.add_argument("--units", default=units)
    parser.add_argument("--steps", type=int, default=None, help="default: the sweep plan's")
    return parser


@dataclass
class AFCBench:
    """A benchmark's network, units and the work every code path shares (`setup_seconds`)."""

    args: argparse.Namespace
    plan: Any
    steps: int
    units: list[int]
    model: Any
    pool: Any
    observer: Any
    responses: dict[str, Any]
    setup_seconds: float

    def config(self, key: str, unit: int) -> Any:
        """Measurement ``afc_<key>`` of one unit, as the sweep worker builds it."""
        from fvtrust.empirical.experiments.afc import AFCConfig
        from fvtrust.empirical.runs.sweep.plan import afc_measurement

        task, fields = afc_measurement(key)
        plan, args = self.plan, self.args
        return AFCConfig(**{"model": args.model, "task": task, "layers": [args.layer], "units": [unit],
                            "observers": ["mis"], "n_references": plan.n_references,
                            "n_trials": plan.n_trials, "n_natural": plan.n_natural, "size": plan.size,
                            "steps": self.steps, "seed": plan.seed} | fields)


def afc_bench(args: argparse.Namespace) -> AFCBench:
    from fvtrust import cpus

    cpus.use_threads()
    cpus.reuse_freed_memory()
    from fvtrust.empirical.experiments.afc import afc_observer, afc_pool, pool_responses
    from fvtrust.empirical.nets.registry import load_model
    from fvtrust.empirical.runs.sweep.plan import SweepPlan

    plan = SweepPlan()
    bench = AFCBench(args, plan, args.steps or plan.steps, [int(u) for u in args.units.split(",")],
                     load_model(args.model), None, None, {}, 0.0)
    t0 = time.perf_counter()
    first = bench.config("references", bench.units[0])
    bench.pool, bench.observer = afc_pool(first), afc_observer(first)
    bench.responses = {args.layer: pool_responses(bench.model, args.layer, bench.pool)}
    bench.setup_seconds = time.perf_counter() - t0
    return bench
