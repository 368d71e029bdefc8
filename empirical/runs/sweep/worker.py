"""The sweep's worker side: measure the units of one task, keeping networks, observers and
natural images loaded for the tasks that follow."""

from __future__ import annotations

import os
import socket
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fvtrust.empirical.data.images import png_bytes
from fvtrust.empirical.runs.sweep.plan import ModelRef, SweepPlan, SweepTask
from fvtrust.stages import digest

#: what a worker process keeps between tasks: networks, observers, natural images, responses.
_WORKER_CACHE: dict[Any, Any] = {}


_WORKER_LOADS = {"models": 0}


def _cached(key: Any, build: Any) -> Any:
    if key not in _WORKER_CACHE:
        _WORKER_CACHE[key] = build()
    return _WORKER_CACHE[key]


def _worker_model(ref: ModelRef, device: str) -> Any:
    from fvtrust.empirical.nets.registry import load_model

    def build() -> Any:
        _WORKER_LOADS["models"] += 1
        return load_model(ref.name, weights=ref.weights, device=device)
    return _cached(("model", ref, device), build)


def _worker_pool(plan: SweepPlan) -> Any:
    """The natural images of the exemplars and the 2-AFC trials: one pool, loaded once per
    worker (the same images :func:`~empirical.experiments.afc.afc_pool` draws)."""
    from fvtrust.empirical.data.natural import natural_images

    return _cached(("pool", plan.images, plan.n_natural, plan.size, plan.seed),
                   lambda: natural_images(plan.images, plan.n_natural, plan.size, seed=plan.seed + 17))


def _record_meta(plan: SweepPlan, ref: ModelRef, config_hash: str, device: str | None,
                 error: str | None = None) -> dict[str, Any]:
    """The columns every record has: which unit's settings, where it ran, and how it ended."""
    return {"model": ref.name, "weights": ref.weights or "", "status": "ok" if error is None else "failed",
            "error": error, "config_hash": config_hash, "seed": plan.seed, "device": device,
            "worker": None if error is not None else f"{socket.gethostname()}:{os.getpid()}",
            "versions": _versions()}


def _afc_config(plan: SweepPlan, ref: ModelRef, layer: str, units: list[int], task: str) -> Any:
    from fvtrust.empirical.experiments.afc import AFCConfig

    return AFCConfig(model=ref.name, weights=ref.weights, task=task, layers=[layer], units=units,
                     observers=["mis"], n_references=plan.n_references, n_trials=plan.n_trials,
                     n_natural=plan.n_natural,
                     images=plan.images, size=plan.size, steps=plan.steps, seed=plan.seed)


