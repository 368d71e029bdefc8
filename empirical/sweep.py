"""Every unit of many layers of many models, on Ray: ``run_sweep(plan, out)``.

A :class:`SweepPlan` names models, layers, units and measurements. It is checked whole in
the driver (an unknown model, layer or unit range fails before any task starts), split into
tasks of (model, layer, chunk of units), and the tasks run as Ray tasks: an embedded local
Ray by default, an existing cluster with ``address``. A worker keeps the networks, the
observer and the natural images it loaded for the tasks that follow (loaded once per worker
process, not once per task). Results arrive in a :class:`~empirical.sweep_store.SweepStore`
(Parquet, PNGs beside it) as each task finishes; a rerun skips finished units.

Measurements per unit (each a set of columns of the unit's record):

* ``render``: the max and min feature visualization (final objective = spatial-mean act.);
* ``exemplars``: the K most and K least activating natural images (ids and activations);
* ``afc_references`` / ``afc_occlusion``: the machine observer's 2-AFC accuracy per
  reference condition (natural, synthetic, random), equal to
  ``run_afc(AFCConfig(layers=[layer], units=[unit], ...))`` for each unit on its own.

and per model: ``sanity``, the layerwise sanity check of class visualizations
(:func:`~empirical.sanity.run_sanity`; natural images: ``images`` or the bundled photos).
"""

from __future__ import annotations

import io
import os
import socket
import time
import traceback
from collections.abc import Set
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fvtrust.empirical.checkpoint import config_hash

MEASUREMENTS = ("render", "exemplars", "afc_references", "afc_occlusion", "sanity")
#: measurements of a whole model (one record per model, in models.parquet), not of a unit.
MODEL_MEASUREMENTS = ("sanity",)


@dataclass(frozen=True)
class ModelRef:
    """A registry network, optionally with its weights from a local file."""

    name: str
    weights: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """``"resnet50"`` or ``"resnet50=/path/to/weights.pt"``."""
        name, _, weights = text.partition("=")
        return cls(name.strip(), weights.strip() or None)

    def __str__(self) -> str:
        return self.name if self.weights is None else f"{self.name}={self.weights}"


def parse_units(text: str | list[int], what: str = "--units") -> list[int] | None:
    """``"all"`` → None (every unit of the layer); ``"0-7,9"`` → [0, …, 7, 9]."""
    if isinstance(text, list):
        units = [int(u) for u in text]
    elif text.strip() == "all":
        return None
    else:
        units = []
        for part in text.split(","):
            part = part.strip()
            try:
                if "-" in part:
                    lo, hi = (int(p) for p in part.split("-", 1))
                    if hi < lo:
                        raise ValueError
                    units.extend(range(lo, hi + 1))
                elif part:
                    units.append(int(part))
            except ValueError:
                raise ValueError(f"{what}: {part!r} in {text!r} is not a unit index or an ascending "
                                 f"range (syntax: all, or 0,1,2 or 0-7 or 0-3,9)") from None
    if not units:
        raise ValueError(f"{what}: no units in {text!r}")
    if len(set(units)) != len(units):
        raise ValueError(f"{what}: {text!r} names some units twice")
    if min(units) < 0:
        raise ValueError(f"{what}: unit indices are >= 0, got {min(units)}")
    return units


