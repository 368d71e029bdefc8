"""Figures drawn from saved results (PNG and PDF side by side), with matplotlib."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

# No backend is forced here: a notebook keeps its inline backend, and without a display
# matplotlib falls back to Agg by itself.
import matplotlib.pyplot as plt
import torch


def save_figure(fig: plt.Figure, path_stem: str | Path) -> list[Path]:
    """Write `path_stem`.png and .pdf; return both paths."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for p in paths:
        fig.savefig(p, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths


#: A grid shows at most this many columns (a layer of 1280 units would be a 2 m wide figure);
#: the title says how many were left out, and the JSON beside it has every unit.
MAX_COLUMNS = 12


def image_grid(rows: Mapping[str, torch.Tensor], column_titles: Sequence[str],
               title: str, path_stem: str | Path) -> list[Path]:
    """One row per entry of `rows` (label → (N, 3, H, W) images), in the paper's layout:
    originals on top, manipulated below; the first :data:`MAX_COLUMNS` columns."""
    n_rows = len(rows)
    n_all = max(len(v) for v in rows.values())
    n_cols = min(n_all, MAX_COLUMNS)
    if n_all > n_cols:
        title = f"{title} (first {n_cols} of {n_all} columns)"
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.9 * n_cols + 0.8, 1.9 * n_rows + 0.4),
                             squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(images):
                ax.imshow(images[c].detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy())
            else:
                ax.axis("off")
            if r == 0 and c < len(column_titles):
                ax.set_title(column_titles[c], fontsize=8)
        axes[r][0].set_ylabel(label, fontsize=9)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path_stem)


