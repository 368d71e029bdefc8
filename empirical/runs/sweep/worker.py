"""The sweep's worker side: measure the units of one task, keeping networks, observers and
natural images loaded for the tasks that follow."""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fvtrust import cpus
from fvtrust._version import __version__
from fvtrust.empirical.data.images import png_bytes
from fvtrust.empirical.data.natural import natural_images
from fvtrust.empirical.experiments.afc import (
    CONDITIONS,
    AFCConfig,
    afc_observer,
    afc_scorer,
    pool_responses,
    run_afc,
)
from fvtrust.empirical.experiments.audit.detectors import AuditConfig, audit_scores, default_observer
from fvtrust.empirical.experiments.sanity import SanityConfig, run_sanity
from fvtrust.empirical.nets.layers import layer_responses
from fvtrust.empirical.nets.registry import load_model, resolve_device
from fvtrust.empirical.render.loop import render
from fvtrust.empirical.render.objectives import channel
from fvtrust.empirical.runs.sweep.plan import (
    AFC_MEASUREMENTS,
    ModelRef,
    SweepPlan,
    SweepTask,
    afc_measurement,
)

#: what a worker process keeps between tasks: networks, observers, natural images, responses.
_WORKER_CACHE: dict[Any, Any] = {}


_WORKER_LOADS = {"models": 0}


def _cached(key: Any, build: Any) -> Any:
    if key not in _WORKER_CACHE:
        _WORKER_CACHE[key] = build()
    return _WORKER_CACHE[key]


def _worker_model(ref: ModelRef, device: str) -> Any:
    def build() -> Any:
        _WORKER_LOADS["models"] += 1
        return load_model(ref.name, weights=ref.weights, device=device)
    return _cached(("model", ref, device), build)


def _pool_key(plan: SweepPlan) -> tuple[Any, ...]:
    return ("pool", plan.images, plan.sources, plan.n_natural, plan.size, plan.seed)


def _worker_pool(plan: SweepPlan) -> Any:
    """The natural images of the exemplars and the 2-AFC trials: one pool, loaded once per
    worker (the same images :func:`~empirical.experiments.afc.afc_pool` draws)."""
    return _cached(_pool_key(plan),
                   lambda: natural_images(plan.images, plan.n_natural, plan.size, seed=plan.seed + 17,
                                          sources=plan.sources))


def _record_meta(plan: SweepPlan, ref: ModelRef, config_hash: str, device: str | None,
                 error: str | None = None) -> dict[str, Any]:
    """The columns every record has: which unit's settings, where it ran, and how it ended."""
    return {"model": ref.name, "weights": ref.weights or "", "status": "ok" if error is None else "failed",
            "error": error, "config_hash": config_hash, "seed": plan.seed, "device": device,
            "worker": None if error is not None else f"{socket.gethostname()}:{os.getpid()}",
            "versions": _versions()}


def afc_config(plan: SweepPlan, ref: ModelRef, layer: str, units: list[int], key: str) -> Any:
    """The 2-AFC config of measurement ``afc_<key>`` (``key``: ``references``,
    ``references_max1``, ``occlusion_patch30``, …; see ``AFC_MEASUREMENTS``) for `units`."""
    task, fields = afc_measurement(key)
    default = AFCConfig.observer
    observer = default if ref.name != default else "efficientnet_lite0"  # never the network itself
    return AFCConfig(**{"model": ref.name, "weights": ref.weights, "task": task, "layers": [layer],
                        "units": units, "observer": observer, "observers": None,
                        "n_references": plan.n_references, "n_trials": plan.n_trials,
                        "n_natural": plan.n_natural, "images": plan.images, "sources": plan.sources,
                        "size": plan.size, "steps": plan.steps, "seed": plan.seed} | fields)


@dataclass
class UnitTask:
    """What a unit measurement works on: the plan, the network and where it runs, one layer
    and its units, the records to fill (one per unit) and the PNGs to send (path → bytes)."""
    plan: SweepPlan
    ref: ModelRef
    model: Any
    device: str
    layer: str
    units: list[int]
    records: list[dict[str, Any]]
    images: dict[str, bytes]
    #: what the task's measurements share (both 2-AFC tasks: the units' synthetic references)
    shared: dict[str, Any] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return Path("images") / self.ref.folder / self.layer  # other weights: other PNGs


def _measure_render(t: UnitTask) -> None:
    """The max and min visualization of each unit (PNG) and its final objective."""
    plan = t.plan
    for sign, side in ((1.0, "max"), (-1.0, "min")):
        result = render(t.model, channel(t.layer, t.units) * sign, steps=plan.steps, size=plan.size,
                        seeds=[plan.seed + u for u in t.units], device=t.device,
                        precision=plan.precision)
        for i, (u, rec) in enumerate(zip(t.units, t.records, strict=True)):
            path = t.folder / f"unit_{u:04d}_{side}.png"
            t.images[str(path)] = png_bytes(result.images[i])
            rec[f"render_{side}_png"] = str(path)
            # the activation of the PNG as stored (8 bits, no jitter), and the optimizer's own
            rec[f"render_{side}_activation"] = float(sign * result.scores[i])
            rec[f"render_{side}_last_objective"] = float(sign * result.last_objective[i])


