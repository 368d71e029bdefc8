"""Machine-observer 2-AFC psychophysics, after Borowski et al. (references task) and
Zimmermann et al. 2021 (occlusion task), with the MIS decision rule (Zimmermann, Klindt,
Brendel 2024) in place of a human.

Observer: s(q, E) = mean similarity of image q to the images of reference set E in the
embedding of a *different* network (:class:`~empirical.observer.Observer`). For two
candidates q₁, q₂ and references E₊ (maximally activating) and E₋ (minimally activating),

    Δ = [s(q₁, E₊) − s(q₁, E₋)] − [s(q₂, E₊) − s(q₂, E₋)],

* references task: "q₁ activates the unit more" iff Δ > 0;
* occlusion task: q₁, q₂ are the same image with two different square occlusions; the
  occlusion that leaves the image *less* like E₊ (relative to E₋) is the one predicted to
  change the activation more: "occlusion 1 changes it more" iff Δ < 0.

Ties (Δ = 0, e.g. no references) score 1/2. P(correct) = σ(α·Δ·sign) is reported too.
Reference conditions: natural (the K most and K least activating pool images), synthetic
(K max and K min visualizations with different seeds), and random natural images (an
uninformative baseline).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from empirical.checkpoint import Stages
from empirical.data import bundled_images
from empirical.gates import batches
from empirical.models import Network, forward_activations, layer_channels, load_model
from empirical.objectives import channel
from empirical.observer import Observer
from empirical.render import render
from empirical.sanity import bootstrap_ci

#: Human data from the papers, for comparison tables only.
HUMAN = {"references_natural_9": 0.92, "references_synthetic_9": 0.82,
         "references_natural_1": 0.73, "references_synthetic_1": 0.65,
         "occlusion_feature_visualization": 0.67, "occlusion_none": 0.60,
         "occlusion_dataset_samples": 0.665}


@torch.no_grad()
def unit_activation(model: Network, layer: str, unit: int, images: torch.Tensor) -> torch.Tensor:
    """Mean (over space) activation of `unit` for each image."""
    out = []
    for chunk in batches(images, 32):
        a = forward_activations(model, chunk.to(model.device), [layer])[layer][:, unit]
        out.append((a.flatten(1).mean(1) if a.ndim > 1 else a).cpu())
    return torch.cat(out)


def mis_delta(e1: torch.Tensor, e2: torch.Tensor, ref_max: torch.Tensor,
              ref_min: torch.Tensor) -> torch.Tensor:
    """Δ per trial from unit-norm embeddings: e1, e2 (T, D); references (K, D) each."""
    def s(q: torch.Tensor, refs: torch.Tensor) -> torch.Tensor:
        return (q @ refs.T).mean(1) if len(refs) else torch.zeros(len(q))
    return (s(e1, ref_max) - s(e1, ref_min)) - (s(e2, ref_max) - s(e2, ref_min))


def score(delta: torch.Tensor, sign: torch.Tensor, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(correct ∈ {0, ½, 1}, σ(α·Δ·sign)) per trial; sign = +1 where Δ > 0 is the right answer."""
    signed = delta * sign
    correct = torch.where(signed == 0, 0.5, (signed > 0).double())
    return correct.numpy(), torch.sigmoid(alpha * signed).numpy()


def occlude(image: torch.Tensor, top: int, left: int, size: int) -> torch.Tensor:
    """The image with a grey (0.5) square of side `size` at (top, left)."""
    out = image.clone()
    out[:, top:top + size, left:left + size] = 0.5
    return out


@dataclass
class AFCConfig:
    """Quick scale by default; K and N as in the papers (9 references each side, 20 tasks)."""

    model: str = "efficientnet_lite0"
    weights: str | None = None
    observer: str = "efficientnet_lite1"
    task: str = "references"  # or "occlusion"
    layers: list[str] = field(default_factory=lambda: ["_blocks.5", "_blocks.10"])
    units: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    k: int = 9
    n_tasks: int = 20
    pool: int = 240
    size: int = 128
    steps: int = 96
    occluder: int = 40
    alpha: float = 20.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.task not in ("references", "occlusion"):
            raise ValueError(f"task must be 'references' or 'occlusion', got {self.task!r}")
        if self.k < 1 or self.n_tasks < 1:
            raise ValueError(f"k and n_tasks must be >= 1, got k={self.k}, n_tasks={self.n_tasks}")
        if 2 * self.k + 2 * self.n_tasks > self.pool:
            raise ValueError(f"K = {self.k} references per side and N = {self.n_tasks} tasks "
                             f"need at least {2 * self.k + 2 * self.n_tasks} pool images, "
                             f"the pool has {self.pool}")


