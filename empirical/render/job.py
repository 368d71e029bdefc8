"""A resumable render job: many units of one layer, batched, one PNG per unit, a contact
sheet and a JSON with each unit's activation and objective trace.

Each set of settings (network, layer, max or min, steps, size, …) gets its own subfolder of
``--out``, named ``<layer>-<max|min>-<settings hash>``, so renders with other settings live
side by side and nothing is ever replaced by a render of other settings. Units already on
disk with the same settings are skipped, so an interrupted job resumes where it stopped.
The stored ``final_activation`` is the activation of the saved PNG (8-bit, no jitter).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from fvtrust.empirical.data.images import contact_sheet, read_image, save_png
from fvtrust.empirical.nets.layers import get_layer, layer_channels
from fvtrust.empirical.nets.registry import LOGITS, class_names, load_model
from fvtrust.empirical.render.loop import PRECISIONS, render
from fvtrust.empirical.render.objectives import channel
from fvtrust.empirical.render.param import PARAMETRIZATIONS
from fvtrust.io import atomic_write_json
from fvtrust.outputs import OutputDir
from fvtrust.stages import RUN_ONLY, StageDamaged, read_record, stage_key

RECORD = "render.json"


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
    batch_size: int = field(default=16, metadata=RUN_ONLY)  # speed only, not the images
    precision: str = "float32"

    def __post_init__(self) -> None:
        for name in ("steps", "size", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if self.size < 8:
            raise ValueError(f"--size must be at least 8 px, got {self.size}")
        if self.param not in PARAMETRIZATIONS:
            raise ValueError(f"--param must be one of {', '.join(PARAMETRIZATIONS)}, got {self.param!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not self.units or min(self.units) < 0 or len(set(self.units)) != len(self.units):
            raise ValueError(f"--units must be distinct indices >= 0, got {self.units!r}")

    def settings_hash(self) -> str:
        return stage_key(self)

    @property
    def folder(self) -> str:
        """The subfolder of this job's settings: ``<layer>-<max|min>-<settings hash>``."""
        return f"{self.layer}-{'min' if self.minimize else 'max'}-{self.settings_hash()}"


def unit_png(unit: int) -> str:
    return f"unit_{unit:04d}.png"


def _record(out: OutputDir, job: RenderJob, force: bool) -> dict:
    """The saved record of `job`'s settings, or a new one (``force``: also for a damaged one)."""
    path = out.root / job.folder / RECORD
    try:
        record = read_record(path, ("settings_hash", "units"))
    except StageDamaged:
        if not force:
            raise ValueError(f"{path} is damaged (not a render record); rerun with --force to "
                             f"render its units afresh") from None
        record = None
    if record is None or record.get("settings_hash") != job.settings_hash():
        record = {"settings_hash": job.settings_hash(), "job": asdict(job), "units": {}}
    return record


def run_render_job(job: RenderJob, out_dir: str | Path, device: str = "cpu",
                   force: bool = False) -> Path:
    """Render every unit not yet on disk, then write the sheet and ``render.json``; returns
    the record's path. Everything is validated before the folder is touched; ``force``
    re-renders the job's units (each PNG is replaced only once its new render is written)."""
    from tqdm import tqdm

    out = OutputDir(out_dir, "render")  # refuses a file, a read-only or someone else's folder
    model = load_model(job.model, weights=job.weights, device=device)
    if job.layer != LOGITS:
        get_layer(model, job.layer)  # an unknown name fails here, listing close matches
    n_units = layer_channels(model, [job.layer])[job.layer][0]
    bad = [u for u in job.units if not 0 <= u < n_units]
    if bad:
        raise ValueError(f"units {bad} are out of range for layer {job.layer!r} with {n_units} units")
    folder = out.root / job.folder
    record_path = folder / RECORD
    done = _record(out, job, force)["units"]  # a damaged record is named before anything is written
    out.open()
    out.claim([record_path, folder / "contact_sheet.png"])
    todo = [u for u in job.units if force or str(u) not in done or not (folder / unit_png(u)).exists()]
    sign = -1.0 if job.minimize else 1.0
    with tqdm(total=len(todo), desc=f"render {len(todo)} units of {job.layer} ({job.model})",
              unit="unit") as bar:
        for start in range(0, len(todo), job.batch_size):
            chunk = todo[start:start + job.batch_size]
            objective = channel(job.layer, chunk) * sign
            result = render(model, objective, steps=job.steps, size=job.size, param=job.param,
                            seeds=[job.seed + u for u in chunk], device=device,
                            precision=job.precision, progress=True)  # a bar per step, under the units
            for path, image in zip(out.claim(folder / unit_png(u) for u in chunk), result.images,
                                   strict=True):
                save_png(image, path)
            with out.locked():  # merge with what another job wrote meanwhile, then write
                record = _record(out, job, force)
                for i, unit in enumerate(chunk):
                    record["units"][str(unit)] = {
                        "trace": (sign * result.trace[:, i]).tolist(),
                        "final_activation": float(sign * result.scores[i]),  # of the saved PNG
                        "last_objective": float(sign * result.last_objective[i])}
                atomic_write_json(record_path, record)  # after every batch: resumable
            bar.update(len(chunk))
    images = [read_image(folder / unit_png(u), damaged="it is re-rendered") for u in job.units]
    labels = [f"unit {u}" for u in job.units]
    if job.layer == LOGITS:  # class visualizations: say which class
        names = model.labels or class_names()
        labels = [f"{u} {names[u]}" if u < len(names) else f"unit {u}" for u in job.units]
    width = max(1, job.size // 6)  # the label font is about 6 px per character
    save_png(contact_sheet(torch.stack(images), labels=[lab[:width] for lab in labels]),
             folder / "contact_sheet.png")
    return record_path