def _measure_exemplars(t: UnitTask) -> None:
    """The K most and K least activating natural images of each unit (ids, activations)."""
    plan = t.plan
    pool = _worker_pool(plan)
    responses = _cached(("responses", t.ref, t.layer, t.device, plan.images, plan.sources,
                         plan.n_natural, plan.size, plan.seed),
                        lambda: layer_responses(t.model, t.layer, pool.images))
    k = plan.n_references
    for u, rec in zip(t.units, t.records, strict=True):
        order = np.argsort(-responses[:, u].numpy(), kind="stable")
        for side, idx in (("max", order[:k]), ("min", order[::-1][:k])):
            rec[f"exemplar_{side}_ids"] = [pool.sources[i] for i in idx]
            rec[f"exemplar_{side}_activations"] = [float(responses[i, u]) for i in idx]
        rec["natural_activation_mean"] = float(responses[:, u].mean())


def trial_column(key: str, observer: str, condition: str, what: str) -> str:
    """The store's column of one observer's per-trial outcomes (``correct`` ∈ {0, ½, 1} or
    ``p``, the observer's P(correct)) in one reference condition of measurement ``afc_<key>``."""
    return f"afc_{key}_{observer}_{condition}_{what}"


def _measure_afc(key: str) -> Callable[[UnitTask], None]:
    def measure(t: UnitTask) -> None:
        """The machine observer's 2-AFC accuracy per reference condition, per unit. A unit's
        2-AFC measurements share its renders (those with the same K) and the pool's views."""
        plan = t.plan
        # The pool's forward pass is the same for every unit of the layer: once per worker.
        responses = _cached(("afc_responses", t.ref, t.layer, t.device, plan.images, plan.sources,
                             plan.n_natural, plan.size, plan.seed),
                            lambda: pool_responses(t.model, t.layer, _worker_pool(plan)))
        for u, rec in zip(t.units, t.records, strict=True):
            # One unit per run: its trials and references are drawn exactly as by
            # run_afc(units=[u]), whatever chunk the unit landed in (same command, same numbers).
            config = afc_config(plan, t.ref, t.layer, [u], key)
            observer = _cached(("observer", config.observer, config.size, t.device),
                               lambda c=config: afc_observer(c, t.device))
            # Once per worker, not per unit: the observer's views of the pool and the scoring
            # network; once per unit, not per task: its synthetic references.
            views = _cached(("afc_views", config.observer, config.size, t.device, _pool_key(plan)),
                            lambda o=observer: o.views(_worker_pool(plan).images))
            scorer = _cached(("afc_scorer", t.ref, t.layer, t.device),
                             lambda: afc_scorer(t.model, [t.layer]))
            # plan.renders: the unit's synthetic references kept on disk by their own key, so
            # another sweep of this unit (another condition, another store) loads them
            result = run_afc(config, device=t.device, progress=False, shared_dir=plan.renders,
                             model=t.model, observer=observer,
                             pool=_worker_pool(plan), responses={t.layer: responses}, views=views,
                             scorer=scorer, renders=t.shared.setdefault("afc_renders", {}))
            name = f"{t.layer}:{u}"
            for cond in CONDITIONS:
                rec[f"afc_{key}_{cond}"] = result.per_unit["mis"][cond][name]
            # every observer's trials, so that paired comparisons can be made from the store
            for observer_name, by_cond in result.trials.items():
                for cond, by_unit in by_cond.items():
                    for what in ("correct", "p"):
                        rec[trial_column(key, observer_name, cond, what)] = by_unit[name][what]
    return measure


def audit_config(plan: SweepPlan) -> AuditConfig:
    """The audit settings of a plan (an :class:`~empirical.runs.audit.AuditPlan`'s own
    fields, the defaults for a plain sweep plan)."""
    default = AuditConfig()
    return AuditConfig(n_seeds=getattr(plan, "audit_seeds", default.n_seeds), steps=plan.steps,
                       size=plan.size, n_exemplars=plan.n_references,
                       n_random=getattr(plan, "n_random", default.n_random),
                       n_gradient=getattr(plan, "n_gradient", default.n_gradient),
                       observer=getattr(plan, "observer", default.observer), seed=plan.seed)


def _measure_audit(t: UnitTask) -> None:
    """Every audit detector's score per unit, the first render (PNG) and the top exemplars."""
    plan, config = t.plan, audit_config(t.plan)
    pool = _worker_pool(plan)
    responses = _cached(("responses", t.ref, t.layer, t.device, plan.images, plan.sources,
                         plan.n_natural, plan.size, plan.seed),
                        lambda: layer_responses(t.model, t.layer, pool.images))
    name = config.observer_for(t.ref.name)
    observer = _cached(("audit_observer", name, config.observer_size, t.device),
                       lambda: default_observer(config, t.ref.name, t.device))
    scores, ctx = audit_scores(t.model, t.layer, t.units, pool, config, observer=observer,
                               responses=responses)
    for i, (u, rec) in enumerate(zip(t.units, t.records, strict=True)):
        path = t.folder / f"unit_{u:04d}_audit.png"
        t.images[str(path)] = png_bytes(ctx.renders[i, 0])
        rec["audit_png"] = str(path)
        rec["audit_render_activation"] = float(ctx.render_activations[i].mean())
        rec["audit_exemplar_ids"] = [pool.sources[j] for j in ctx.exemplars[i]]
        rec["audit_exemplar_index"] = [int(j) for j in ctx.exemplars[i]]
        for d, values in scores.items():
            rec[f"audit_{d}"] = float(values[i])