@dataclass
class AFCResult:
    config: dict[str, object]
    conditions: list[str]
    per_unit: dict[str, dict[str, float]]  # "layer:unit" → condition → accuracy
    accuracy: dict[str, float]
    accuracy_ci: dict[str, tuple[float, float]]
    p_correct: dict[str, float]
    per_layer: dict[str, dict[str, float]]
    human: dict[str, float]
    reused_stages: list[str]

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def run_afc(config: AFCConfig, out_dir: str | Path | None = None, device: str = "cpu",
            force: bool = False) -> AFCResult:
    """Both reference kinds (and the uninformative baseline) for every unit of every layer."""
    from tqdm import tqdm

    stages = Stages(out_dir, config, force)
    model = load_model(config.model, weights=config.weights, device=device)
    shapes = layer_channels(model, config.layers)
    for layer in config.layers:
        bad = [u for u in config.units if not 0 <= u < shapes[layer][0]]
        if bad:
            raise ValueError(f"units {bad} are out of range for layer {layer!r} with "
                             f"{shapes[layer][0]} units")
    observer = Observer(config.observer, device=device)
    pool = bundled_images(config.pool, size=config.size, seed=config.seed + 17).images
    pool_emb = observer.embed(pool)
    rng = np.random.default_rng(config.seed)
    conditions = ["natural", "synthetic", "random"]
    records: dict[str, dict[str, list[np.ndarray]]] = {}
    k, n = config.k, config.n_tasks

    def synthetic(layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        # K max and K min visualizations of every unit, in one batched render each.
        units = [u for u in config.units for _ in range(k)]
        seeds = [config.seed + 101 + i for i in range(len(units))]
        kw = {"steps": config.steps, "size": config.size, "seeds": seeds, "progress": True}
        top = render(model, channel(layer, units), **kw).images
        bottom = render(model, -channel(layer, units), **kw).images
        return top.view(len(config.units), k, *top.shape[1:]), bottom.view(
            len(config.units), k, *bottom.shape[1:])
    synth_by_layer = {layer: stages.run(f"synthetic-{layer}", lambda layer=layer: synthetic(layer))
                      for layer in config.layers}
    jobs = [(layer, u) for layer in config.layers for u in config.units]
    for layer, unit in tqdm(jobs, desc=f"2-AFC {config.task}", unit="unit"):
        act = unit_activation(model, layer, unit, pool)
        order = torch.argsort(act, descending=True).numpy()
        refs = {"natural": (pool_emb[order[:k]], pool_emb[order[-k:]])}
        i = config.units.index(unit)
        synth = (synth_by_layer[layer][0][i], synth_by_layer[layer][1][i])
        refs["synthetic"] = (observer.embed(synth[0]), observer.embed(synth[1]))
        middle = order[k:-k]
        random_refs = rng.choice(middle, size=2 * k, replace=False)
        refs["random"] = (pool_emb[random_refs[:k]], pool_emb[random_refs[k:]])
        rest = middle  # queries never come from the natural references
        n_q = max(n, len(rest) // 5)
        strong, weak = rest[:n_q], rest[-n_q:]
        if config.task == "references":
            q_plus = rng.choice(strong, size=n, replace=False)
            q_minus = rng.choice(weak, size=n, replace=False)
            flip = torch.from_numpy(rng.random(n) < 0.5)
            first = torch.where(flip[:, None], pool_emb[q_minus], pool_emb[q_plus])
            second = torch.where(flip[:, None], pool_emb[q_plus], pool_emb[q_minus])
            sign = torch.where(flip, -1.0, 1.0).double()
        else:
            base = pool[rng.choice(strong, size=n, replace=False)]
            side, occ = config.size, config.occluder
            pos = rng.integers(0, side - occ + 1, size=(n, 4))
            o1 = torch.stack([occlude(img, p[0], p[1], occ) for img, p in zip(base, pos, strict=True)])
            o2 = torch.stack([occlude(img, p[2], p[3], occ) for img, p in zip(base, pos, strict=True)])
            drop1 = unit_activation(model, layer, unit, base) - unit_activation(model, layer, unit, o1)
            drop2 = unit_activation(model, layer, unit, base) - unit_activation(model, layer, unit, o2)
            first, second = observer.embed(o1), observer.embed(o2)
            sign = torch.where(drop1 > drop2, -1.0, 1.0).double()  # occlusion 1 ⇒ want Δ < 0
        key = f"{layer}:{unit}"
        records[key] = {}
        for cond in conditions:
            delta = mis_delta(first, second, *refs[cond]).double()
            records[key][cond] = score(delta, sign, config.alpha)
    per_unit = {key: {c: float(np.mean(rec[c][0])) for c in conditions} for key, rec in records.items()}
    accuracy, ci, p_correct, per_layer = {}, {}, {}, {}
    for c in conditions:
        all_correct = np.concatenate([rec[c][0] for rec in records.values()])
        accuracy[c] = float(all_correct.mean())
        ci[c] = bootstrap_ci(all_correct, seed=config.seed)
        p_correct[c] = float(np.concatenate([rec[c][1] for rec in records.values()]).mean())
    for layer in config.layers:
        per_layer[layer] = {c: float(np.mean([per_unit[f"{layer}:{u}"][c] for u in config.units]))
                            for c in conditions}
    return AFCResult(asdict(config), conditions, per_unit, accuracy, ci, p_correct, per_layer,
                     HUMAN, stages.reused)


def afc_table(result: AFCResult) -> str:
    """Markdown: our machine observer beside the papers' human participants."""
    task = result.config["task"]
    lines = ["| references | machine observer (ours) | 95 % CI | humans (paper) |", "|---|---|---|---|"]
    human = ({"natural": HUMAN["references_natural_9"], "synthetic": HUMAN["references_synthetic_9"],
              "random": None} if task == "references" else
             {"natural": HUMAN["occlusion_dataset_samples"],
              "synthetic": HUMAN["occlusion_feature_visualization"], "random": HUMAN["occlusion_none"]})
    names = {"natural": "natural exemplars", "synthetic": "feature visualizations",
             "random": "uninformative (random natural)" if task == "references" else "none / random"}
    for c in result.conditions:
        lo, hi = result.accuracy_ci[c]
        h = human[c]
        lines.append(f"| {names[c]} | {100 * result.accuracy[c]:.1f} % | {100 * lo:.1f}–{100 * hi:.1f} % | "
                     f"{'—' if h is None else f'{100 * h:.0f} %'} |")
    return "\n".join(lines)