@dataclass
class SweepPlan:
    """What to measure where. ``units`` applies to every layer (``"all"`` or ranges)."""

    models: list[str] = field(default_factory=lambda: ["efficientnet_lite0"])
    layers: list[str] = field(default_factory=lambda: ["_blocks.10"])
    units: str | list[int] = "all"
    measure: list[str] = field(default_factory=lambda: ["render", "exemplars"])
    steps: int = 128
    size: int = 128
    seed: int = 0
    chunk: int = 8
    k: int = 9
    pool: int = 240
    images: str | None = None
    afc_trials: int = 20
    precision: str = "float32"

    def __post_init__(self) -> None:
        if not self.models or not self.layers:
            raise ValueError(f"a plan needs models and layers, got models={self.models!r}, "
                             f"layers={self.layers!r}")
        bad = [m for m in self.measure if m not in MEASUREMENTS]
        if bad or not self.measure:
            raise ValueError(f"unknown measurement(s) {bad or self.measure!r}; known: "
                             f"{', '.join(MEASUREMENTS)}")
        for name in ("steps", "size", "chunk", "k", "pool", "afc_trials"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")
        if self.precision not in ("float32", "bfloat16"):
            raise ValueError(f"precision must be float32 or bfloat16, got {self.precision!r}")
        if self.size < 16:
            raise ValueError(f"size must be >= 16 px, got size={self.size}")
        if 2 * self.k + 2 * self.afc_trials > self.pool and any(m.startswith("afc") for m in self.measure):
            raise ValueError(f"pool={self.pool} natural images cannot hold K = {self.k} references per "
                             f"side and {self.afc_trials} trials "
                             f"(need >= {2 * self.k + 2 * self.afc_trials})")
        if 2 * self.k > self.pool:
            raise ValueError(f"pool={self.pool} natural images cannot give k={self.k} exemplars per side")
        parse_units(self.units)

    @property
    def model_refs(self) -> list[ModelRef]:
        return [ModelRef.parse(m) for m in self.models]

    def settings(self) -> dict[str, Any]:
        """What every unit's numbers depend on (the store's identity); the scope (models,
        layers, units) and the task size may change between runs of one store."""
        return {k: v for k, v in asdict(self).items() if k not in ("models", "layers", "units", "chunk")}

    def settings_hash(self) -> str:
        return config_hash(self.settings())

    def model_config_hash(self, model: ModelRef) -> str:
        return self.unit_config_hash(model, "")

    def unit_config_hash(self, model: ModelRef, layer: str) -> str:
        weights = None
        if model.weights is not None:
            from fvtrust.empirical.verify import file_digest

            weights = file_digest(model.weights)
        return config_hash({**self.settings(), "model": model.name, "weights_sha256": weights,
                            "layer": layer})


@dataclass(frozen=True)
class SweepTask:
    """One Ray task: some units of one layer of one model."""

    model: ModelRef
    layer: str
    units: tuple[int, ...]

    @property
    def key(self) -> str:
        label = f"{self.model}|{self.layer}|{','.join(map(str, self.units))}"
        return f"{self.model.name}-{self.layer}-{self.units[0]:05d}-{config_hash(label)}"


@dataclass
class SweepSummary:
    """What a run did, with counts."""

    out: str
    n_units: int
    n_skipped: int
    n_computed: int
    n_failed: int
    n_tasks: int
    seconds: float
    units_per_second: float
    workers: int
    address: str | None
    failures: dict[str, str]


def check_plan(plan: SweepPlan) -> dict[tuple[ModelRef, str], list[int]]:
    """(model, layer) → its units, with every model, layer and unit checked in the driver."""
    from fvtrust.empirical.models import LOGITS, get_layer, layer_channels, load_model

    units = parse_units(plan.units)
    out: dict[tuple[ModelRef, str], list[int]] = {}
    for ref in plan.model_refs:
        if ref.weights is not None and not Path(ref.weights).is_file():
            raise ValueError(f"weights file {ref.weights!r} of model {ref.name!r} does not exist")
        model = load_model(ref.name, weights=ref.weights, device="cpu")
        for layer in plan.layers:
            if layer != LOGITS:
                get_layer(model, layer)  # an unknown layer fails here, naming close matches
            n = layer_channels(model, [layer])[layer][0]
            chosen = list(range(n)) if units is None else units
            bad = [u for u in chosen if u >= n]
            if bad:
                raise ValueError(f"--units {bad[:5]}{' …' if len(bad) > 5 else ''} out of range for "
                                 f"layer {layer!r} of {ref.name} with {n} units")
            out[(ref, layer)] = chosen
    return out


def store_key(ref: ModelRef, layer: str = "", unit: int = -1) -> tuple[str, str, str, int]:
    """How the store names a unit (a model's own record: layer "" and unit -1)."""
    return (ref.name, ref.weights or "", layer, unit)


def split_tasks(targets: dict[tuple[ModelRef, str], list[int]], chunk: int,
                skip: Set[tuple[str, str, str, int]] | None = None) -> list[SweepTask]:
    """Tasks of at most `chunk` units each, leaving out the units in `skip`."""
    skip = skip or set()
    tasks = []
    for (ref, layer), units in targets.items():
        todo = [u for u in units if store_key(ref, layer, u) not in skip]
        tasks.extend(SweepTask(ref, layer, tuple(todo[i:i + chunk])) for i in range(0, len(todo), chunk))
    return tasks


# ---------------------------------------------------------------------------- worker side

#: what a worker process keeps between tasks: networks, observers, natural images, responses.
_WORKER_CACHE: dict[Any, Any] = {}
_WORKER_LOADS = {"models": 0}


def _cached(key: Any, build: Any) -> Any:
    if key not in _WORKER_CACHE:
        _WORKER_CACHE[key] = build()
    return _WORKER_CACHE[key]


def _png_bytes(image: torch.Tensor) -> bytes:
    from fvtrust.empirical.images import to_uint8
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="PNG")
    return buf.getvalue()