#: Measurements of a unit (``--measure``): name → a function that fills each unit's record
#: with its columns (one call shape). ``sanity`` measures a whole model: :func:`measure_model`.
UNIT_MEASUREMENTS: dict[str, Callable[[UnitTask], None]] = {
    "render": _measure_render, "exemplars": _measure_exemplars,
    **{name: _measure_afc(name.removeprefix("afc_")) for name in AFC_MEASUREMENTS},
    "audit": _measure_audit}


def measure_task(plan: SweepPlan, task: SweepTask, device: str = "auto",
                 unit_hash: str | None = None) -> tuple[list[dict], dict[str, bytes]]:
    """Every measurement of `plan` for the units of `task`: (records, PNG bytes by path).
    `unit_hash` is the settings hash the driver computed (default: computed here)."""
    dev = str(resolve_device(None if device == "auto" else device))
    t0 = time.perf_counter()
    ref, layer, units = task.model, task.layer, list(task.units)
    model = _worker_model(ref, dev)
    base = {**_record_meta(plan, ref, unit_hash or plan.unit_config_hash(ref, layer), dev),
            "layer": layer, "worker_model_loads": _WORKER_LOADS["models"]}
    # A unit's renders and draws use seed + unit: the record holds the unit's own seed.
    unit_task = UnitTask(plan, ref, model, dev, layer, units,
                         [{**base, "unit": u, "seed": plan.seed + u} for u in units], {})
    for name, measure in UNIT_MEASUREMENTS.items():
        if name in plan.measure:
            measure(unit_task)
    seconds = (time.perf_counter() - t0) / len(units)
    for rec in unit_task.records:
        rec["seconds"] = seconds
    return unit_task.records, unit_task.images


def measure_model(plan: SweepPlan, ref: ModelRef, device: str = "auto",
                  model_hash: str | None = None) -> dict[str, Any]:
    """The per-model measurements of `plan` (the sanity check) as one record."""
    dev = str(resolve_device(None if device == "auto" else device))
    t0 = time.perf_counter()
    config = SanityConfig(model=ref.name, weights=ref.weights, size=plan.size, steps=plan.steps,
                          seed=plan.seed)
    natural = (natural_images(plan.images, config.n_natural, config.size, seed=config.seed,
                              sources=plan.sources)
               if plan.images is not None else None)  # None: the bundled photos, as `fvtrust sanity`
    result = run_sanity(config, device=dev, natural=natural, model=_worker_model(ref, dev))
    return {**_record_meta(plan, ref, model_hash or plan.model_config_hash(ref), dev),
            "seconds": time.perf_counter() - t0, "sanity_layers": result.layers,
            "sanity_score": result.score_mean,
            "sanity_ci_low": [c[0] for c in result.score_ci],
            "sanity_ci_high": [c[1] for c in result.score_ci], "sanity_classes": result.classes}


def _versions() -> str:
    return f"fvtrust {__version__}; torch {torch.__version__}"


def failed_records(plan: SweepPlan, task: SweepTask | ModelRef, error: str,
                    unit_hash: str) -> list[dict]:
    if isinstance(task, ModelRef):
        return [{**_record_meta(plan, task, unit_hash, None, error), "seconds": None}]
    meta = _record_meta(plan, task.model, unit_hash, None, error)
    return [{**meta, "layer": task.layer, "unit": u, "seed": plan.seed + u, "seconds": None}
            for u in task.units]


class RetryableError(RuntimeError):
    """A task failed in a way another try may not repeat (the machine, not the input)."""


class InputError(RuntimeError):
    """A task failed on its input (a damaged image, a bad file): the same on every retry."""


#: errors of the input, not of the machine: never retried
_DETERMINISTIC = (ValueError, TypeError, KeyError, IndexError, FileNotFoundError, UnicodeError)


def remote_measure(plan: SweepPlan, task: SweepTask | ModelRef, device: str, threads: int,
                    unit_hash: str) -> tuple[list[dict], dict[str, bytes]]:
    torch.set_num_threads(threads)
    cpus.reuse_freed_memory()  # a Ray worker process is ours, as the CLI's is
    cpus.reproducible_blas()  # a cluster's worker does not inherit the driver's environment
    try:
        if isinstance(task, ModelRef):
            return [measure_model(plan, task, device, unit_hash)], {}
        return measure_task(plan, task, device, unit_hash)
    except Exception as exc:
        # Ray would pickle the traceback's frames; a plain message survives any cluster. An
        # error of the input is raised as such, so Ray does not retry it.
        kind = InputError if isinstance(exc, _DETERMINISTIC) else RetryableError
        raise kind(f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}") from None
