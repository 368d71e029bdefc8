"""A machine observer: image similarity in the embedding of a network other than the one
being explained (default EfficientNet-Lite1, bundled weights; any registered model and
layer can be plugged in, e.g. a torchvision network, or a DreamSim-like embedding).

s(a, b) = cosine similarity of the spatially averaged activations of ``layer``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from empirical.gates import batches
from empirical.models import Network, forward_activations, load_model


@dataclass
class Observer:
    """Embeds images and compares them; `model` defaults to EfficientNet-Lite1."""

    model_name: str = "efficientnet_lite1"
    layer: str = "_avg_pooling"
    size: int = 160
    device: str = "cpu"
    model: Network | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.model is None:
            self.model = load_model(self.model_name, device=self.device)

    @torch.no_grad()
    def embed(self, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
        """Unit-norm embeddings (N, D) of images (N, 3, H, W) in [0, 1]."""
        out = []
        for chunk in batches(images, batch_size):
            x = F.interpolate(chunk.float(), size=(self.size, self.size), mode="bilinear",
                              antialias=True, align_corners=False).to(self.model.device)
            acts = forward_activations(self.model, x, [self.layer])[self.layer]
            feats = acts.flatten(2).mean(2) if acts.ndim > 2 else acts
            out.append(F.normalize(feats, dim=1).cpu())
        return torch.cat(out)

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Cosine similarities between every image of `a` and every image of `b` (Na, Nb)."""
        return self.embed(a) @ self.embed(b).T