def measure_task(plan: SweepPlan, task: SweepTask, device: str = "auto",
                 unit_hash: str | None = None) -> tuple[list[dict], dict[str, bytes]]:
    """Every measurement of `plan` for the units of `task`: (records, PNG bytes by path).
    `unit_hash` is the settings hash the driver computed (default: computed here)."""
    from fvtrust.empirical.nets.registry import resolve_device

    dev = str(resolve_device(None if device == "auto" else device))
    t0 = time.perf_counter()
    ref, layer, units = task.model, task.layer, list(task.units)
    model = _worker_model(ref, dev)
    base = {**_record_meta(plan, ref, unit_hash or plan.unit_config_hash(ref, layer), dev),
            "layer": layer, "worker_model_loads": _WORKER_LOADS["models"]}
    records = [{**base, "unit": u} for u in units]
    images: dict[str, bytes] = {}
    # The same network with other weights gets its own folder (its own PNGs).
    tag = ref.name if ref.weights is None else f"{ref.name}-{digest(ref.weights)}"
    folder = Path("images") / tag / layer
    if "render" in plan.measure:
        from fvtrust.empirical.render.loop import render
        from fvtrust.empirical.render.objectives import channel

        for sign, side in ((1.0, "max"), (-1.0, "min")):
            result = render(model, channel(layer, units) * sign, steps=plan.steps, size=plan.size,
                            seeds=[plan.seed + u for u in units], device=dev, precision=plan.precision)
            for i, (u, rec) in enumerate(zip(units, records, strict=True)):
                path = folder / f"unit_{u:04d}_{side}.png"
                images[str(path)] = png_bytes(result.images[i])
                rec[f"render_{side}_png"] = str(path)
                rec[f"render_{side}_activation"] = float(sign * result.trace[-1, i])
    if "exemplars" in plan.measure:
        from fvtrust.empirical.nets.layers import layer_responses

        pool = _worker_pool(plan)
        responses = _cached(("responses", ref, layer, dev, plan.images, plan.n_natural, plan.size, plan.seed),
                            lambda: layer_responses(model, layer, pool.images))
        for u, rec in zip(units, records, strict=True):
            order = np.argsort(-responses[:, u].numpy(), kind="stable")
            for side, idx in (("max", order[:plan.n_references]), ("min", order[::-1][:plan.n_references])):
                rec[f"exemplar_{side}_ids"] = [pool.sources[i] for i in idx]
                rec[f"exemplar_{side}_activations"] = [float(responses[i, u]) for i in idx]
            rec["natural_activation_mean"] = float(responses[:, u].mean())
    for measurement, afc_task in (("afc_references", "references"), ("afc_occlusion", "occlusion")):
        if measurement not in plan.measure:
            continue
        from fvtrust.empirical.experiments.afc import afc_observer, pool_responses, run_afc

        # The pool's forward pass is the same for every unit of the layer: once per worker.
        responses = _cached(("afc_responses", ref, layer, dev, plan.images, plan.n_natural, plan.size,
                             plan.seed),
                            lambda: pool_responses(model, layer, _worker_pool(plan)))

        for u, rec in zip(units, records, strict=True):
            # One unit per run: its trials and references are drawn exactly as by
            # run_afc(units=[u]), whatever chunk the unit landed in (same command, same numbers).
            config = _afc_config(plan, ref, layer, [u], afc_task)
            observer = _cached(("observer", config.observer, config.size, dev),
                               lambda c=config: afc_observer(c, dev))
            result = run_afc(config, device=dev, progress=False, model=model, observer=observer,
                             pool=_worker_pool(plan), responses={layer: responses})
            for cond in ("natural", "synthetic", "random"):
                rec[f"{measurement}_{cond}"] = result.per_unit["mis"][cond][f"{layer}:{u}"]
    seconds = (time.perf_counter() - t0) / len(units)
    for rec in records:
        rec["seconds"] = seconds
    return records, images


def measure_model(plan: SweepPlan, ref: ModelRef, device: str = "auto",
                  model_hash: str | None = None) -> dict[str, Any]:
    """The per-model measurements of `plan` (the sanity check) as one record."""
    from fvtrust.empirical.data.natural import natural_images
    from fvtrust.empirical.experiments.sanity import SanityConfig, run_sanity
    from fvtrust.empirical.nets.registry import resolve_device

    dev = str(resolve_device(None if device == "auto" else device))
    t0 = time.perf_counter()
    config = SanityConfig(model=ref.name, weights=ref.weights, size=plan.size, steps=plan.steps,
                          seed=plan.seed)
    natural = (natural_images(plan.images, config.n_natural, config.size, seed=config.seed)
               if plan.images is not None else None)  # None: the bundled photos, as `fvtrust sanity`
    result = run_sanity(config, device=dev, natural=natural, model=_worker_model(ref, dev))
    return {**_record_meta(plan, ref, model_hash or plan.model_config_hash(ref), dev),
            "seconds": time.perf_counter() - t0, "sanity_layers": result.layers,
            "sanity_score": result.score_mean,
            "sanity_ci_low": [c[0] for c in result.score_ci],
            "sanity_ci_high": [c[1] for c in result.score_ci], "sanity_classes": result.classes}


def _versions() -> str:
    from fvtrust import theory

    return f"fvtrust {theory.__version__}; torch {torch.__version__}"


def failed_records(plan: SweepPlan, task: SweepTask | ModelRef, error: str,
                    unit_hash: str) -> list[dict]:
    if isinstance(task, ModelRef):
        return [{**_record_meta(plan, task, unit_hash, None, error), "seconds": None}]
    meta = _record_meta(plan, task.model, unit_hash, None, error)
    return [{**meta, "layer": task.layer, "unit": u, "seconds": None} for u in task.units]


def remote_measure(plan: SweepPlan, task: SweepTask | ModelRef, device: str, threads: int,
                    unit_hash: str) -> tuple[list[dict], dict[str, bytes]]:
    torch.set_num_threads(threads)
    try:
        if isinstance(task, ModelRef):
            return [measure_model(plan, task, device, unit_hash)], {}
        return measure_task(plan, task, device, unit_hash)
    except Exception as exc:
        # Ray would pickle the traceback's frames; a plain message survives any cluster.
        raise RuntimeError(f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}") from None
