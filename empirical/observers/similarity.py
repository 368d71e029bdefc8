"""Similarity of activation vectors: Spearman (default), Pearson, cosine — as matrices.

``similarity_matrix(a, b, kind)`` returns S with S[i, j] = s(a_i, b_j) for rows of
a (N, D) and b (M, D). Spearman is Pearson on within-row ranks (ties get the mean rank).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

KINDS = ("spearman", "pearson", "cosine")


def ranks(x: torch.Tensor) -> torch.Tensor:
    """Within-row ranks 0..D−1 with ties averaged (as scipy.stats.rankdata(method='average'))."""
    order = x.argsort(dim=1, stable=True)
    sorted_x = x.gather(1, order)
    base = torch.empty_like(x, dtype=torch.float64)
    positions = torch.arange(x.shape[1], dtype=torch.float64, device=x.device).expand_as(x)
    base.scatter_(1, order, positions)
    # average tied ranks: group equal sorted values
    result = base.clone()
    for row in range(x.shape[0]):
        vals = sorted_x[row]
        new_group = torch.ones_like(vals, dtype=torch.bool)
        new_group[1:] = vals[1:] != vals[:-1]
        if bool(new_group.all()):
            continue
        group = torch.cumsum(new_group.long(), 0) - 1
        mean_pos = torch.zeros(int(group.max()) + 1, dtype=torch.float64, device=x.device)
        mean_pos.scatter_add_(0, group, positions[row])
        counts = torch.bincount(group).double()
        result[row, order[row]] = (mean_pos / counts)[group]
    return result


def similarity_matrix(a: torch.Tensor, b: torch.Tensor, kind: str = "spearman") -> torch.Tensor:
    """S[i, j] = s(a_i, b_j) in float64."""
    if kind not in KINDS:
        raise ValueError(f"unknown similarity {kind!r}; known: {', '.join(KINDS)}")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need (N, D) and (M, D) with equal D, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    a, b = a.double(), b.double()
    if kind == "spearman":
        a, b = ranks(a), ranks(b)
    if kind in ("spearman", "pearson"):
        a = a - a.mean(1, keepdim=True)
        b = b - b.mean(1, keepdim=True)
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).T


def pixel_similarity_matrix(images: torch.Tensor, size: int = 64) -> torch.Tensor:
    """(N, N): :func:`pixel_similarity` of every pair of `images`, as one matrix product (a
    layer's 1280 units make 818k pairs)."""
    x = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True,
                      align_corners=False).flatten(1)
    x = x - x.mean(1, keepdim=True)
    x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return x @ x.T


def pixel_similarity(a: torch.Tensor, b: torch.Tensor, size: int = 64) -> float:
    """Pearson correlation of two images' pixels after resizing to size×size."""
    def flat(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x[None].float(), size=(size, size), mode="bilinear",
                             antialias=True, align_corners=False).flatten()
    x, y = flat(a), flat(b)
    x, y = x - x.mean(), y - y.mean()
    return float((x @ y) / (x.norm() * y.norm()).clamp_min(1e-12))
