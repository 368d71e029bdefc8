"""Networks a user might bring, as factories: ``tests/empirical/user_models.py:<factory>``
(a file) or ``tests.empirical.user_models:<factory>`` (a module). Tiny, random weights."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer


class SmallCNN(nn.Module):
    """Two conv blocks and a linear head: (B, C, 32, 32) → 10 logits."""

    def __init__(self, in_channels: int = 3, flatten_head: bool = False) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 12, 3, padding=1, stride=2), nn.ReLU())
        self.pool = nn.Flatten() if flatten_head else nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(12 * 16 * 16 if flatten_head else 12, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


def small_cnn() -> nn.Module:
    """RGB, ImageNet normalization (the defaults), any input size."""
    return SmallCNN()


def grey_cnn() -> nn.Module:
    """A 1-channel network: one mean and std, its own input size and class names."""
    return SmallCNN(in_channels=1)


grey_cnn.mean, grey_cnn.std, grey_cnn.input_size = (0.5,), (0.25,), 32
grey_cnn.class_names = [f"digit {i}" for i in range(10)]


def flatten_cnn() -> nn.Module:
    """A flatten-then-linear head: only 32 px inputs fit (a fixed size, found by probing)."""
    net = SmallCNN(flatten_head=True)
    net.input_size = 32
    return net


def tiny_vit() -> nn.Module:
    """torchvision's ViT at 32 px, 8 px patches (16 patch tokens + a class token), 2 blocks
    of 2 heads, 16 features."""
    net = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                            hidden_dim=16, mlp_dim=32, num_classes=10)
    nn.init.normal_(net.heads.head.weight, std=1.0)  # torchvision starts the head at zero
    return net


tiny_vit.input_size = 32


class _TupleLayer(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, -x


def tuple_net() -> nn.Module:
    """A network with a layer (``pair``) that returns a tuple."""
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.pair, self.head = nn.Conv2d(3, 4, 3), _TupleLayer(), nn.Linear(4, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a, _ = self.pair(self.conv(x))
            return self.head(a.mean((2, 3)))
    return Net()


def not_a_module() -> object:
    return "a string"


def raises() -> nn.Module:
    raise RuntimeError("no weights here")


def rejects_its_size() -> nn.Module:
    net = SmallCNN(flatten_head=True)
    net.input_size = 64  # the head only fits 32 px inputs
    return net


def returns_a_dict() -> nn.Module:
    class Net(SmallCNN):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
            return {"logits": super().forward(x)}
    return Net()
