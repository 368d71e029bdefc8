"""The layerwise sanity check (*Don't trust your eyes*, Sec. 4): is a class's visualization
processed like natural images of that class, or like images of other classes?

For class c and layer l, with s = Spearman correlation of activation vectors (Pearson and
cosine as options), V_c the visualizations of c, N_c natural images of c, N_¬c the rest:

    s_vis,same  = mean s(v, x),  v ∈ V_c, x ∈ N_c
    s_nat,same  = mean s(x, x′), x ≠ x′ ∈ N_c
    s_nat,other = mean s(x, x′), x ∈ N_c, x′ ∈ N_¬c
    score_l(c)  = (s_vis,same − s_nat,other) / (s_nat,same − s_nat,other)

1 means "processed like natural images of its class", 0 "like images of other classes".
Activations are computed one layer at a time (the forward pass stops at that layer), so no
tensor of all layers × all images is ever held.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from fvtrust.empirical.data.crops import NaturalImages
from fvtrust.empirical.data.photos import bundled_images
from fvtrust.empirical.nets.layers import batches, forward_activations, get_layer, main_layers, predict
from fvtrust.empirical.nets.registry import LOGITS, Network, load_model
from fvtrust.empirical.observers.similarity import similarity_matrix
from fvtrust.empirical.render.loop import render
from fvtrust.empirical.render.objectives import class_logit
from fvtrust.stages import Stages

_SKIP = ("BatchNorm", "Pool", "Dropout", "ReLU", "Swish", "Identity", "Flatten")


def sanity_layers(model: Network) -> list[str]:
    """The network's block/conv outputs in order (normalization, pooling and activation
    modules skipped), then the logits."""
    keep = [n for n in main_layers(model) if n != LOGITS
            and not any(k in type(get_layer(model, n)).__name__ for k in _SKIP)]
    if keep and isinstance(get_layer(model, keep[-1]), torch.nn.Linear):
        keep = keep[:-1]  # the classifier's output *is* the logits: one point, not two
    return [*keep, LOGITS]


@torch.no_grad()
def layer_vectors(model: Network, images: torch.Tensor, layer: str,
                  batch_size: int = 32) -> torch.Tensor:
    """Flattened activations (N, D) of one layer, computed batch by batch."""
    out = [forward_activations(model, b.to(model.device), [layer])[layer].flatten(1).cpu()
           for b in batches(images, batch_size)]
    return torch.cat(out)


#: a class normalizer s_nat,same − s_nat,other below this makes its score a ratio of noise
MIN_NORMALIZER = 0.02


def normalizer_warning(layer: str, normalizer: np.ndarray) -> str | None:
    """Words for a layer where some class's normalizer s_nat,same − s_nat,other is below
    :data:`MIN_NORMALIZER` (None when none is)."""
    small = int((np.abs(normalizer) < MIN_NORMALIZER).sum())
    if not small:
        return None
    return (f"{layer}: {small} of {len(normalizer)} classes have s_nat,same - s_nat,other < "
            f"{MIN_NORMALIZER} (natural images of a class are hardly more alike than images of "
            f"other classes there); the score divides by it, so it can leave 0..1 and its "
            f"interval is wide: use more natural images")


def class_scores(sim_vn: torch.Tensor, sim_nn: torch.Tensor, vis_labels: np.ndarray,
                 nat_labels: np.ndarray, classes: list[int]) -> dict[str, np.ndarray]:
    """Per class: the four mean similarities and the normalized score (formula above)."""
    out = {k: [] for k in ("vis_same", "vis_other", "nat_same", "nat_other", "score")}
    for c in classes:
        v, same, other = vis_labels == c, nat_labels == c, nat_labels != c
        block = sim_nn[np.ix_(same, same)]
        n = block.shape[0]
        nat_same = float((block.sum() - block.diagonal().sum()) / (n * (n - 1)))
        nat_other = float(sim_nn[np.ix_(same, other)].mean())
        vis_same = float(sim_vn[np.ix_(v, same)].mean())
        vis_other = float(sim_vn[np.ix_(v, other)].mean())
        denom = nat_same - nat_other
        out["vis_same"].append(vis_same)
        out["vis_other"].append(vis_other)
        out["nat_same"].append(nat_same)
        out["nat_other"].append(nat_other)
        out["score"].append((vis_same - nat_other) / denom if abs(denom) > 1e-12 else np.nan)
    return {k: np.asarray(v) for k, v in out.items()}


def bootstrap_ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean."""
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(n_boot, len(values)), replace=True).mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


