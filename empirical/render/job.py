"""A resumable render job: many units of one layer, batched, one PNG per unit, a contact
sheet and a JSON with the objective traces. Units already on disk (same settings) are
skipped, so an interrupted job resumes where it stopped."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from fvtrust.empirical.data.images import contact_sheet, read_image, save_png
from fvtrust.empirical.nets.layers import get_layer, layer_channels
from fvtrust.empirical.nets.registry import LOGITS, class_names, load_model
from fvtrust.empirical.render.loop import render
from fvtrust.empirical.render.objectives import channel
from fvtrust.io import atomic_write_json
from fvtrust.stages import RUN_ONLY, StageDamaged, read_record, stage_key


@dataclass
class RenderJob:
    """What to render; its hash names the settings a saved unit was rendered with."""

    model: str = "efficientnet_lite0"
    weights: str | None = None
    layer: str = "_blocks.10"
    units: list[int] = field(default_factory=lambda: [0], metadata=RUN_ONLY)  # the job's scope
    steps: int = 512
    size: int = 224
    param: str = "fourier"
    seed: int = 0
    minimize: bool = False
    batch_size: int = 16
    precision: str = "float32"

    def settings_hash(self) -> str:
        # The batch is part of the settings: float32 kernels round differently per batch shape.
        return stage_key(self)


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold the output directory's lock: two jobs writing one --out merge their units."""
    with open(out / ".render.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_record(path: Path) -> dict:
    try:
        record = read_record(path, ("settings_hash", "units"))
    except StageDamaged:
        raise ValueError(f"{path} is damaged (not a render record); rerun with --force to start "
                         f"afresh") from None
    return record or {}


def _current(path: Path, job: RenderJob, force: bool) -> dict:
    """The record for `job`'s settings: the saved one if it has them, else a new one (the
    old settings' PNGs are removed, so no stale image is left beside the new ones)."""
    try:
        record = _read_record(path)
    except ValueError:
        if not force:
            raise
        record = {}
    if force or record.get("settings_hash") != job.settings_hash():
        for unit in record.get("units", {}):
            (path.parent / f"unit_{int(unit):04d}.png").unlink(missing_ok=True)
        record = {"settings_hash": job.settings_hash(), "job": asdict(job), "units": {}}
    return record


def run_render_job(job: RenderJob, out_dir: str | Path, device: str = "cpu",
                   force: bool = False) -> Path:
    """Render every unit not yet on disk, then write the sheet and ``render.json``."""
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(job.model, weights=job.weights, device=device)
    if job.layer != LOGITS:
        get_layer(model, job.layer)  # an unknown name fails here, listing close matches
    n_units = layer_channels(model, [job.layer])[job.layer][0]
    bad = [u for u in job.units if not 0 <= u < n_units]
    if bad:
        raise ValueError(f"units {bad} are out of range for layer {job.layer!r} with {n_units} units")
    record_path = out / "render.json"
    with _locked(out):
        record = _current(record_path, job, force)
        atomic_write_json(record_path, record)
    todo = [u for u in job.units if force or str(u) not in record["units"]
            or not (out / f"unit_{u:04d}.png").exists()]
    sign = -1.0 if job.minimize else 1.0
    with tqdm(total=len(todo), desc=f"render {len(todo)} units of {job.layer} ({job.model})",
              unit="unit") as bar:
        for start in range(0, len(todo), job.batch_size):
            chunk = todo[start:start + job.batch_size]
            objective = channel(job.layer, chunk) * sign
            result = render(model, objective, steps=job.steps, size=job.size, param=job.param,
                            seeds=[job.seed + u for u in chunk], device=device,
                            precision=job.precision, progress=True)  # a bar per step, under the units
            for i, unit in enumerate(chunk):
                save_png(result.images[i], out / f"unit_{unit:04d}.png")
            with _locked(out):  # merge with what another job wrote meanwhile, then write
                record = _current(record_path, job, force=False)
                for i, unit in enumerate(chunk):
                    record["units"][str(unit)] = {"trace": (sign * result.trace[:, i]).tolist(),
                                                  "final_activation": float(sign * result.trace[-1, i])}
                atomic_write_json(record_path, record)  # after every batch: resumable
            bar.update(len(chunk))
    images = [read_image(out / f"unit_{u:04d}.png", damaged='it is re-rendered') for u in job.units]
    labels = [f"unit {u}" for u in job.units]
    if job.layer == LOGITS:  # class visualizations: say which class
        names = class_names()
        labels = [f"{u} {names[u]}" if u < len(names) else f"unit {u}" for u in job.units]
    width = max(1, job.size // 6)  # the label font is about 6 px per character
    save_png(contact_sheet(torch.stack(images), labels=[lab[:width] for lab in labels]),
             out / "contact_sheet.png")
    return record_path
