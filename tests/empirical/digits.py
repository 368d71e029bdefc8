"""A small CNN trained in-process on scikit-learn's bundled digits (seconds on a CPU), as a
real network for fast tests of the manipulations."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fvtrust.empirical.data.crops import NaturalImages
from fvtrust.empirical.nets.registry import Network

SIZE = 16


def digits_images() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False).clamp(0, 1)
    return x.expand(-1, 3, -1, -1).contiguous(), torch.tensor(digits.target)


@lru_cache(maxsize=1)
def trained_digits_network() -> tuple[Network, NaturalImages]:
    torch.manual_seed(0)
    images, labels = digits_images()
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    order = np.random.default_rng(0).permutation(len(images))
    train = torch.as_tensor(order[:1200])
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(40):
        for i in range(0, len(train), 64):
            idx = train[i:i + 64]
            opt.zero_grad()
            F.cross_entropy(net(images[idx] * 2 - 1), labels[idx]).backward()
            opt.step()
    model = Network(net, "digits", (0.5,) * 3, (0.5,) * 3, SIZE, 10).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    held = torch.as_tensor(order[1200:])
    return model, NaturalImages(images[held], [f"digit{i}" for i in held.tolist()], labels[held])