def _worker_model(ref: ModelRef, device: str) -> Any:
    from fvtrust.empirical.models import load_model

    def build() -> Any:
        _WORKER_LOADS["models"] += 1
        return load_model(ref.name, weights=ref.weights, device=device)
    return _cached(("model", ref, device), build)


def _worker_pool(plan: SweepPlan) -> Any:
    """The natural images of the exemplars and the 2-AFC trials: one pool, loaded once per
    worker (the same images :func:`~empirical.psychophysics.afc_pool` draws)."""
    from fvtrust.empirical.data import natural_images

    return _cached(("pool", plan.images, plan.pool, plan.size, plan.seed),
                   lambda: natural_images(plan.images, plan.pool, plan.size, seed=plan.seed + 17))


def _record_meta(plan: SweepPlan, ref: ModelRef, config_hash: str, device: str | None,
                 error: str | None = None) -> dict[str, Any]:
    """The columns every record has: which unit's settings, where it ran, and how it ended."""
    return {"model": ref.name, "weights": ref.weights or "", "status": "ok" if error is None else "failed",
            "error": error, "config_hash": config_hash, "seed": plan.seed, "device": device,
            "worker": None if error is not None else f"{socket.gethostname()}:{os.getpid()}",
            "versions": _versions()}


def _afc_config(plan: SweepPlan, ref: ModelRef, layer: str, units: list[int], task: str) -> Any:
    from fvtrust.empirical.psychophysics import AFCConfig

    return AFCConfig(model=ref.name, weights=ref.weights, task=task, layers=[layer], units=units,
                     observers=["mis"], k=plan.k, n_tasks=plan.afc_trials, pool=plan.pool,
                     images=plan.images, size=plan.size, steps=plan.steps, seed=plan.seed)


