"""The render loop (lucid's ``render_vis``): parametrization → transforms → network →
objective → Adam, batched over units and device-agnostic.

``render(model, objective, steps=512, size=224)`` returns a :class:`RenderResult` with the
images in [0, 1], the objective trace (per step, per image) and snapshots at chosen steps.
Image i uses seed ``seed + i`` for its initialization and its transforms, so a batch of N
equals N single renders with those seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fvtrust.empirical.data.images import save_png, to_uint8
from fvtrust.empirical.nets.fuse import fuse_for_rendering
from fvtrust.empirical.nets.layers import check_eval, forward_activations
from fvtrust.empirical.nets.registry import Network, resolve_device
from fvtrust.empirical.render.objectives import Objective
from fvtrust.empirical.render.param import make_param
from fvtrust.empirical.render.transform import RandomTransform, TransformConfig

PRECISIONS = ("float32", "bfloat16")


@dataclass
class RenderConfig:
    """Settings of one render (lucid's defaults)."""

    steps: int = 512
    size: int = 224
    lr: float = 0.05
    param: str = "fourier"
    transforms: TransformConfig = field(default_factory=TransformConfig)
    seed: int = 0
    decay_power: float = 1.0  # the Fourier spectrum's scaling 1/|f|^decay_power
    decorrelate: bool = True  # optimize in decorrelated colour (lucid's default)
    l2: float = 0.0  # weight of the penalty mean((x − ½)²) per image
    tv: float = 0.0  # weight of the total-variation penalty mean(|∂ₕx| + |∂ᵥx|) per image

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps <= 0:
            raise ValueError(f"steps must be a positive integer, got steps={self.steps!r}")
        if not (self.lr > 0 and np.isfinite(self.lr)):
            raise ValueError(f"learning rate must be > 0, got lr={self.lr!r}")
        for name in ("l2", "tv"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and np.isfinite(value) and value >= 0):
                raise ValueError(f"penalty weight must be a finite number >= 0, got {name}={value!r}")
        if not (isinstance(self.decay_power, int | float) and 0 <= self.decay_power <= 4):
            raise ValueError(f"decay_power must lie in [0, 4], got decay_power={self.decay_power!r}")
        if self.param != "fourier" and self.decay_power != 1.0:
            raise ValueError(f"decay_power scales the Fourier spectrum; the {self.param!r} "
                             f"parametrization has none (got decay_power={self.decay_power!r})")

    def param_kwargs(self) -> dict[str, object]:
        """What :func:`~empirical.render.param.make_param` takes besides seeds and size."""
        kwargs: dict[str, object] = {"decorrelate": bool(self.decorrelate)}
        if self.param == "fourier":
            kwargs["decay_power"] = float(self.decay_power)
        return kwargs

    def penalty(self, images: torch.Tensor) -> torch.Tensor | None:
        """l2·mean((x − ½)²) + tv·mean(|∂ₕx| + |∂ᵥx|) per image (lucid's L2 and total-variation
        regularizers, as means so that a weight means the same at every size); None when both
        weights are 0."""
        if not (self.l2 or self.tv):
            return None
        out = torch.zeros(len(images), device=images.device, dtype=images.dtype)
        if self.l2:
            out = out + self.l2 * ((images - 0.5) ** 2).mean((1, 2, 3))
        if self.tv:
            out = out + self.tv * ((images[..., 1:, :] - images[..., :-1, :]).abs().mean((1, 2, 3))
                                   + (images[..., 1:] - images[..., :-1]).abs().mean((1, 2, 3)))
        return out


@dataclass
class RenderResult:
    """Images (B, 3, H, W) in [0, 1] on the CPU, the trace (steps, B), snapshots by step, and
    ``scores``: the objective of each final image as a PNG stores it (see :func:`score_saved`)."""

    images: torch.Tensor
    trace: np.ndarray
    snapshots: dict[int, torch.Tensor]
    seeds: list[int]
    objective: str
    scores: np.ndarray

    @property
    def final_values(self) -> np.ndarray:
        """The objective of the saved images (not the optimizer's last, jittered step)."""
        return self.scores

    @property
    def last_objective(self) -> np.ndarray:
        """The optimizer's objective at its last step: on a randomly transformed copy of the
        image, one update before the final one (so not the saved image's value)."""
        return self.trace[-1]

    def save_pngs(self, out_dir: str | Path, names: Sequence[str] | None = None) -> list[Path]:
        """One PNG per image, written atomically."""
        out = Path(out_dir)
        names = names or [f"image_{i:03d}" for i in range(len(self.images))]
        return [save_png(img, out / f"{n}.png") for img, n in zip(self.images, names, strict=True)]


def quantized(images: torch.Tensor) -> torch.Tensor:
    """Images (B, 3, H, W) in [0, 1] rounded to 8 bits exactly as :func:`save_png` stores
    them (and :func:`~empirical.data.images.read_image` reads them back)."""
    return torch.stack([torch.from_numpy(to_uint8(im)).permute(2, 0, 1) for im in images]).float() / 255


def score_saved(model: Network, objective: Objective, images: torch.Tensor) -> np.ndarray:
    """objective(f(q(x))): the objective of images as saved — 8-bit quantized q, no random
    transform, the network as given — one value per image (float64)."""
    dtype = next(model.parameters()).dtype
    inputs = quantized(images).to(device=model.device, dtype=dtype)
    with torch.no_grad():
        values = objective(forward_activations(model, inputs, objective.layers))
    return values.detach().double().cpu().numpy()


def render(model: Network, objective: Objective, batch: int | None = None, steps: int = 512,
           size: int = 224, lr: float = 0.05, param: str = "fourier",
           transforms: TransformConfig | None = None, seed: int = 0,
           seeds: Sequence[int] | None = None, snapshots: Sequence[int] = (),
           device: str | torch.device | None = None, progress: bool = False,
           fuse: bool = True, precision: str = "float32", decay_power: float = 1.0,
           decorrelate: bool = True, l2: float = 0.0, tv: float = 0.0) -> RenderResult:
    """Optimize `batch` images so that each maximizes its part of `objective`:
    max_x objective(f(t(x))) − penalty(x), t the random transform, the penalty
    l2·mean((x − ½)²) + tv·mean(|∂x|) (0 by default).

    ``decay_power`` (Fourier only) and ``decorrelate`` set the parametrization (lucid's
    defaults 1 and on); the objective trace records the objective alone, not the penalty.

    ``fuse`` renders through :func:`~empirical.nets.fuse.fuse_for_rendering` (BatchNorm folded
    into convolutions, channels-last layout; numerically equivalent, checked, faster).
    ``precision="bfloat16"`` runs the network under bfloat16 autocast (parameters, Adam and
    the objective trace stay float32): faster where the hardware has bfloat16 units, and the
    final objective stays within 1 % (benchmarks/bench_render.py measures both).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    config = RenderConfig(steps, size, lr, param, transforms or TransformConfig(), seed,
                          decay_power, decorrelate, l2, tv)
    check_eval(model)
    dev = resolve_device(device) if device is not None else model.device
    original = model  # the saved images are scored by the network as given
    if fuse:  # a checked copy: the caller's network is left where and as it is
        model = fuse_for_rendering(model, keep=objective.layers)
    model = model.to(dev)
    batch = batch or objective.batch or (len(seeds) if seeds is not None else 1)
    seeds = list(seeds) if seeds is not None else [seed + i for i in range(batch)]
    if len(seeds) != batch:
        raise ValueError(f"{len(seeds)} seeds for a batch of {batch} images")
    if objective.batch and objective.batch != batch:
        raise ValueError(f"objective addresses {objective.batch} images, batch is {batch}")
    bad = [s for s in snapshots if not 1 <= s <= steps]
    if bad:
        raise ValueError(f"snapshot steps must lie in 1..{steps}, got {bad}")

    # Parameters follow the network's dtype (float64 networks give bitwise-stable renders).
    dtype = next(model.parameters()).dtype
    image = make_param(config.param, seeds, config.size, device=dev, dtype=dtype,
                       channels=getattr(original, "in_channels", 3), **config.param_kwargs())
    jitter = RandomTransform(config.transforms, seeds)
    optimizer = torch.optim.Adam(image.parameters(), lr=config.lr)
    trace = np.empty((steps, batch), dtype=np.float64)
    shots: dict[int, torch.Tensor] = {}
    iterator = range(1, steps + 1)
    if progress:
        from tqdm import tqdm

        where = ", ".join(objective.layers) or "the input"
        iterator = tqdm(iterator, desc=f"render {batch} image{'s' * (batch != 1)} of {where}",
                        unit="step", leave=False)
    for step in iterator:
        optimizer.zero_grad(set_to_none=True)
        current = image()
        inputs = jitter(current).contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            acts = forward_activations(model, inputs, objective.layers)
            values = objective(acts)
        if precision == "bfloat16":
            values = values.float()
        if values.shape != (batch,):
            raise ValueError(f"objective returned shape {tuple(values.shape)}, expected ({batch},)")
        loss = -values.sum()
        penalty = config.penalty(current)
        if penalty is not None:
            loss = loss + penalty.sum()
        loss.backward()
        optimizer.step()
        trace[step - 1] = values.detach().double().cpu().numpy()
        if step in snapshots:
            with torch.no_grad():
                shots[step] = image().detach().cpu()
    with torch.no_grad():
        final = image().detach().cpu()
    return RenderResult(final, trace, shots, seeds, objective.name,
                        score_saved(original, objective, final))