@dataclass
class SanityConfig:
    """Quick scale by default: bundled photos, EfficientNet-Lite0, CPU."""

    model: str = "efficientnet_lite0"
    weights: str | None = None
    n_natural: int = 200
    min_per_class: int = 8
    min_confidence: float = 0.3
    vis_per_class: int = 2
    size: int = 128
    steps: int = 96
    similarity: str = "spearman"
    seed: int = 0

    def __post_init__(self) -> None:
        # A class needs two natural images: the same-class baseline correlates distinct pairs.
        if self.min_per_class < 2:
            raise ValueError(f"min_per_class must be >= 2 (the same-class baseline needs a pair of "
                             f"natural images), got {self.min_per_class}")
        if self.vis_per_class < 1 or self.n_natural < 2:
            raise ValueError(f"vis_per_class must be >= 1 and n_natural >= 2, got "
                             f"{self.vis_per_class} and {self.n_natural}")


@dataclass
class SanityResult:
    config: dict[str, object]
    classes: list[int]
    n_natural_per_class: list[int]
    n_candidate_classes: int
    layers: list[str]
    score_mean: list[float]
    score_ci: list[tuple[float, float]]
    per_class: dict[str, list[list[float]]] = field(default_factory=dict)
    reused_stages: list[str] = field(default_factory=list)
    #: per layer, the mean of s_nat,same − s_nat,other over classes: the score's denominator
    normalizer: list[float] = field(default_factory=list)
    #: layers whose score is a ratio of noise (a normalizer near zero), said in words
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def select_classes(model: Network, natural: NaturalImages, min_per_class: int,
                   min_confidence: float) -> tuple[NaturalImages, list[int], int]:
    """Label images with the network's top-1; keep confident ones of classes with at least
    `min_per_class` images. Returns the kept images, the classes, and how many classes had
    any confident image."""
    probs = predict(model, natural.images).softmax(1)
    conf, top1 = probs.max(1)
    confident = conf >= min_confidence
    counts = torch.bincount(top1[confident], minlength=probs.shape[1])
    classes = [int(c) for c in torch.nonzero(counts >= min_per_class).flatten()]
    keep = torch.nonzero(confident & torch.isin(top1, torch.tensor(classes))).flatten()
    if len(classes) < 2:
        raise ValueError(f"only {len(classes)} classes have >= {min_per_class} confident "
                         f"natural images (of {int((counts > 0).sum())} classes seen); "
                         f"need at least 2: use more images or lower min_per_class")
    kept = natural.subset(keep.numpy())
    kept.labels = top1[keep]
    return kept, classes, int((counts > 0).sum())


def run_sanity(config: SanityConfig, out_dir: str | Path | None = None, device: str = "cpu",
               force: bool = False, natural: NaturalImages | None = None,
               visualizations: torch.Tensor | None = None,
               vis_labels: np.ndarray | None = None, model: Network | None = None) -> SanityResult:
    """The check at every layer. `natural` replaces the bundled images (e.g. an ImageNet
    directory); `visualizations` with `vis_labels` replace the renders (used by the tests
    to feed natural images in their place)."""
    from tqdm import tqdm

    stages = Stages(out_dir, config, force)
    if model is None:  # a sweep worker passes the network it already holds
        model = load_model(config.model, weights=config.weights, device=device)
    if natural is None:
        natural = bundled_images(config.n_natural, size=config.size, seed=config.seed)
    kept, classes, seen = select_classes(model, natural, config.min_per_class,
                                         config.min_confidence)
    if visualizations is None:
        units = [c for c in classes for _ in range(config.vis_per_class)]
        seeds = [config.seed + 1000 * k for k in range(len(units))]
        visualizations = stages.run("renders", lambda: render(
            model, class_logit(units), steps=config.steps, size=config.size, seeds=seeds,
            progress=True).images)
        vis_labels = np.asarray(units)
    nat_labels = kept.labels.numpy()
    layers = sanity_layers(model)
    means, cis, per_class, norms, warnings = [], [], {}, [], []
    for layer in tqdm(layers, desc="sanity check", unit="layer"):
        vn = layer_vectors(model, visualizations, layer)
        nn_ = layer_vectors(model, kept.images, layer)
        scores = class_scores(similarity_matrix(vn, nn_, config.similarity).numpy(),
                              similarity_matrix(nn_, nn_, config.similarity).numpy(),
                              np.asarray(vis_labels), nat_labels, classes)
        means.append(float(np.nanmean(scores["score"])))
        cis.append(bootstrap_ci(scores["score"], seed=config.seed))
        per_class[layer] = [scores[k].tolist() for k in ("score", "vis_same", "nat_same", "nat_other")]
        norm = scores["nat_same"] - scores["nat_other"]
        norms.append(float(np.mean(norm)))
        if (warning := normalizer_warning(layer, norm)) is not None:
            warnings.append(warning)
    return SanityResult(asdict(config), classes,
                        [int((nat_labels == c).sum()) for c in classes], seen, layers,
                        means, cis, per_class, stages.reused, norms, warnings)