def measure_task(plan: SweepPlan, task: SweepTask, device: str = "auto",
                 unit_hash: str | None = None) -> tuple[list[dict], dict[str, bytes]]:
    """Every measurement of `plan` for the units of `task`: (records, PNG bytes by path).
    `unit_hash` is the settings hash the driver computed (default: computed here)."""
    from fvtrust.empirical.models import resolve_device

    dev = str(resolve_device(None if device == "auto" else device))
    t0 = time.perf_counter()
    ref, layer, units = task.model, task.layer, list(task.units)
    model = _worker_model(ref, dev)
    base = {**_record_meta(plan, ref, unit_hash or plan.unit_config_hash(ref, layer), dev),
            "layer": layer, "worker_model_loads": _WORKER_LOADS["models"]}
    records = [{**base, "unit": u} for u in units]
    images: dict[str, bytes] = {}
    # The same network with other weights gets its own folder (its own PNGs).
    tag = ref.name if ref.weights is None else f"{ref.name}-{config_hash(ref.weights)}"
    folder = Path("images") / tag / layer
    if "render" in plan.measure:
        from fvtrust.empirical.objectives import channel
        from fvtrust.empirical.render import render

        for sign, side in ((1.0, "max"), (-1.0, "min")):
            result = render(model, channel(layer, units) * sign, steps=plan.steps, size=plan.size,
                            seeds=[plan.seed + u for u in units], device=dev, precision=plan.precision)
            for i, (u, rec) in enumerate(zip(units, records, strict=True)):
                path = folder / f"unit_{u:04d}_{side}.png"
                images[str(path)] = _png_bytes(result.images[i])
                rec[f"render_{side}_png"] = str(path)
                rec[f"render_{side}_activation"] = float(sign * result.trace[-1, i])
    if "exemplars" in plan.measure:
        from fvtrust.empirical.psychophysics import layer_responses

        pool = _worker_pool(plan)
        responses = _cached(("responses", ref, layer, dev, plan.images, plan.pool, plan.size, plan.seed),
                            lambda: layer_responses(model, layer, pool.images))
        for u, rec in zip(units, records, strict=True):
            order = np.argsort(-responses[:, u].numpy(), kind="stable")
            for side, idx in (("max", order[:plan.k]), ("min", order[::-1][:plan.k])):
                rec[f"exemplar_{side}_ids"] = [pool.sources[i] for i in idx]
                rec[f"exemplar_{side}_activations"] = [float(responses[i, u]) for i in idx]
            rec["natural_activation_mean"] = float(responses[:, u].mean())
    for measurement, afc_task in (("afc_references", "references"), ("afc_occlusion", "occlusion")):
        if measurement not in plan.measure:
            continue
        from fvtrust.empirical.psychophysics import afc_observer, pool_responses, run_afc

        # The pool's forward pass is the same for every unit of the layer: once per worker.
        responses = _cached(("afc_responses", ref, layer, dev, plan.images, plan.pool, plan.size, plan.seed),
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
    from fvtrust.empirical.data import natural_images
    from fvtrust.empirical.models import resolve_device
    from fvtrust.empirical.sanity import SanityConfig, run_sanity

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


def _failed_records(plan: SweepPlan, task: SweepTask | ModelRef, error: str,
                    unit_hash: str) -> list[dict]:
    if isinstance(task, ModelRef):
        return [{**_record_meta(plan, task, unit_hash, None, error), "seconds": None}]
    meta = _record_meta(plan, task.model, unit_hash, None, error)
    return [{**meta, "layer": task.layer, "unit": u, "seconds": None} for u in task.units]


# ---------------------------------------------------------------------------- driver side

class ClusterUnreachable(ValueError):
    """Nothing answers at the Ray address given."""


def check_address(address: str, timeout: float = 5.0) -> None:
    """Fail within `timeout` seconds when nothing listens at a ``host:port`` address
    (``ray.init`` would otherwise keep retrying)."""
    if address == "auto":
        return
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--address {address!r} is not host:port (or ray://host:port, or auto)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterUnreachable(f"--address {address!r}: no Ray cluster answers there "
                                 f"({exc.strerror or exc}); start one with `ray start --head` or "
                                 f"leave out --address for a local one") from None


def _start_ray(address: str | None, workers: int | None) -> tuple[bool, int]:
    """(whether we started Ray, how many tasks can run at once)."""
    import logging

    import ray

    if ray.is_initialized():
        return False, int(ray.cluster_resources().get("CPU", 1))
    if address is not None:
        check_address(address)
        # Something listens there; Ray would try it for ~20 s before giving up. A running
        # cluster answers at once, so a few seconds decide (the user's own setting wins).
        os.environ.setdefault("RAY_gcs_server_port_wait_time_s", "5")
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, RuntimeError) as exc:
            raise ClusterUnreachable(f"--address {address!r}: no Ray cluster answers there "
                                     f"({str(exc).splitlines()[0][:200]})") from None
    else:
        ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False)
    return True, int(ray.cluster_resources().get("CPU", 1))


def _remote_measure(plan: SweepPlan, task: SweepTask | ModelRef, device: str, threads: int,
                    unit_hash: str) -> tuple[list[dict], dict[str, bytes]]:
    torch.set_num_threads(threads)
    try:
        if isinstance(task, ModelRef):
            return [measure_model(plan, task, device, unit_hash)], {}
        return measure_task(plan, task, device, unit_hash)
    except Exception as exc:
        # Ray would pickle the traceback's frames; a plain message survives any cluster.
        raise RuntimeError(f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}") from None


