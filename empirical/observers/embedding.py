"""A machine observer: image similarity in the embedding of a network other than the one
being explained (default EfficientNet-Lite1, bundled weights; any registered model and
layer can be plugged in, e.g. a torchvision network, or a DreamSim-like embedding).

s(a, b) = cosine similarity of the spatially averaged activations of ``layer``.
:meth:`Observer.feature_maps` gives unit-norm features *per position* of ``spatial_layer``,
for observers that look at where in an image the reference-like content lies.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from fvtrust.empirical.nets.layers import batches, forward_activations, spatial_mean
from fvtrust.empirical.nets.registry import Network, load_model


@dataclass
class Observer:
    """Embeds images and compares them; `model` defaults to EfficientNet-Lite1."""

    model_name: str = "efficientnet_lite1"
    layer: str = "_avg_pooling"
    size: int = 160
    spatial_layer: str = "_blocks.14"
    device: str = "cpu"
    model: Network | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.model is None:
            self.model = load_model(self.model_name, device=self.device)

    def _activations(self, images: torch.Tensor, layers: list[str],
                     batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        for chunk in batches(images, batch_size):
            x = F.interpolate(chunk.float(), size=(self.size, self.size), mode="bilinear",
                              antialias=True, align_corners=False).to(self.model.device)
            yield forward_activations(self.model, x, layers)

    def _embedding(self, acts: torch.Tensor) -> torch.Tensor:
        feats = spatial_mean(acts)
        return F.normalize(feats, dim=1).cpu()

    def _maps(self, acts: torch.Tensor) -> torch.Tensor:
        if acts.ndim != 4:
            raise ValueError(f"spatial_layer {self.spatial_layer!r} has no spatial map "
                             f"(output shape {tuple(acts.shape[1:])})")
        return F.normalize(acts.float(), dim=1).cpu()

    @torch.no_grad()
    def embed(self, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
        """Unit-norm embeddings (N, D) of images (N, 3, H, W) in [0, 1]."""
        return torch.cat([self._embedding(a[self.layer])
                          for a in self._activations(images, [self.layer], batch_size)])

    @torch.no_grad()
    def feature_maps(self, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
        """(N, C, h, w) features of ``spatial_layer``, unit-norm at every position."""
        return torch.cat([self._maps(a[self.spatial_layer])
                          for a in self._activations(images, [self.spatial_layer], batch_size)])

    @torch.no_grad()
    def views(self, images: torch.Tensor, batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
        """(:meth:`embed`, :meth:`feature_maps`) from one forward pass per batch."""
        emb, maps = [], []
        for a in self._activations(images, [self.layer, self.spatial_layer], batch_size):
            emb.append(self._embedding(a[self.layer]))
            maps.append(self._maps(a[self.spatial_layer]))
        return torch.cat(emb), torch.cat(maps)

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Cosine similarities between every image of `a` and every image of `b` (Na, Nb)."""
        return self.embed(a) @ self.embed(b).T