def run_sweep(plan: SweepPlan, out_dir: str | Path, address: str | None = None,
              workers: int | None = None, device: str = "auto", force: bool = False,
              max_retries: int = 2, progress: bool = True) -> SweepSummary:
    """Run every unit of `plan` not yet in the store at `out_dir`; returns the counts.

    `workers` tasks run at once on a local Ray (default: one per CPU core); with `address`
    the cluster's own resources decide. On CUDA every task holds one GPU."""
    import ray
    from fvtrust.empirical.models import resolve_device
    from fvtrust.empirical.sweep_store import SweepStore
    from tqdm import tqdm

    if device != "auto":
        resolve_device(device)  # an unknown device fails here, in one line
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"--workers must be a positive integer, got {workers!r}")
    targets = check_plan(plan)
    store = SweepStore(out_dir, plan.settings(), plan.settings_hash(), force=force)
    layer_hash = {(ref, layer): plan.unit_config_hash(ref, layer) for ref, layer in targets}
    model_hash = {ref: plan.model_config_hash(ref) for ref in plan.model_refs}
    hashes = {store_key(ref, layer, u): layer_hash[(ref, layer)]
              for (ref, layer), units in targets.items() for u in units}
    done = store.done(hashes)
    tasks: list[SweepTask | ModelRef] = list(split_tasks(targets, plan.chunk, skip=done))
    if any(m in plan.measure for m in MODEL_MEASUREMENTS):
        finished = store.done({store_key(ref): h for ref, h in model_hash.items()}, models=True)
        tasks += [ref for ref in plan.model_refs if store_key(ref) not in finished]
    unit_tasks = [t for t in tasks if isinstance(t, SweepTask)]
    n_units = len(hashes)
    failures: dict[str, str] = {}
    t0 = time.perf_counter()
    n_computed = n_failed = 0
    started, slots = False, 0
    try:
        if tasks:
            started, slots = _start_ray(address, workers)
            use_gpu = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
            # One task per slot; on a local Ray the cores are shared out between the slots.
            threads = max(1, (os.cpu_count() or 1) // slots) if address is None else 1
            remote = ray.remote(_remote_measure).options(
                num_cpus=1, num_gpus=1 if use_gpu else 0, max_retries=max_retries,
                retry_exceptions=True)
            def task_hash(t: SweepTask | ModelRef) -> str:
                return model_hash[t] if isinstance(t, ModelRef) else layer_hash[(t.model, t.layer)]
            pending = {remote.remote(plan, t, device, threads, task_hash(t)): t for t in tasks}
            with tqdm(total=n_units, initial=n_units - sum(len(t.units) for t in unit_tasks),
                      desc=f"sweep {len(tasks)} tasks", unit="unit", disable=not progress) as bar:
                while pending:
                    ready, _ = ray.wait(list(pending), num_returns=1)
                    task = pending.pop(ready[0])
                    key = f"model-{task.name}-{task_hash(task)}" if isinstance(task, ModelRef) else task.key
                    try:
                        records, images = ray.get(ready[0])
                        failed = False
                    except Exception as exc:  # after max_retries: record the failure, keep the rest
                        message = str(getattr(exc, "cause", None) or exc).strip().splitlines()
                        error = message[0] if message else type(exc).__name__
                        records = _failed_records(plan, task, error, task_hash(task))
                        images, failed = {}, True
                        failures[key] = error
                    if isinstance(task, ModelRef):
                        store.add(key, records, images, models=True)
                        bar.set_postfix_str(f"{task.name} sanity {'failed' if failed else 'done'}")
                        continue
                    n_failed += len(records) if failed else 0
                    n_computed += 0 if failed else len(records)
                    store.add(key, records, images)
                    bar.set_postfix_str(f"{task.model.name} {task.layer}")
                    bar.update(len(task.units))
    finally:
        store.consolidate()
        if started:
            ray.shutdown()
    seconds = time.perf_counter() - t0
    return SweepSummary(str(out_dir), n_units, n_units - sum(len(t.units) for t in unit_tasks), n_computed,
                        n_failed, len(tasks), seconds, n_computed / seconds if n_computed else 0.0,
                        workers or slots, address, failures)
